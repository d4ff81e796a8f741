"""numpy <-> sensor_msgs conversions: depth Image, CameraInfo, PointCloud2 (any x/y/z layout), CSI layout,
and the model-ready samples (depth and LiDAR as x, y, z PointCloud2, CSI in the CSI layout).

Written here because message_filters' friends (cv_bridge, sensor_msgs_py) are not installable in this
environment. Everything reads ``msg.data`` through ``np.frombuffer`` / strided views (no Python loop over
points) and writes ``bytes`` to ``msg.data`` (rclpy is very slow with element-wise array assignment).

Bad messages raise :class:`ConversionError` whose ``reason`` is a short slug ("bad_encoding", "bad_step",
"empty", "missing_fields", ...) that the adapter nodes count rejections by.

CSI layout (design.md): a ``PointCloud2`` with height = antennas, width = subcarriers, two fields
``amplitude`` (offset 0) and ``phase`` (offset 4 x packets), FLOAT32, ``count`` = packets; point_step =
8 x packets; points row-major by antenna then subcarrier. The model-ready CSI sample (6, S, P) travels in
the same layout with amplitude = rows 0..2 and phase = rows 3..5.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Header

from midas_ros.rig import CameraIntrinsics
from midas_ros.sync import NS_PER_S

IMAGE_DTYPES: dict[str, np.dtype] = {"16UC1": np.dtype(np.uint16), "32FC1": np.dtype(np.float32)}
# PointField datatype -> numpy dtype (little-endian; byte-swapped for big-endian clouds).
POINTFIELD_DTYPES: dict[int, np.dtype] = {
    PointField.INT8: np.dtype("i1"),
    PointField.UINT8: np.dtype("u1"),
    PointField.INT16: np.dtype("<i2"),
    PointField.UINT16: np.dtype("<u2"),
    PointField.INT32: np.dtype("<i4"),
    PointField.UINT32: np.dtype("<u4"),
    PointField.FLOAT32: np.dtype("<f4"),
    PointField.FLOAT64: np.dtype("<f8"),
}
_NATIVE_BIG_ENDIAN = sys.byteorder == "big"


class ConversionError(ValueError):
    """A message that cannot be converted; ``reason`` is a short slug for rejection counters."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _copy_header(header: Header | None) -> Header:
    out = Header()
    if header is not None:
        out.stamp = header.stamp
        out.frame_id = header.frame_id
    return out


def _with_order(dtype: np.dtype, big_endian: bool) -> np.dtype:
    return dtype.newbyteorder(">" if big_endian else "<")


# -- Image ------------------------------------------------------------------------------------------------


def image_to_array(msg: Image) -> np.ndarray:
    """A 16UC1 or 32FC1 Image as a native-endian (H, W) array (uint16 or float32), a copy."""
    dtype = IMAGE_DTYPES.get(msg.encoding)
    if dtype is None:
        raise ConversionError(
            "bad_encoding",
            f"image encoding {msg.encoding!r} is not supported (use one of {list(IMAGE_DTYPES)})",
        )
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0 or len(msg.data) == 0:
        raise ConversionError("empty", f"empty image ({height} x {width}, {len(msg.data)} bytes)")
    row_bytes = width * dtype.itemsize
    if step < row_bytes:
        raise ConversionError("bad_step", f"step {step} < width {width} x {dtype.itemsize} bytes")
    if len(msg.data) < step * (height - 1) + row_bytes:
        raise ConversionError(
            "bad_size",
            f"image data has {len(msg.data)} bytes, {height} rows of step {step} need {step * height}",
        )
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    # Rows may be padded (step > width x bytes): a strided view skips the padding without a loop.
    view = np.ndarray(
        shape=(height, width),
        dtype=_with_order(dtype, bool(msg.is_bigendian)),
        buffer=buf,
        strides=(step, dtype.itemsize),
    )
    return view.astype(dtype, copy=True)


def array_to_image(array: np.ndarray, header: Header | None = None, encoding: str | None = None) -> Image:
    """An (H, W) uint16 or float32 array as an Image (16UC1 / 32FC1, native byte order, dense rows)."""
    array = np.asarray(array)
    if array.ndim != 2:
        raise ConversionError("bad_shape", f"an image needs a 2-D array, got shape {array.shape}")
    if encoding is None:
        encoding = "16UC1" if array.dtype == np.uint16 else "32FC1"
    if encoding not in IMAGE_DTYPES:
        raise ConversionError("bad_encoding", f"cannot write encoding {encoding!r}")
    array = np.ascontiguousarray(array, dtype=IMAGE_DTYPES[encoding])
    msg = Image()
    msg.header = _copy_header(header)
    msg.height, msg.width = (int(n) for n in array.shape)
    msg.encoding = encoding
    msg.is_bigendian = _NATIVE_BIG_ENDIAN
    msg.step = int(array.shape[1] * array.itemsize)
    msg.data = array.tobytes()
    return msg


# -- CameraInfo -------------------------------------------------------------------------------------------


def camera_info_to_intrinsics(msg: CameraInfo) -> CameraIntrinsics:
    """The pinhole intrinsics of the images a CameraInfo describes: K and the image size, with its
    binning and region of interest applied as image_geometry does (a binned image has fx / binning_x
    and width // binning_x; an ROI's image starts at its offset). The distortion (D) is ignored:
    the image is taken as rectified (as realsense2_camera's image_rect_raw is). Raises ConversionError
    "bad_camera_info" for an uncalibrated CameraInfo (K all zero) or one with no image size."""
    k = [float(v) for v in msg.k]
    if len(k) != 9 or not any(k):
        raise ConversionError("bad_camera_info", "camera_info is uncalibrated (K is all zero)")
    width, height = int(msg.width), int(msg.height)
    x0 = y0 = 0
    roi = msg.roi
    if int(roi.width) > 0 and int(roi.height) > 0:  # an ROI of zero size means the whole image
        x0, y0, width, height = int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height)
    bx, by = max(1, int(msg.binning_x)), max(1, int(msg.binning_y))  # 0 and 1 both mean no binning
    try:
        return CameraIntrinsics(
            width // bx, height // by, k[0] / bx, k[4] / by, (k[2] - x0) / bx, (k[5] - y0) / by
        )
    except ValueError as err:
        raise ConversionError("bad_camera_info", f"camera_info: {err}") from err


def intrinsics_to_camera_info(intrinsics: CameraIntrinsics, header: Header | None = None) -> CameraInfo:
    """A CameraInfo for rectified images of these intrinsics (K = P's left block, no distortion, R = I),
    as a driver publishes beside image_rect_raw."""
    c = intrinsics
    msg = CameraInfo(width=int(c.width), height=int(c.height), distortion_model="plumb_bob")
    msg.header = _copy_header(header)
    msg.d = [0.0] * 5
    msg.k = [c.fx, 0.0, c.cx, 0.0, c.fy, c.cy, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [c.fx, 0.0, c.cx, 0.0, 0.0, c.fy, c.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


# -- PointCloud2 ------------------------------------------------------------------------------------------


def _cloud_view(msg: PointCloud2, names: tuple[str, ...], formats: dict[str, np.dtype]) -> np.ndarray:
    """A (height, width) structured view of the named fields, honouring offsets, steps and endianness."""
    height, width = int(msg.height), int(msg.width)
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    if height == 0 or width == 0 or len(msg.data) == 0:
        raise ConversionError("empty", f"empty cloud ({height} x {width}, {len(msg.data)} bytes)")
    fields = {f.name: f for f in msg.fields}
    missing = [n for n in names if n not in fields]
    if missing:
        raise ConversionError(
            "missing_fields", f"cloud lacks field(s) {missing}; it has {[f.name for f in msg.fields]}"
        )
    big = bool(msg.is_bigendian)
    dtype_fields = {"names": [], "formats": [], "offsets": [], "itemsize": point_step}
    for n in names:
        fmt = _with_order(formats[n], big)
        if int(fields[n].offset) + fmt.itemsize > point_step:
            raise ConversionError(
                "bad_field_offset",
                f"field {n!r} at offset {fields[n].offset} ({fmt.itemsize} bytes) "
                f"overruns point_step {point_step}",
            )
        dtype_fields["names"].append(n)
        dtype_fields["formats"].append(fmt)
        dtype_fields["offsets"].append(int(fields[n].offset))
    if row_step < width * point_step:
        raise ConversionError("bad_step", f"row_step {row_step} < width {width} x point_step {point_step}")
    needed = row_step * (height - 1) + width * point_step
    if len(msg.data) < needed:
        raise ConversionError("bad_size", f"cloud data has {len(msg.data)} bytes, the header needs {needed}")
    return np.ndarray(
        shape=(height, width),
        dtype=np.dtype(dtype_fields),
        buffer=np.frombuffer(msg.data, dtype=np.uint8),
        strides=(row_step, point_step),
    )


def pointcloud2_to_xyz(msg: PointCloud2, drop_invalid: bool = True) -> np.ndarray:
    """x, y, z of any PointCloud2 (Ouster, Velodyne, Livox, organised or not) as (N, 3) float32.

    ``drop_invalid`` removes points with a non-finite coordinate (whatever ``is_dense`` says) and exact
    (0, 0, 0) points, which drivers such as Ouster's publish for "no return". N = height x width otherwise.
    """
    fields = {f.name: f for f in msg.fields}
    formats = {}
    for n in ("x", "y", "z"):
        f = fields.get(n)
        if f is not None and f.datatype not in (PointField.FLOAT32, PointField.FLOAT64):
            raise ConversionError("bad_field_type", f"field {n!r} has datatype {f.datatype}, need FLOAT32/64")
        formats[n] = POINTFIELD_DTYPES[f.datatype] if f is not None else POINTFIELD_DTYPES[PointField.FLOAT32]
    view = _cloud_view(msg, ("x", "y", "z"), formats)
    offsets = [int(fields[n].offset) for n in ("x", "y", "z")]
    size = formats["x"].itemsize
    if formats["x"] == formats["y"] == formats["z"] and offsets == [offsets[0] + size * i for i in range(3)]:
        # x, y, z side by side (every common driver): one strided (H, W, 3) view, 5x faster than by field.
        xyz_view = np.ndarray(
            shape=(*view.shape, 3),
            dtype=_with_order(formats["x"], bool(msg.is_bigendian)),
            buffer=np.frombuffer(msg.data, dtype=np.uint8),
            offset=offsets[0],
            strides=(*view.strides, size),
        )
        xyz = xyz_view.reshape(-1, 3).astype(np.float32)
    else:
        flat = view.reshape(-1)
        xyz = np.empty((flat.shape[0], 3), dtype=np.float32)
        for i, n in enumerate(("x", "y", "z")):
            xyz[:, i] = flat[n]
    if drop_invalid:
        x, y, z = xyz[:, 0], xyz[:, 1], xyz[:, 2]  # column-wise tests: far faster than .all(axis=1)
        keep = np.isfinite(x) & np.isfinite(y) & np.isfinite(z) & ((x != 0) | (y != 0) | (z != 0))
        xyz = xyz[keep]
    return xyz


@dataclass(frozen=True)
class CloudLayout:
    """A PointCloud2's content without a message class: numpy fills it, a message system wraps it.

    ``fields`` are (name, offset, PointField datatype, count) tuples.
    """

    height: int
    width: int
    fields: tuple[tuple[str, int, int, int], ...]
    point_step: int
    row_step: int
    is_bigendian: bool
    is_dense: bool
    data: bytes


def cloud_layout(points: np.ndarray, *, row_pad: int = 0, is_dense: bool | None = None) -> CloudLayout:
    """A structured array, (N,) unorganised or (H, W) organised, as PointCloud2 content.

    Its dtype is the layout: field names, offsets, padding (itemsize = point_step), byte order, and
    sub-arrays as ``count`` (the CSI layout's packets). ``row_pad`` appends that many 0xAB bytes to every
    row (row_step > width x point_step, as some drivers do). ``is_dense`` defaults to "no NaN/Inf".
    """
    points = np.asarray(points)
    if points.dtype.names is None or points.ndim not in (1, 2):
        raise ConversionError("bad_shape", f"need a structured (N,) or (H, W) array, got {points.dtype}")
    rows = points.reshape(1, -1) if points.ndim == 1 else points
    fields, orders = [], set()
    for name in points.dtype.names:
        field_dtype, offset = points.dtype.fields[name][:2]
        base, shape = field_dtype.base, field_dtype.shape
        datatype = next((t for t, d in POINTFIELD_DTYPES.items() if d == base.newbyteorder("<")), None)
        if datatype is None:
            raise ConversionError("bad_field_type", f"field {name!r} has a type PointField lacks: {base}")
        if base.itemsize > 1:
            orders.add(base.byteorder if base.byteorder in "<>" else ("<", ">")[_NATIVE_BIG_ENDIAN])
        fields.append((name, int(offset), datatype, int(np.prod(shape, dtype=int))))
    if len(orders) > 1:
        raise ConversionError("bad_field_type", "fields of mixed byte order")
    data = rows.view(np.uint8).reshape(rows.shape[0], -1)
    if row_pad:
        data = np.concatenate([data, np.full((rows.shape[0], row_pad), 0xAB, np.uint8)], axis=1)
    if is_dense is None:
        floats = [rows[n] for n in points.dtype.names if rows.dtype.fields[n][0].base.kind == "f"]
        is_dense = all(bool(np.isfinite(v).all()) for v in floats)
    return CloudLayout(
        height=int(rows.shape[0]),
        width=int(rows.shape[1]),
        fields=tuple(fields),
        point_step=int(points.dtype.itemsize),
        row_step=int(data.shape[1]),
        is_bigendian=orders == {">"},
        is_dense=bool(is_dense),
        data=np.ascontiguousarray(data).tobytes(),
    )


def pointcloud2_msg(layout: CloudLayout, header: Header | None = None) -> PointCloud2:
    """The rclpy PointCloud2 of a CloudLayout."""
    msg = PointCloud2(
        height=layout.height,
        width=layout.width,
        is_bigendian=layout.is_bigendian,
        point_step=layout.point_step,
        row_step=layout.row_step,
        is_dense=layout.is_dense,
    )
    msg.header = _copy_header(header)
    msg.fields = [PointField(name=n, offset=o, datatype=d, count=c) for n, o, d, c in layout.fields]
    msg.data = layout.data  # bytes: fast in rclpy (a numpy array is copied element by element)
    return msg


XYZ_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4")])


def xyz_to_pointcloud2(points: np.ndarray, header: Header | None = None) -> PointCloud2:
    """(N, 3) points as an unorganised PointCloud2 with float32 x, y, z (point_step 12)."""
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] < 3:
        raise ConversionError("bad_shape", f"points need shape (N, 3), got {points.shape}")
    xyz = np.ascontiguousarray(points[:, :3], dtype="<f4")
    return pointcloud2_msg(cloud_layout(xyz.view(XYZ_DTYPE).reshape(-1)), header)


# -- CSI layout -------------------------------------------------------------------------------------------


def csi_cloud_layout(amplitude: np.ndarray, phase: np.ndarray) -> CloudLayout:
    """amplitude, phase (antennas, subcarriers, packets) in the CSI layout: the one definition of it.

    height = antennas, width = subcarriers; per point `packets` float32 amplitudes, then `packets` phases.
    """
    amplitude, phase = np.asarray(amplitude), np.asarray(phase)
    if amplitude.ndim != 3 or amplitude.shape != phase.shape or 0 in amplitude.shape:
        raise ConversionError(
            "bad_shape",
            f"amplitude and phase need the same non-empty (antennas, subcarriers, packets) shape, "
            f"got {amplitude.shape} and {phase.shape}",
        )
    antennas, subcarriers, packets = (int(n) for n in amplitude.shape)
    cloud = np.empty(
        (antennas, subcarriers), np.dtype([("amplitude", "<f4", packets), ("phase", "<f4", packets)])
    )
    cloud["amplitude"], cloud["phase"] = amplitude, phase
    return cloud_layout(cloud)


def csi_to_pointcloud2(amplitude: np.ndarray, phase: np.ndarray, header: Header | None = None) -> PointCloud2:
    """amplitude, phase (antennas, subcarriers, packets) as a PointCloud2 in the CSI layout."""
    return pointcloud2_msg(csi_cloud_layout(amplitude, phase), header)


def pointcloud2_to_csi(msg: PointCloud2) -> tuple[np.ndarray, np.ndarray]:
    """A CSI-layout PointCloud2 as (amplitude, phase), each (antennas, subcarriers, packets) float32."""
    fields = {f.name: f for f in msg.fields}
    counts = set()
    for n in ("amplitude", "phase"):
        f = fields.get(n)
        if f is None:
            continue  # reported by _cloud_view with the list of fields present
        if f.datatype != PointField.FLOAT32:
            raise ConversionError(
                "bad_field_type", f"CSI field {n!r} has datatype {f.datatype}, need FLOAT32"
            )
        counts.add(int(f.count))
    if len(counts) > 1 or 0 in counts:
        raise ConversionError("bad_count", f"amplitude and phase need the same non-zero count, got {counts}")
    packets = counts.pop() if counts else 1
    fmt = np.dtype(("<f4", (packets,)))
    view = _cloud_view(msg, ("amplitude", "phase"), {"amplitude": fmt, "phase": fmt})
    return (
        np.ascontiguousarray(view["amplitude"], dtype=np.float32),
        np.ascontiguousarray(view["phase"], dtype=np.float32),
    )


# -- model-ready samples (/midas/sample/<modality>) ------------------------------------------------------


# Modalities whose sample is (N, 3) base-frame points of the person: an unorganised x, y, z PointCloud2.
POINT_SAMPLE_MODALITIES: tuple[str, ...] = ("depth", "lidar")


def sample_to_msg(modality: str, sample: np.ndarray, header: Header | None = None) -> PointCloud2:
    """A preprocessed sample (preprocess.py's output) as its sample-topic message (design.md): depth and
    LiDAR (N, 3) points as an x, y, z PointCloud2, CSI (6, S, P) in the CSI layout."""
    sample = np.asarray(sample, dtype=np.float32)
    if modality in POINT_SAMPLE_MODALITIES:
        if sample.ndim != 2 or sample.shape[1] != 3:
            raise ConversionError("bad_shape", f"a {modality} sample needs shape (N, 3), got {sample.shape}")
        return xyz_to_pointcloud2(sample, header)
    if modality == "csi":
        if sample.ndim != 3 or sample.shape[0] % 2:
            raise ConversionError(
                "bad_shape", f"a CSI sample needs shape (2 x antennas, S, P), got {sample.shape}"
            )
        half = sample.shape[0] // 2
        return csi_to_pointcloud2(sample[:half], sample[half:], header)
    raise ValueError(f"unknown modality {modality!r}")


def msg_to_sample(modality: str, msg: PointCloud2) -> np.ndarray:
    """A sample-topic message back to the model's array: depth and lidar (N, 3), csi (6, S, P)."""
    if modality in POINT_SAMPLE_MODALITIES:
        return pointcloud2_to_xyz(msg, drop_invalid=False)
    if modality == "csi":
        amplitude, phase = pointcloud2_to_csi(msg)
        return np.concatenate([amplitude, phase], axis=0)
    raise ValueError(f"unknown modality {modality!r}")


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (rclpy or rosbags) as integer nanoseconds."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)
