"""Per-modality preprocessing shared by training, evaluation and the ROS adapters.

Each function turns one raw sensor frame into the fixed-shape array the model takes, or raises
`PreprocessError` (with a short `.reason` slug that nodes count) for input it cannot use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from midas_ros.interfaces import CSI_RAW_SHAPE, DEPTH_INPUT_HW, LIDAR_NUM_POINTS

# Robust z-scores of CSI amplitude beyond this are glitches (Atheros spikes), not signal.
CSI_AMPLITUDE_CLIP = 10.0


class PreprocessError(ValueError):
    """Input that a preprocess function cannot use; `.reason` is a short slug for counting rejections."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class LidarROI:
    """Axis-aligned box in the LiDAR frame (metres) that keeps a person in the sensing area.

    Defaults follow the rig in docs/design.md: the LiDAR is 1.3 m above the floor (floor at z = -1.3),
    people stand 2.2..4 m ahead with |y| < 1 m. The box drops the floor (z_min is 5 cm above it) and the
    ceiling, with margin for jumps, lunges and stretched arms. Walls and furniture closer than 6 m ahead
    or 2.5 m to the side stay inside it: fit the box to the room. In the simulator's rooms the defaults
    hold only the person in E04, while E01-E03 put 1,000-4,400 wall and furniture returns of a 64 x 1024
    scan inside it, and the model then fails; x 1.0..4.75, |y| <= 1.55 holds the person and nothing
    else in all four (docs/bench_lidar.md).
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
# standard deviations above the cloud's average is dropped (stray returns, mixed pixels, clutter specks).
_OUTLIER_NEIGHBOURS = 20
_OUTLIER_STD_RATIO = 2.0

# The filters get at most this many points. Outlier removal (open3d k-NN: 1.6 us a point on the 2-core
# benchmark machine, 3 us when its second OpenMP thread finds no free core) and FPS (N x num_points)
# hold the GIL for their whole call, so a full scan (65,536..262,144 points) must not reach them as it
# is: above this, the ROI's points are first reduced (coarse voxel grid, then every n-th point if still
# too many); at or below it, the original order runs unchanged (outlier removal, then the fine grid),
# so the training clouds (person crops, 150..450 points in the ROI) and, nearly always, a person alone
# in a 64 x 1024 scan (400..1050) get exactly the output the shipped model was trained on. 1024 keeps
# outlier removal and FPS at ~3 ms or less.
LIDAR_REDUCE_ABOVE = 1024
# 3 cm: coarser than the beam spacing of a 128 x 2048 scan on a person at 3 m (0.9 x 1.9 cm), which it
# halves (a person keeps 900..1700 points). Coarser grids cost the shipped model accuracy (128 x 2048,
# person-only ROI: +2 % MPJPE at 3 cm, +4 % at 4 cm, +8 % at 5 cm); thinning the rest to 1024 points
# costs none. Walls and furniture inside the ROI are what the thinning is for. See docs/bench_lidar.md.
LIDAR_REDUCE_VOXEL_M = 0.03


def _lidar_stride(stride: int | tuple[int, int]) -> tuple[int, int]:
    rows, cols = (stride, stride) if isinstance(stride, int | np.integer) else stride
    if int(rows) < 1 or int(cols) < 1:
        raise ValueError(f"stride must be positive, got {stride}")
    return int(rows), int(cols)


def _lidar_roi_points(array: np.ndarray, roi: LidarROI, stride: tuple[int, int]) -> np.ndarray:
    """(N, >=3) or organised (H, W, >=3) -> (n, 3) float64 of the valid points inside the ROI.

    One pass of comparisons on the x, y, z channels, in the input dtype (a float32 scan is not copied
    to float64 first); NaN and Inf fail every comparison, so they fall out with the ROI test.
    """
    if array.ndim == 3:
        array = array[:: stride[0], :: stride[1]]
    elif stride != (1, 1):
        raise ValueError("stride applies to organised (H, W, 3) clouds only")
    x, y, z = array[..., 0], array[..., 1], array[..., 2]
    inside = x >= roi.x_min
    inside &= x <= roi.x_max
    inside &= y >= roi.y_min
    inside &= y <= roi.y_max
    inside &= z >= roi.z_min
    inside &= z <= roi.z_max
    if roi.contains(np.zeros((1, 3)))[0]:
        inside &= (x != 0) | (y != 0) | (z != 0)  # (0, 0, 0) = no return (Ouster, Livox)
    xyz = array[inside][:, :3].astype(np.float64)
    if xyz.shape[0] == 0 and not (np.isfinite(x) & np.isfinite(y) & np.isfinite(z)).any():
        raise PreprocessError("non_finite", f"all {x.size} points are NaN or Inf")
    return xyz


def preprocess_lidar(
    points: np.ndarray,
    *,
    roi: LidarROI = LidarROI(),  # frozen, so a shared default is safe
    num_points: int = LIDAR_NUM_POINTS,
    voxel_size_m: float = 0.02,
    min_points: int = 16,
    stride: int | tuple[int, int] = 1,
    reduce_above: int = LIDAR_REDUCE_ABOVE,
    reduce_voxel_m: float = LIDAR_REDUCE_VOXEL_M,
) -> np.ndarray:
    """Point cloud -> (num_points, 3) float32 in the LiDAR frame.

    points: (N, >=3) array, or an organised scan (H, W, >=3) as Ouster drivers publish it; the first
    three channels are x, y, z in metres (extra ones such as intensity are ignored). NaN/Inf rows are
    dropped whatever the sender claims (never trust a PointCloud2 is_dense flag), and so are (0, 0, 0)
    rows ("no return"); a cloud with no finite row raises PreprocessError("non_finite").
    stride: (rows, columns) or one int; keeps every n-th ring / column of an organised scan first, e.g.
    (2, 1) turns a 64-beam scan into the 32-beam density the shipped model was trained on.

    Then: ROI box crop; if more than reduce_above (or num_points) points remain, a reduce_voxel_m voxel
    grid (reduce_voxel_m <= 0: never) and, if still more, every n-th point down to that many; statistical
    outlier removal; a voxel_size_m grid (<= 0 skips it; skipped after the coarse grid, which left it
    nothing to merge); farthest point sampling to num_points; a cloud with fewer points is padded by
    repeating its points in order. Fewer than min_points inside the ROI or after filtering raises
    PreprocessError("too_few_points"). The same input always gives the same output.
    """
    if num_points < 1:
        raise ValueError(f"num_points must be positive, got {num_points}")
    step = _lidar_stride(stride)
    array = _as_real_array(points, "points")
    if array.ndim not in (2, 3) or array.shape[-1] < 3:
        raise PreprocessError(
            "bad_shape", f"points must be (N, >=3) or organised (H, W, >=3), got shape {array.shape}"
        )
    if array.size == 0:
        raise PreprocessError("empty", f"point cloud has no points, shape {array.shape}")

    xyz = _lidar_roi_points(array, roi, step)
    if xyz.shape[0] < min_points:
        raise PreprocessError(
            "too_few_points",
            f"{xyz.shape[0]} points inside the ROI {roi} (NaN, Inf and (0, 0, 0) no-returns dropped), "
            f"need at least {min_points}",
        )

    import open3d as o3d  # heavy (about 0.7 s): loaded on first use, not when a node module is imported

    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz))
    budget = max(reduce_above, num_points)
    if reduce_voxel_m > 0 and len(cloud.points) > budget:
        # Reduce first, so that the filters below see at most `budget` points. The grid returns its
        # points in hash order, so every n-th one thins as evenly as a random pick (measured).
        cloud = cloud.voxel_down_sample(max(reduce_voxel_m, voxel_size_m))
        if len(cloud.points) > budget:
            cloud = cloud.select_by_index(np.arange(0, len(cloud.points), -(-len(cloud.points) // budget)))
        if len(cloud.points) > _OUTLIER_NEIGHBOURS:
            cloud, _ = cloud.remove_statistical_outlier(_OUTLIER_NEIGHBOURS, _OUTLIER_STD_RATIO)
    else:
        # The training clouds' path, unchanged: outlier removal sees the raw point spacing.
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
