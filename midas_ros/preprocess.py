"""Per-modality preprocessing shared by training, evaluation and the ROS adapters.

Each function turns one raw sensor frame into the fixed-shape array the model takes, or raises
`PreprocessError` (with a short `.reason` slug that nodes count) for input it cannot use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d

from midas_ros.interfaces import CSI_RAW_SHAPE, DEPTH_INPUT_HW, LIDAR_NUM_POINTS

# Robust z-scores of CSI amplitude beyond this are glitches (Atheros spikes), not signal.
CSI_AMPLITUDE_CLIP = 10.0


class PreprocessError(ValueError):
    """Input that a preprocess function cannot use; `.reason` is a short slug for counting rejections."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{message} [{reason}]")
        self.reason = reason


@dataclass(frozen=True)
class LidarROI:
    """Axis-aligned box in the LiDAR frame (metres) that keeps a person in the sensing area.

    Defaults follow the rig in docs/design.md: the LiDAR is 1.3 m above the floor (floor at z = -1.3),
    people stand 2.2..4 m ahead with |y| < 1 m. The box drops the floor (z_min is 5 cm above it), the
    ceiling and the walls of a full scan, with margin for jumps, lunges and stretched arms.
    """

    x_min: float = 0.5
    x_max: float = 6.0
    y_min: float = -2.5
    y_max: float = 2.5
    z_min: float = -1.25
    z_max: float = 1.0

    def __post_init__(self) -> None:
        for axis in "xyz":
            low, high = getattr(self, f"{axis}_min"), getattr(self, f"{axis}_max")
            if not low < high:
                raise ValueError(f"LidarROI: {axis}_min ({low}) must be below {axis}_max ({high})")

    def contains(self, xyz: np.ndarray) -> np.ndarray:
        """Boolean mask of the rows of an (N, 3) array that lie inside the box."""
        x, y, z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
        return (
            (x >= self.x_min)
            & (x <= self.x_max)
            & (y >= self.y_min)
            & (y <= self.y_max)
            & (z >= self.z_min)
            & (z <= self.z_max)
        )


def _as_real_array(data: object, name: str) -> np.ndarray:
    """np.asarray that refuses non-numeric, boolean, complex and structured input."""
    if data is None:
        raise PreprocessError("empty", f"{name} is None")
    array = np.asarray(data)
    if array.dtype.names is not None:
        raise PreprocessError(
            "bad_dtype",
            f"{name} is a structured array (fields {array.dtype.names}); pass a plain numeric array, "
            "e.g. numpy.lib.recfunctions.structured_to_unstructured",
        )
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise PreprocessError("bad_dtype", f"{name} must be a real integer or float array, got {array.dtype}")
    return array


# --- depth ----------------------------------------------------------------------------------------


def _area_sum(values: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    """Resample `values` along `axis` to n_out cells, each the overlap-weighted SUM of the input pixels
    it covers (area resampling; works for shrinking and enlarging).

    Plain numpy, no BLAS: a threaded matrix product here stalls badly on a busy machine.
    """
    n_in = values.shape[axis]
    if n_in % n_out == 0:
        # Whole pixels per cell: a reshape and sum is exact and fastest.
        shape = (*values.shape[:axis], n_out, n_in // n_out, *values.shape[axis + 1 :])
        return values.reshape(shape).sum(axis=axis + 1)
    # Fractional cells: difference of the running integral, read at the cell edges.
    moved = np.moveaxis(values, axis, 0).astype(np.float64)
    integral = np.concatenate([np.zeros((1, *moved.shape[1:])), np.cumsum(moved, axis=0)])
    edges = np.arange(n_out + 1, dtype=np.float64) * (n_in / n_out)
    pixel = np.minimum(np.floor(edges).astype(np.intp), n_in - 1)
    frac = (edges - pixel).reshape(-1, *([1] * (moved.ndim - 1)))
    at_edges = integral[pixel] + frac * moved[pixel]
    return np.moveaxis(np.diff(at_edges, axis=0), 0, axis)


def preprocess_depth(
    depth: np.ndarray,
    *,
    scale_to_m: float | None = None,
    crop: tuple[int, int, int, int] | None = None,
    out_hw: tuple[int, int] = DEPTH_INPUT_HW,
    max_range_m: float = 8.0,
) -> np.ndarray:
    """Depth image -> (1, H_out, W_out) float32 metres, 0 = invalid.

    depth: (H, W) integer millimetres (0 = no return, REP 118) or float metres (NaN, Inf, <= 0 invalid).
    scale_to_m: metres per unit; None picks 0.001 for integer input and 1.0 for float input.
    crop: (top, left, height, width) in pixels of the input, applied before resizing; None = whole frame.
    The resize averages only valid pixels over each output cell (so holes do not pull depth towards 0);
    a cell with no valid pixel is 0. Valid depths beyond max_range_m are clipped to it.
    """
    array = _as_real_array(depth, "depth")
    if array.ndim != 2:
        raise PreprocessError("bad_shape", f"depth must be (H, W), got shape {array.shape}")
    if array.size == 0:
        raise PreprocessError("empty", f"depth image is empty, shape {array.shape}")
    if len(out_hw) != 2 or min(out_hw) < 1:
        raise ValueError(f"out_hw must be two positive sizes, got {out_hw}")
    if not max_range_m > 0:
        raise ValueError(f"max_range_m must be positive, got {max_range_m}")
    if scale_to_m is None:
        scale_to_m = 0.001 if np.issubdtype(array.dtype, np.integer) else 1.0
    if not (np.isfinite(scale_to_m) and scale_to_m > 0):
        raise ValueError(f"scale_to_m must be a positive number, got {scale_to_m}")

    if crop is not None:
        top, left, height, width = (int(v) for v in crop)
        rows, cols = array.shape
        if top < 0 or left < 0 or height < 1 or width < 1 or top + height > rows or left + width > cols:
            raise PreprocessError(
                "bad_crop",
                f"crop (top={top}, left={left}, h={height}, w={width}) outside a {rows}x{cols} image",
            )
        array = array[top : top + height, left : left + width]

    metres = array.astype(np.float32) * np.float32(scale_to_m)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(metres) & (metres > 0)
    if not valid.any():
        raise PreprocessError("no_valid_pixels", "depth image has no valid pixel (all 0, NaN, Inf or <= 0)")
    metres = np.where(valid, np.minimum(metres, np.float32(max_range_m)), np.float32(0.0))

    total = _area_sum(_area_sum(metres, out_hw[0], 0), out_hw[1], 1)
    count = _area_sum(_area_sum(valid.astype(np.float32), out_hw[0], 0), out_hw[1], 1)
    # Cells whose valid overlap is a rounding crumb count as empty.
    has_data = count > 1e-6
    out = np.zeros(out_hw, dtype=np.float32)
    np.divide(total, count, out=out, where=has_data, casting="unsafe")
    # Float rounding can push an average a hair past the clip.
    np.minimum(out, np.float32(max_range_m), out=out)
    return out[None]


# --- LiDAR ----------------------------------------------------------------------------------------

# Statistical outlier removal: a point whose mean distance to its neighbours is more than STD_RATIO
# standard deviations above the cloud's average is dropped (stray returns, clutter specks).
_OUTLIER_NEIGHBOURS = 20
_OUTLIER_STD_RATIO = 2.0


def preprocess_lidar(
    points: np.ndarray,
    *,
    roi: LidarROI = LidarROI(),  # frozen, so a shared default is safe
    num_points: int = LIDAR_NUM_POINTS,
    voxel_size_m: float = 0.02,
    min_points: int = 16,
) -> np.ndarray:
    """Point cloud -> (num_points, 3) float32 in the LiDAR frame.

    points: (N, >=3) array; the first three columns are x, y, z in metres (extra columns such as
    intensity are ignored). Non-finite rows are dropped whatever the sender claims (never trust a
    PointCloud2 is_dense flag). Then: ROI box crop, statistical outlier removal, voxel downsample
    (voxel_size_m <= 0 skips it), farthest point sampling to num_points; a cloud with fewer points is
    padded by repeating its points in order (deterministic). Fewer than min_points after filtering
    raises PreprocessError("too_few_points").
    """
    if num_points < 1:
        raise ValueError(f"num_points must be positive, got {num_points}")
    array = _as_real_array(points, "points")
    if array.ndim != 2 or array.shape[1] < 3:
        raise PreprocessError("bad_shape", f"points must be (N, >=3), got shape {array.shape}")
    if array.shape[0] == 0:
        raise PreprocessError("empty", "point cloud has no points")

    xyz = array[:, :3].astype(np.float64, copy=False)
    xyz = xyz[np.isfinite(xyz).all(axis=1)]
    if xyz.shape[0] == 0:
        raise PreprocessError("non_finite", f"all {array.shape[0]} points are NaN or Inf")
    xyz = xyz[roi.contains(xyz)]
    if xyz.shape[0] < min_points:
        raise PreprocessError(
            "too_few_points", f"{xyz.shape[0]} points inside the ROI {roi}, need at least {min_points}"
        )

    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.ascontiguousarray(xyz)))
    if len(cloud.points) > _OUTLIER_NEIGHBOURS:
        cloud, _ = cloud.remove_statistical_outlier(_OUTLIER_NEIGHBOURS, _OUTLIER_STD_RATIO)
    if voxel_size_m > 0:
        cloud = cloud.voxel_down_sample(voxel_size_m)
    count = len(cloud.points)
    if count < min_points:
        raise PreprocessError(
            "too_few_points", f"{count} points left after outlier removal and voxelisation, need {min_points}"
        )
    if count > num_points:
        cloud = cloud.farthest_point_down_sample(num_points)
    sampled = np.asarray(cloud.points, dtype=np.float32)
    if sampled.shape[0] < num_points:
        sampled = sampled[np.arange(num_points) % sampled.shape[0]]
    return sampled


# --- WiFi CSI -------------------------------------------------------------------------------------


def _fill_nan_by_packet(values: np.ndarray) -> np.ndarray:
    """Fill NaN with the mean of the same packet over antennas and subcarriers (MM-Fi toolbox style).

    A packet with no finite value at all takes the mean of the whole frame instead.
    """
    nan = np.isnan(values)
    if not nan.any():
        return values
    counts = (~nan).sum(axis=(0, 1))
    sums = np.where(nan, 0.0, values).sum(axis=(0, 1))
    frame_mean = sums.sum() / counts.sum()
    packet_mean = np.divide(sums, counts, out=np.full_like(sums, frame_mean), where=counts > 0)
    return np.where(nan, packet_mean[None, None, :], values)


def _sanitise_csi(array: np.ndarray, name: str) -> np.ndarray:
    values = array.astype(np.float64)  # a copy, so the caller's array is never touched
    values[np.isinf(values)] = np.nan
    if np.isnan(values).all():
        raise PreprocessError("non_finite", f"CSI {name} has no finite value")
    return _fill_nan_by_packet(values)


def _detrend_phase(phase: np.ndarray) -> np.ndarray:
    """Unwrap over subcarriers and remove the least-squares line per antenna and packet.

    The slope is the timing offset (sampling time / packet detection delay), the intercept the
    per-packet random phase of the carrier; both carry no information about the person.
    """
    unwrapped = np.unwrap(phase, axis=1)
    k = np.arange(phase.shape[1], dtype=np.float64)
    k -= k.mean()
    centred = unwrapped - unwrapped.mean(axis=1, keepdims=True)
    slope = np.einsum("k,akp->ap", k, centred) / np.dot(k, k)
    return centred - slope[:, None, :] * k[None, :, None]


def _normalise_amplitude(amplitude: np.ndarray) -> np.ndarray:
    """Robust per-frame z-score: (a - median) / (1.4826 MAD), clipped; a flat frame becomes zeros."""
    median = np.median(amplitude)
    spread = 1.4826 * np.median(np.abs(amplitude - median))
    if not spread > 1e-12:
        # MAD is 0 when over half the values are equal; fall back to the standard deviation.
        spread = amplitude.std()
    if not spread > 1e-12:
        return np.zeros_like(amplitude)
    return np.clip((amplitude - median) / spread, -CSI_AMPLITUDE_CLIP, CSI_AMPLITUDE_CLIP)


def preprocess_csi(amplitude: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """CSI amplitude and phase, each (3, 114, 10) antennas x subcarriers x packets -> (6, 114, 10) float32.

    Inf becomes NaN and NaN is filled with the packet's mean (MM-Fi toolbox); the phase is unwrapped
    over subcarriers with its linear slope and offset removed per antenna and packet; the amplitude is
    a robust per-frame z-score. Channels 0-2 are amplitude, 3-5 phase (radians), per antenna.
    """
    amp = _as_real_array(amplitude, "CSI amplitude")
    pha = _as_real_array(phase, "CSI phase")
    for name, array in (("amplitude", amp), ("phase", pha)):
        if array.size == 0:
            raise PreprocessError("empty", f"CSI {name} is empty, shape {array.shape}")
        if array.shape != CSI_RAW_SHAPE:
            raise PreprocessError(
                "bad_shape",
                f"CSI {name} must be {CSI_RAW_SHAPE} (antennas, subcarriers, packets), got {array.shape}",
            )
    amp = _normalise_amplitude(_sanitise_csi(amp, "amplitude"))
    pha = _detrend_phase(_sanitise_csi(pha, "phase"))
    return np.concatenate([amp, pha], axis=0).astype(np.float32)
