"""Real LiDAR drivers' PointCloud2 layouts, byte for byte, as numpy structured dtypes.

- "ouster" (ouster-ros "original" points, point_step 48, organised rings x columns): x, y, z float32 at
  0/4/8, intensity f32 @16, t u32 @20 (ns into the scan), reflectivity u16 @24, ring u16 @26, ambient
  u16 @28, range u32 @32 (mm); (0, 0, 0) and zero fields for "no return".
- "velodyne" (velodyne_pointcloud XYZIRT, packed, point_step 22): x, y, z, intensity f32, ring u16 @16,
  time f32 @18 (s into the scan).
- "livox" (livox_ros_driver2, packed and unaligned, point_step 26): x, y, z, intensity f32, tag u8 @16,
  line u8 @17, timestamp f64 @18 (absolute, ns).

``driver_cloud(xyz, "ouster")`` fills a layout from (N, 3) or organised (H, W, 3) points with plausible
per-point values and returns the rclpy PointCloud2 through the runtime's own builder
(``conversions.cloud_layout`` + ``pointcloud2_msg``), so tests, benchmarks and the demo bag feed the
adapters what the drivers publish: padding, packed and unaligned fields, big-endian data, padded rows.

Per-point values: ``ring`` (Velodyne, Ouster) is the row of an organised cloud, else the beam whose
elevation is nearest (Ouster's ring 0 is the top beam, Velodyne's the bottom one); Livox's ``line`` is the
laser (points interleaved over 6 lasers). The time field is the point's time within a 0.1 s scan (from
the column of an organised cloud, else from the azimuth for spinning sensors and the point's index for
Livox); Livox's ``timestamp`` is absolute, in ns, from the header stamp. Intensity falls with range.
An Ouster point without a return (non-finite or (0, 0, 0)) is all zeros, as ouster-ros publishes it;
Velodyne and Livox points keep their coordinates (NaN included) with zero attributes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header

from midas_ros.ros.conversions import cloud_layout, pointcloud2_msg, stamp_to_ns

SCAN_PERIOD_S = 0.1  # one turn of a spinning LiDAR in its 10 Hz mode; one Livox frame

OUSTER_DTYPE = np.dtype(
    {
        "names": ["x", "y", "z", "intensity", "t", "reflectivity", "ring", "ambient", "range"],
        "formats": ["<f4", "<f4", "<f4", "<f4", "<u4", "<u2", "<u2", "<u2", "<u4"],
        "offsets": [0, 4, 8, 16, 20, 24, 26, 28, 32],
        "itemsize": 48,
    }
)
VELODYNE_DTYPE = np.dtype(
    {
        "names": ["x", "y", "z", "intensity", "ring", "time"],
        "formats": ["<f4", "<f4", "<f4", "<f4", "<u2", "<f4"],
        "offsets": [0, 4, 8, 12, 16, 18],
        "itemsize": 22,
    }
)
LIVOX_DTYPE = np.dtype(
    {
        "names": ["x", "y", "z", "intensity", "tag", "line", "timestamp"],
        "formats": ["<f4", "<f4", "<f4", "<f4", "u1", "u1", "<f8"],
        "offsets": [0, 4, 8, 12, 16, 17, 18],
        "itemsize": 26,
    }
)


@dataclass(frozen=True)
class DriverLayout:
    """A driver's point layout (little-endian dtype) and the beam geometry its ring/line index follows."""

    dtype: np.dtype
    rings: int  # beams (Ouster, Velodyne) or lasers (Livox)
    vertical_fov_deg: float  # spread of the beams, centred on the horizon
    top_ring_first: bool  # ring 0 = the top beam (Ouster) or the bottom one (Velodyne)


DRIVER_LAYOUTS: dict[str, DriverLayout] = {
    "ouster": DriverLayout(OUSTER_DTYPE, rings=32, vertical_fov_deg=45.0, top_ring_first=True),  # OS1-32
    "velodyne": DriverLayout(VELODYNE_DTYPE, rings=16, vertical_fov_deg=30.0, top_ring_first=False),  # VLP-16
    "livox": DriverLayout(LIVOX_DTYPE, rings=6, vertical_fov_deg=70.4, top_ring_first=True),  # Avia
}


def _ring_from_elevation(xyz: np.ndarray, rng: np.ndarray, layout: DriverLayout) -> np.ndarray:
    elevation = np.degrees(np.arcsin(np.divide(xyz[..., 2], rng, out=np.zeros_like(rng), where=rng > 0)))
    half = layout.vertical_fov_deg / 2
    from_top = np.round((half - elevation) / layout.vertical_fov_deg * (layout.rings - 1))
    ring = np.clip(from_top, 0, layout.rings - 1)
    return ring if layout.top_ring_first else layout.rings - 1 - ring


def driver_points(xyz: np.ndarray, layout: str, *, big_endian: bool = False, stamp_ns: int = 0) -> np.ndarray:
    """xyz (N, 3) or organised (H, W, 3) as a structured array, (N,) or (H, W), in a driver's layout.

    ``stamp_ns`` is the scan's stamp (Livox's absolute per-point timestamps start there).
    """
    if layout not in DRIVER_LAYOUTS:
        raise ValueError(f"unknown driver layout {layout!r}; known: {sorted(DRIVER_LAYOUTS)}")
    spec = DRIVER_LAYOUTS[layout]
    xyz = np.asarray(xyz, dtype=np.float64)
    if xyz.ndim not in (2, 3) or xyz.shape[-1] != 3:
        raise ValueError(f"xyz must be (N, 3) or (H, W, 3), got {xyz.shape}")
    organised = xyz.ndim == 3
    shape = xyz.shape[:-1]
    finite = np.isfinite(xyz).all(axis=-1)
    clean = np.where(finite[..., None], xyz, 0.0)
    rng = np.linalg.norm(clean, axis=-1)
    hit = finite & (rng > 0)

    if organised:
        ring = np.broadcast_to(np.arange(shape[0])[:, None], shape).astype(np.float64)
        scan_fraction = np.broadcast_to(np.arange(shape[1])[None, :] / shape[1], shape)
    else:
        ring = _ring_from_elevation(clean, rng, spec)
        if layout == "livox":  # non-repetitive scan: time follows the firing order
            scan_fraction = np.arange(shape[0]) / max(shape[0], 1)
        else:  # spinning clockwise from the back (-x), as ouster-ros and velodyne number columns
            scan_fraction = (np.pi - np.arctan2(clean[..., 1], clean[..., 0])) / (2 * np.pi)
    scan_s = np.clip(scan_fraction, 0.0, 1.0) * SCAN_PERIOD_S
    intensity = np.where(hit, np.clip(1500.0 / np.maximum(rng, 0.5) ** 2, 1.0, 255.0), 0.0)

    # Zeros first: the padding bytes (Ouster's) are zero, as in a driver's buffer.
    points = np.zeros(shape, spec.dtype.newbyteorder(">") if big_endian else spec.dtype)
    points["x"], points["y"], points["z"] = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    points["intensity"] = intensity
    if layout == "ouster":
        points["t"] = np.round(scan_s * 1e9).astype(np.uint32)
        points["ring"] = ring
        points["reflectivity"] = np.where(hit, 50, 0)
        points["ambient"] = np.where(hit, 40, 0)
        points["range"] = np.round(rng * 1000.0).astype(np.uint32)
        points[~hit] = np.zeros((), points.dtype)  # no return: every field zero, as ouster-ros publishes
    elif layout == "velodyne":
        points["ring"] = np.where(hit, ring, 0)
        points["time"] = np.where(hit, scan_s, 0.0)
    else:
        points["line"] = np.where(hit, np.arange(points.size).reshape(shape) % spec.rings, 0)
        points["tag"] = np.where(hit, 0x10, 0)  # "normal point, high confidence"
        points["timestamp"] = np.where(hit, stamp_ns + scan_s * 1e9, 0.0)
    return points


def driver_cloud(
    xyz: np.ndarray,
    layout: str,
    *,
    header: Header | None = None,
    big_endian: bool = False,
    row_pad: int = 0,
    is_dense: bool | None = None,
) -> PointCloud2:
    """A PointCloud2 laid out byte for byte like a real driver's; xyz (N, 3) or organised (H, W, 3).

    ``row_pad`` adds that many junk bytes at the end of every row (row_step > width x point_step);
    ``is_dense`` defaults to "no NaN/Inf" (drivers such as Livox's claim True regardless: pass it).
    """
    stamp_ns = stamp_to_ns(header.stamp) if header is not None else 0
    points = driver_points(xyz, layout, big_endian=big_endian, stamp_ns=stamp_ns)
    return pointcloud2_msg(cloud_layout(points, row_pad=row_pad, is_dense=is_dense), header)
