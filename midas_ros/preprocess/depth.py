"""Depth image -> the model's depth input: the person's visible surface as points in the base frame.

The image is back-projected with its camera's intrinsics (sensor_msgs/CameraInfo) and pose into the
base frame, the person is found there (preprocess.person), and only the person's points are kept,
averaged on a DEPTH_VOXEL_M grid and brought to a fixed count (DEPTH_NUM_POINTS). So a 640 x 480 camera
at fx 383, an 848 x 480 one at fx 421, a 1280 x 720 or a 640 x 576 one, mounted low or high, tilted or
not, give nearly the same input for the same person, and walls and furniture never reach the model.
The model draws these points into a depth raster around the person (model/person_frame.py).
"""

from __future__ import annotations

import numpy as np

from midas_ros.interfaces import DEPTH_NUM_POINTS
from midas_ros.preprocess.common import PreprocessError, as_real_array
from midas_ros.preprocess.person import PersonSearch, PersonTrack, find_person
from midas_ros.rig import CameraIntrinsics, Pose

# Clustering uses every n-th pixel such that neighbours are about 10 mrad apart (0.04 m at 4 m).
_CLUSTER_STEP_RAD = 0.01
MIN_PERSON_PIXELS = 50
# The person's surface is averaged on a grid this fine: finer than the model's 2.5 cm depth raster
# (model/person_frame.py), so every raster pixel a surface faces still gets a point, and as fine for a
# near 1280 x 720 camera as for a far 640 x 480 one.
DEPTH_VOXEL_M = 0.02


def back_project(
    metres: np.ndarray,
    intrinsics: CameraIntrinsics,
    pose: Pose,
    rows: slice = slice(None),
    cols: slice = slice(None),
) -> tuple[np.ndarray, np.ndarray]:
    """Base-frame points (N, 3) of the valid (> 0, finite) pixels of metres[rows, cols] (a window or a
    strided grid of the image: a view, not a copy), and their (row, col) indices (N, 2) in the full
    image. metres holds z-depth along the optical axis."""
    k = intrinsics
    depth = metres[rows, cols]
    r, c = np.nonzero(depth > 0)  # NaN compares False
    z = depth[r, c].astype(np.float64)
    row_index, col_index = np.arange(metres.shape[0])[rows], np.arange(metres.shape[1])[cols]
    # A pixel's ray in camera_link axes (forward = optical z, left = -optical x, up = -optical y) is
    # (1, -(u - cx) / fx, -(v - cy) / fy); in the base frame a column's part plus a row's part.
    rotation, translation = pose.rotation(), pose.translation
    left = -(col_index - k.cx) / k.fx
    up = -(row_index - k.cy) / k.fy
    points = np.empty((z.size, 3))
    for axis in range(3):
        along_col = rotation[axis, 0] + rotation[axis, 1] * left
        along_row = rotation[axis, 2] * up
        points[:, axis] = z * (along_col[c] + along_row[r]) + translation[axis]
    return points, np.stack([row_index[r], col_index[c]], axis=-1)


def fixed_count(points: np.ndarray, count: int) -> np.ndarray:
    """(N, 3) -> (count, 3): evenly spaced rows when N > count, the rows repeated in order when fewer."""
    n = points.shape[0]
    if n >= count:
        return points[(np.arange(count) * n) // count]
    return points[np.arange(count) % n]


def preprocess_depth(
    depth: np.ndarray,
    intrinsics: CameraIntrinsics,
    camera_pose: Pose,
    *,
    scale_to_m: float | None = None,
    search: PersonSearch = PersonSearch(),  # frozen, so a shared default is safe
    track: PersonTrack | None = None,
    stamp_s: float | None = None,
    max_range_m: float = 8.0,
    num_points: int = DEPTH_NUM_POINTS,
    voxel_size_m: float = DEPTH_VOXEL_M,
) -> np.ndarray:
    """Depth image -> (num_points, 3) float32: the person's visible surface in the base frame.

    depth: (H, W) integer millimetres (0 = no return, REP 118) or float metres (NaN, Inf, <= 0
    invalid), rectified, of the camera described by intrinsics (CameraInfo) at camera_pose (base
    frame). scale_to_m: metres per unit; None picks 0.001 for integers and 1.0 for floats. Depths
    beyond max_range_m are ignored. track: the caller's PersonTrack (frames in order; stamp_s in
    seconds), or None for frames that stand alone. The person's points are averaged per voxel_size_m
    voxel, then evenly thinned or repeated in order to num_points. Raises PreprocessError for unusable input:
    bad_shape, bad_dtype, empty, no_valid_pixels, no_person, too_few_points.
    """
    array = as_real_array(depth, "depth")
    if array.ndim != 2:
        raise PreprocessError("bad_shape", f"depth must be (H, W), got shape {array.shape}")
    if array.size == 0:
        raise PreprocessError("empty", f"depth image is empty, shape {array.shape}")
    if array.shape != (intrinsics.height, intrinsics.width):
        raise PreprocessError(
            "bad_shape",
            f"depth image is {array.shape[1]}x{array.shape[0]} but its camera is "
            f"{intrinsics.width}x{intrinsics.height} (camera_info of another stream?)",
        )
    if scale_to_m is None:
        scale_to_m = 0.001 if np.issubdtype(array.dtype, np.integer) else 1.0
    if not (np.isfinite(scale_to_m) and scale_to_m > 0):
        raise ValueError(f"scale_to_m must be a positive number, got {scale_to_m}")
    metres = array.astype(np.float32) * np.float32(scale_to_m)
    with np.errstate(invalid="ignore"):
        metres[~(metres <= max_range_m)] = 0.0  # NaN and beyond range -> invalid
    if not (metres > 0).any():
        raise PreprocessError("no_valid_pixels", "depth image has no valid pixel (all 0, NaN, Inf or <= 0)")

    step = max(1, round(min(intrinsics.fx, intrinsics.fy) * _CLUSTER_STEP_RAD))
    coarse, pixels = back_project(metres, intrinsics, camera_pose, slice(0, None, step), slice(0, None, step))
    near = track.near(stamp_s) if track is not None else None
    person = find_person(coarse, search, near)

    # Only the image window around the person's coarse pixels is back-projected at full resolution.
    hit = pixels[person.contains(coarse)]
    r0, c0 = np.maximum(hit.min(axis=0) - step, 0)
    r1, c1 = hit.max(axis=0) + step + 1
    points, _ = back_project(metres, intrinsics, camera_pose, slice(r0, r1), slice(c0, c1))
    points = points[person.contains(points) & search.contains(points)]
    if points.shape[0] < MIN_PERSON_PIXELS:
        raise PreprocessError(
            "too_few_points", f"the person has {points.shape[0]} pixels, need {MIN_PERSON_PIXELS}"
        )
    if track is not None:
        track.update(person.centroid, stamp_s)
    return fixed_count(voxel_means(points, voxel_size_m), num_points).astype(np.float32)


def voxel_means(points: np.ndarray, voxel_size_m: float) -> np.ndarray:
    """The mean point of each occupied voxel of a voxel_size_m grid, in a fixed (lexicographic) order."""
    if voxel_size_m <= 0:
        return points
    keys = np.floor(points / voxel_size_m).astype(np.int64)
    keys -= keys.min(axis=0)
    span = keys.max(axis=0) + 1
    flat = (keys[:, 0] * span[1] + keys[:, 1]) * span[2] + keys[:, 2]
    _, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    sums = np.stack([np.bincount(inverse, points[:, i], minlength=counts.size) for i in range(3)], axis=-1)
    return sums / counts[:, None]
