"""LiDAR point cloud -> the model's LiDAR input: the person's points in the base frame.

The cloud is brought into the base frame with the LiDAR's pose, the person is found there
(preprocess.person, the same search as for depth), and the person's points are cleaned and sampled to a
fixed count. `crop_person` gives the same person's points in the LiDAR frame, as MM-Fi's person-centred
clouds are: the simulator writes those, and they pass through `preprocess_lidar` again unchanged in
what they give.
"""

from __future__ import annotations

import numpy as np

from midas_ros.interfaces import LIDAR_NUM_POINTS
from midas_ros.preprocess.common import PreprocessError, as_real_array
from midas_ros.preprocess.person import PersonBox, PersonSearch, PersonTrack, find_person
from midas_ros.rig import Pose

# Statistical outlier removal: a point whose mean distance to its neighbours is more than STD_RATIO
# standard deviations above the cloud's average is dropped (stray returns, mixed pixels, clutter specks).
_OUTLIER_NEIGHBOURS = 20
_OUTLIER_STD_RATIO = 2.0

# The filters get at most this many points. Outlier removal (open3d k-NN: 1.6 us a point on the 2-core
# benchmark machine) and FPS (N x num_points) hold the GIL for their whole call, so a dense person (a
# 128 x 2048 scan at 2 m gives several thousand points) is first reduced on a coarse voxel grid (then
# every n-th point if still too many). 1024 keeps outlier removal and FPS at ~3 ms or less.
LIDAR_REDUCE_ABOVE = 1024
# 3 cm: coarser than the beam spacing of a 128 x 2048 scan on a person at 3 m (0.9 x 1.9 cm), which it
# halves. Coarser grids cost accuracy (docs/bench_lidar.md).
LIDAR_REDUCE_VOXEL_M = 0.03


def _lidar_stride(stride: int | tuple[int, int]) -> tuple[int, int]:
    rows, cols = (stride, stride) if isinstance(stride, int | np.integer) else stride
    if int(rows) < 1 or int(cols) < 1:
        raise ValueError(f"stride must be positive, got {stride}")
    return int(rows), int(cols)


def valid_points(points: np.ndarray, stride: int | tuple[int, int] = 1) -> np.ndarray:
    """(N, >=3) or organised (H, W, >=3) cloud -> (n, 3) float64 of its real returns (LiDAR frame).

    NaN/Inf rows are dropped whatever the sender claims (never trust a PointCloud2 is_dense flag), and
    so are (0, 0, 0) rows ("no return" of Ouster and Livox drivers). stride keeps every n-th ring and
    column of an organised scan. Raises PreprocessError for bad shapes, empty and all-invalid clouds.
    """
    step = _lidar_stride(stride)
    array = as_real_array(points, "points")
    if array.ndim not in (2, 3) or array.shape[-1] < 3:
        raise PreprocessError(
            "bad_shape", f"points must be (N, >=3) or organised (H, W, >=3), got shape {array.shape}"
        )
    if array.size == 0:
        raise PreprocessError("empty", f"point cloud has no points, shape {array.shape}")
    if array.ndim == 3:
        array = array[:: step[0], :: step[1]]
    elif step != (1, 1):
        raise ValueError("stride applies to organised (H, W, 3) clouds only")
    xyz = array[..., :3].reshape(-1, 3)
    x, y, z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    # Column by column: reductions over (N, 3) rows cost 10x more on a 65,536-point scan.
    keep = np.isfinite(x)
    keep &= np.isfinite(y)
    keep &= np.isfinite(z)
    keep &= (x != 0) | (y != 0) | (z != 0)
    if not keep.any():
        raise PreprocessError("non_finite", f"none of the {xyz.shape[0]} points is a finite return")
    return xyz[keep].astype(np.float64)


def _person(
    points: np.ndarray,
    lidar_pose: Pose,
    search: PersonSearch,
    near: np.ndarray | None,
    stride: int | tuple[int, int],
) -> tuple[np.ndarray, np.ndarray, PersonBox]:
    """The person's points (LiDAR frame), the same in the base frame, and the person's box."""
    local = valid_points(points, stride)
    base = lidar_pose.to_base(local)
    inside = search.contains(base)  # once here: find_person then works on the region's points only
    local, base = local[inside], base[inside]
    person = find_person(base, search, near)
    mine = person.contains(base)
    return local[mine], base[mine], person


def crop_person(points: np.ndarray, lidar_pose: Pose, search: PersonSearch = PersonSearch()) -> np.ndarray:
    """The person's points of a cloud, (n, 3) float64 in the LiDAR frame (a person-centred cloud)."""
    return _person(points, lidar_pose, search, None, 1)[0]


def preprocess_lidar(
    points: np.ndarray,
    lidar_pose: Pose,
    *,
    search: PersonSearch = PersonSearch(),  # frozen, so a shared default is safe
    track: PersonTrack | None = None,
    stamp_s: float | None = None,
    num_points: int = LIDAR_NUM_POINTS,
    voxel_size_m: float = 0.02,
    min_points: int = 16,
    stride: int | tuple[int, int] = 1,
    reduce_above: int = LIDAR_REDUCE_ABOVE,
    reduce_voxel_m: float = LIDAR_REDUCE_VOXEL_M,
) -> np.ndarray:
    """Point cloud -> (num_points, 3) float32: the person's points in the base frame.

    points: (N, >=3), or an organised scan (H, W, >=3) as Ouster drivers publish it, in the LiDAR
    frame at lidar_pose (base frame); extra channels such as intensity are ignored. stride: (rings,
    columns) or one int, thins an organised scan first. track / stamp_s: as preprocess_depth.

    Then: the person's points (preprocess.person); above reduce_above a reduce_voxel_m grid (and
    every n-th point if still more); statistical outlier removal; a voxel_size_m grid (<= 0 skips
    it); farthest point sampling to num_points, or padding by repeating points in order. Raises
    PreprocessError (no_person, too_few_points, ...) for clouds it cannot use; the same input always
    gives the same output.
    """
    if num_points < 1:
        raise ValueError(f"num_points must be positive, got {num_points}")
    near = track.near(stamp_s) if track is not None else None
    _, xyz, person = _person(points, lidar_pose, search, near, stride)
    if xyz.shape[0] < min_points:
        raise PreprocessError("too_few_points", f"the person has {xyz.shape[0]} points, need {min_points}")

    import open3d as o3d  # heavy (about 0.7 s): loaded on first use, not when a node module is imported

    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz))
    budget = max(reduce_above, num_points)
    if reduce_voxel_m > 0 and len(cloud.points) > budget:
        # The grid returns its points in hash order, so every n-th one thins as evenly as a random pick.
        cloud = cloud.voxel_down_sample(max(reduce_voxel_m, voxel_size_m))
        if len(cloud.points) > budget:
            cloud = cloud.select_by_index(np.arange(0, len(cloud.points), -(-len(cloud.points) // budget)))
        if len(cloud.points) > _OUTLIER_NEIGHBOURS:
            cloud, _ = cloud.remove_statistical_outlier(_OUTLIER_NEIGHBOURS, _OUTLIER_STD_RATIO)
    else:
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
    if track is not None:
        track.update(person.centroid, stamp_s)
    return sampled
