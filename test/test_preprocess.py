"""Preprocessing: depth and LiDAR into the base frame holding only the person, CSI cleaning."""

from __future__ import annotations

import numpy as np
import pytest

from midas_ros.interfaces import CSI_INPUT_SHAPE, DEPTH_NUM_POINTS, INPUT_SHAPES, LIDAR_NUM_POINTS
from midas_ros.preprocess import (
    PersonSearch,
    PersonTrack,
    PreprocessError,
    crop_person,
    preprocess_csi,
    preprocess_depth,
    preprocess_lidar,
)
from midas_ros.preprocess.depth import DEPTH_VOXEL_M, back_project, fixed_count, voxel_means
from midas_ros.preprocess.lidar import valid_points
from midas_ros.rig import MMFI_RIG, CameraIntrinsics, Pose

# --- a tiny analytic scene: floor, back wall and boxes, for exact depth images --------------------------

PERSON_BOX = ((2.85, -0.2, 0.0), (3.15, 0.2, 1.7))  # a standing person as a 0.3 x 0.4 x 1.7 m column
TABLE_BOX = ((2.0, 1.0, 0.0), (2.8, 1.8, 0.65))
BACK_WALL_X = 6.0  # beyond the person search region (x <= 5 m)

MMFI_K = MMFI_RIG.depth_intrinsics  # 640 x 480, fx 383, at Pose(z=1.0)
D435_K = CameraIntrinsics(848, 480, 421.0, 421.0, 423.5, 239.5)


def _render(
    intrinsics: CameraIntrinsics,
    pose: Pose,
    boxes: tuple = (PERSON_BOX, TABLE_BOX),
) -> np.ndarray:
    """(H, W) float64 z-depth in metres (inf = no hit) of the floor, a back wall and boxes (base frame)."""
    k = intrinsics
    v, u = np.mgrid[0 : k.height, 0 : k.width].astype(np.float64)
    body = np.stack([np.ones_like(u), -(u - k.cx) / k.fx, -(v - k.cy) / k.fy], axis=-1)  # x = 1: t is z
    d = body @ pose.rotation().T
    o = pose.translation
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(d[..., 2] < 0, -o[2] / d[..., 2], np.inf)  # floor z = 0
        t = np.minimum(t, np.where(d[..., 0] > 0, (BACK_WALL_X - o[0]) / d[..., 0], np.inf))
        for lo, hi in boxes:
            t0 = (np.asarray(lo) - o) / d
            t1 = (np.asarray(hi) - o) / d
            near = np.nanmax(np.minimum(t0, t1), axis=-1)
            far = np.nanmin(np.maximum(t0, t1), axis=-1)
            t = np.where((near <= far) & (near > 0), np.minimum(t, near), t)
    return t


@pytest.fixture(scope="module")
def scene_m() -> np.ndarray:
    """The scene from MM-Fi's camera (640 x 480 at 1.0 m, level), float32 metres."""
    return _render(MMFI_K, MMFI_RIG.depth_pose).astype(np.float32)


@pytest.fixture(scope="module")
def level_out(scene_m: np.ndarray) -> np.ndarray:
    """preprocess_depth of scene_m with MM-Fi's camera and pose."""
    return preprocess_depth(scene_m, MMFI_K, MMFI_RIG.depth_pose)


def _in_box(points: np.ndarray, box: tuple, tol: float = 1e-4) -> np.ndarray:
    lo, hi = np.asarray(box[0]) - tol, np.asarray(box[1]) + tol
    return np.all((points >= lo) & (points <= hi), axis=1)


def _voxel_keys(points: np.ndarray) -> set[tuple[int, ...]]:
    """The DEPTH_VOXEL_M grid cells that points fall in (a voxel mean lies in its own cell)."""
    return set(map(tuple, np.floor(np.asarray(points, np.float64) / DEPTH_VOXEL_M).astype(int).tolist()))


def _distance_to_skeleton(points: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """Distance of each point to the nearest bone (segment between joints)."""
    from midas_ros.skeleton import BONES

    a = joints[[p for p, _ in BONES]][None]
    b = joints[[c for _, c in BONES]][None]
    ab = b - a
    t = np.clip(((points[:, None] - a) * ab).sum(-1) / (ab * ab).sum(-1), 0.0, 1.0)
    return np.linalg.norm(points[:, None] - (a + t[..., None] * ab), axis=-1).min(axis=1)


# --- depth ----------------------------------------------------------------------------------------


def test_depth_output_is_the_persons_surface_in_the_base_frame(level_out: np.ndarray) -> None:
    out = level_out
    assert out.shape == (DEPTH_NUM_POINTS, 3) == INPUT_SHAPES["depth"] and out.dtype == np.float32
    # Every point is on the person's front face (x = 2.85 m), the only face a level camera 1.0 m up
    # sees: none on the floor, the table or the back wall.
    assert _in_box(out, PERSON_BOX).all()
    np.testing.assert_allclose(out[:, 0], PERSON_BOX[0][0], atol=1e-4)
    assert not _in_box(out, TABLE_BOX, tol=0.05).any()
    assert out[:, 2].min() > PersonSearch().floor_m - 1e-4  # the floor cut
    # and all of the face: 0.4 m wide from the floor cut to 1.7 m, in 2 cm voxels (voxel means lie
    # within half a voxel of the face's edges), each voxel once or repeated up to the fixed count
    y, z = out[:, 1], out[:, 2]
    assert y.min() < -0.2 + DEPTH_VOXEL_M and y.max() > 0.2 - DEPTH_VOXEL_M
    assert z.min() < PersonSearch().floor_m + DEPTH_VOXEL_M and z.max() > 1.7 - DEPTH_VOXEL_M
    voxels = len(np.unique(out, axis=0))
    expected = (0.4 / DEPTH_VOXEL_M) * ((1.7 - PersonSearch().floor_m) / DEPTH_VOXEL_M)  # 1600
    assert 0.95 * expected < voxels < 1.1 * expected
    assert len(_voxel_keys(out)) == voxels  # one point per voxel
    # fewer voxels than the count: repeated in order, so the first `voxels` rows are all of them
    assert len(np.unique(out[:voxels], axis=0)) == voxels
    np.testing.assert_array_equal(out[voxels : 2 * voxels], out[:voxels])


def test_depth_same_person_from_another_camera_and_pose_gives_the_same_points(level_out: np.ndarray) -> None:
    """A D435 at 848 x 480, 1.7 m high looking 20 deg down and rolled 2 deg, gives the same base-frame
    points of the person as MM-Fi's level 640 x 480 camera at 1.0 m: the same voxels, centroid and
    bounding box within 1 cm (voxel means differ by where each camera's pixels fall in a voxel;
    measured: voxel IoU 1.0, centroids 0.1 mm and bounding boxes 3 mm apart)."""
    pose = Pose(z=1.7, roll=np.deg2rad(2.0), pitch=np.deg2rad(20.0))
    tilted = preprocess_depth(_render(D435_K, pose).astype(np.float32), D435_K, pose)
    assert tilted.shape == level_out.shape and _in_box(tilted, PERSON_BOX).all()
    a, b = _voxel_keys(level_out), _voxel_keys(tilted)
    assert len(a & b) / len(a | b) > 0.9
    np.testing.assert_allclose(
        np.unique(tilted, axis=0).mean(axis=0), np.unique(level_out, axis=0).mean(axis=0), atol=0.01
    )
    np.testing.assert_allclose(tilted.min(axis=0), level_out.min(axis=0), atol=0.01)
    np.testing.assert_allclose(tilted.max(axis=0), level_out.max(axis=0), atol=0.01)


def test_depth_mm_and_metres_give_the_same_output(scene_m: np.ndarray) -> None:
    from midas_ros.sim.drivers import depth_mm_to_m

    mm = np.round(np.where(np.isfinite(scene_m), scene_m, 0) * 1000).astype(np.uint16)
    mm[200:240, 300:310] = 0  # a hole in the person
    metres = depth_mm_to_m(mm)  # float32, NaN where mm is 0: the same values as the uint16 path
    pose = MMFI_RIG.depth_pose
    out_mm = preprocess_depth(mm, MMFI_K, pose)
    assert _in_box(out_mm, PERSON_BOX, tol=0.001).all()  # mm rounding: within a millimetre
    np.testing.assert_array_equal(preprocess_depth(metres, MMFI_K, pose), out_mm)
    np.testing.assert_array_equal(
        preprocess_depth(mm.astype(np.float32), MMFI_K, pose, scale_to_m=0.001), out_mm
    )
    # float64 metres computed another way: equal up to float32 rounding of the values
    np.testing.assert_allclose(preprocess_depth(mm / 1000.0, MMFI_K, pose), out_mm, atol=1e-5)
    np.testing.assert_allclose(preprocess_depth(mm.astype(np.int32), MMFI_K, pose), out_mm)
    for scale in (0.0, -0.001, np.nan, np.inf):
        with pytest.raises(ValueError):
            preprocess_depth(mm, MMFI_K, pose, scale_to_m=scale)


def _in_hole(points: np.ndarray) -> np.ndarray:
    """Points well inside the base-frame patch that pixels rows 200:240, cols 300:310 of MM-Fi's
    camera see on the person's face (y 0.078..0.145 m, z 1.004..1.294 m)."""
    return (points[:, 1] > 0.085) & (points[:, 1] < 0.135) & (points[:, 2] > 1.03) & (points[:, 2] < 1.27)


def test_depth_invalid_pixels_are_left_out(scene_m: np.ndarray, level_out: np.ndarray) -> None:
    """0 (no return), NaN, +-Inf and negative depths are all just missing pixels: no point comes from
    them, and the rest give what the valid pixels alone give."""
    holes = np.zeros(scene_m.shape, dtype=bool)
    holes[::3] = True  # a third of the rows, the person's included
    holes[200:240, 300:310] = True  # and a patch of the person's face
    reference = scene_m.copy()
    reference[holes] = np.nan
    expected = preprocess_depth(reference, MMFI_K, MMFI_RIG.depth_pose)
    assert _in_box(expected, PERSON_BOX).all()
    assert _in_hole(level_out).any() and not _in_hole(expected).any()
    for bad in (0.0, np.inf, -np.inf, -1.0):
        image = scene_m.copy()
        image[holes] = bad
        np.testing.assert_array_equal(preprocess_depth(image, MMFI_K, MMFI_RIG.depth_pose), expected)
    # the caller's image is never modified
    before = scene_m.copy()
    preprocess_depth(scene_m, MMFI_K, MMFI_RIG.depth_pose)
    np.testing.assert_array_equal(scene_m, before)


def test_depth_beyond_max_range_is_ignored(scene_m: np.ndarray, level_out: np.ndarray) -> None:
    # the back wall (6 m) is beyond 5 m: the same person
    np.testing.assert_array_equal(
        preprocess_depth(scene_m, MMFI_K, MMFI_RIG.depth_pose, max_range_m=5.0), level_out
    )
    with pytest.raises(PreprocessError) as info:  # the person (2.85 m) is beyond 2.5 m
        preprocess_depth(scene_m, MMFI_K, MMFI_RIG.depth_pose, max_range_m=2.5)
    assert info.value.reason == "no_person"


def test_depth_image_must_match_its_intrinsics(scene_m: np.ndarray) -> None:
    for intrinsics in (D435_K, CameraIntrinsics(480, 640, 383.0, 383.0, 239.5, 319.5)):
        with pytest.raises(PreprocessError) as info:
            preprocess_depth(scene_m, intrinsics, MMFI_RIG.depth_pose)
        assert info.value.reason == "bad_shape"
        assert f"{intrinsics.width}x{intrinsics.height}" in str(info.value)


@pytest.mark.parametrize(
    ("depth", "reason"),
    [
        (np.zeros((480, 640), dtype=np.uint16), "no_valid_pixels"),
        (np.full((480, 640), np.nan, dtype=np.float32), "no_valid_pixels"),
        (np.full((480, 640), -1.0), "no_valid_pixels"),
        (np.full((480, 640), 9000, dtype=np.uint16), "no_valid_pixels"),  # all beyond max_range_m
        (np.zeros((0, 640), dtype=np.uint16), "empty"),
        (np.ones((3, 480, 640), dtype=np.uint16), "bad_shape"),
        (np.ones(640, dtype=np.uint16), "bad_shape"),
        (np.ones((480, 640), dtype=bool), "bad_dtype"),
        (np.ones((480, 640), dtype=np.complex64), "bad_dtype"),
        (np.zeros((480, 640), dtype=[("d", "u2")]), "bad_dtype"),
        (np.full((480, 640), "1"), "bad_dtype"),
        (None, "empty"),
    ],
)
def test_depth_rejections(depth: np.ndarray, reason: str) -> None:
    with pytest.raises(PreprocessError) as info:
        preprocess_depth(depth, MMFI_K, MMFI_RIG.depth_pose)
    assert info.value.reason == reason
    assert isinstance(info.value, ValueError)


def test_depth_without_a_person_or_with_too_few_pixels() -> None:
    empty_room = _render(MMFI_K, MMFI_RIG.depth_pose, boxes=(TABLE_BOX,))
    with pytest.raises(PreprocessError) as info:
        preprocess_depth(empty_room, MMFI_K, MMFI_RIG.depth_pose)
    assert info.value.reason == "no_person"
    # A 40 x 30 camera at fx 20 sees the person as about 3 x 11 pixels: a person's shape (the coarse
    # grid joins them), too few pixels to keep.
    tiny = CameraIntrinsics(40, 30, 20.0, 20.0, 19.5, 14.5)
    with pytest.raises(PreprocessError) as info:
        preprocess_depth(_render(tiny, MMFI_RIG.depth_pose), tiny, MMFI_RIG.depth_pose)
    assert info.value.reason == "too_few_points"


def test_depth_is_deterministic_and_updates_a_track(scene_m: np.ndarray, level_out: np.ndarray) -> None:
    track = PersonTrack()
    first = preprocess_depth(scene_m, MMFI_K, MMFI_RIG.depth_pose, track=track, stamp_s=5.0)
    np.testing.assert_array_equal(first, level_out)
    np.testing.assert_allclose(track.centroid[:2], [2.85, 0.0], atol=0.1)
    np.testing.assert_array_equal(track.near(5.5), track.centroid)


def test_depth_point_count_thins_evenly_over_the_person(scene_m: np.ndarray, level_out: np.ndarray) -> None:
    """With fewer points than voxels, the output is distinct voxel means spread over the whole person
    (not the first ones in voxel order, which would be one strip of it), all among the full output's."""
    small = preprocess_depth(scene_m, MMFI_K, MMFI_RIG.depth_pose, num_points=256)
    assert small.shape == (256, 3) and small.dtype == np.float32
    assert len(np.unique(small, axis=0)) == 256
    assert _voxel_keys(small) <= _voxel_keys(level_out)
    np.testing.assert_allclose(small.min(axis=0), level_out.min(axis=0), atol=0.05)
    np.testing.assert_allclose(small.max(axis=0), level_out.max(axis=0), atol=0.05)
    # voxel_size_m = 0: no averaging, the person's pixels themselves (more of them than voxels)
    raw = preprocess_depth(scene_m, MMFI_K, MMFI_RIG.depth_pose, voxel_size_m=0.0)
    assert _in_box(raw, PERSON_BOX).all() and len(np.unique(raw, axis=0)) == DEPTH_NUM_POINTS


def test_voxel_means_average_each_occupied_voxel() -> None:
    size = 0.02
    one = np.array([[0.001, 0.002, 0.003], [0.019, 0.011, 0.005], [0.010, 0.017, 0.019]])
    np.testing.assert_allclose(voxel_means(one, size), one.mean(axis=0, keepdims=True))
    # Three voxels, one of them below the floor (negative z), points given in any order: one mean per
    # voxel, in lexicographic voxel order (x, then y, then z), whatever the input order.
    far = np.array([[0.05, 0.0, -0.01], [0.055, 0.005, -0.015]])  # voxel (2, 0, -1)
    side = np.array([[0.001, 0.03, 0.0]])  # voxel (0, 1, 0)
    points = np.concatenate([far, one, side])
    expected = np.stack([one.mean(axis=0), side[0], far.mean(axis=0)])
    rng = np.random.default_rng(0)
    for order in (np.arange(len(points)), rng.permutation(len(points)), rng.permutation(len(points))):
        np.testing.assert_allclose(voxel_means(points[order], size), expected, atol=1e-12)
    # the grid is fixed in the base frame: points 1 mm apart across a voxel boundary stay apart
    split = np.array([[0.0195, 0.0, 0.0], [0.0205, 0.0, 0.0]])
    np.testing.assert_allclose(voxel_means(split, size), split)
    np.testing.assert_array_equal(voxel_means(points, 0.0), points)  # 0: no averaging


def test_fixed_count_thins_evenly_or_repeats_in_order() -> None:
    points = np.arange(30, dtype=float).reshape(10, 3)  # row i is (3i, 3i + 1, 3i + 2)
    np.testing.assert_array_equal(fixed_count(points, 10), points)
    np.testing.assert_array_equal(fixed_count(points, 5), points[[0, 2, 4, 6, 8]])
    np.testing.assert_array_equal(fixed_count(points, 4), points[[0, 2, 5, 7]])
    np.testing.assert_array_equal(fixed_count(points[:3], 7), points[[0, 1, 2, 0, 1, 2, 0]])
    np.testing.assert_array_equal(fixed_count(points[:1], 3), points[[0, 0, 0]])


def test_back_project_inverts_the_pinhole() -> None:
    pose = Pose(z=1.5, pitch=0.3, roll=0.02)
    image = _render(D435_K, pose).astype(np.float32)
    rows, cols = np.arange(0, 480, 7), np.arange(0, 848, 9)
    points, pixels = back_project(image, D435_K, pose, slice(0, None, 7), slice(0, None, 9))
    assert points.shape == (pixels.shape[0], 3) and pixels.shape[1] == 2
    assert np.isin(pixels[:, 0], rows).all() and np.isin(pixels[:, 1], cols).all()
    # every point lies on the scene: the floor (z = 0), the wall or a box
    on_floor = np.abs(points[:, 2]) < 1e-3
    on_wall = np.abs(points[:, 0] - BACK_WALL_X) < 1e-3
    in_box = np.zeros(len(points), dtype=bool)
    for lo, hi in (PERSON_BOX, TABLE_BOX):
        in_box |= np.all((points > np.asarray(lo) - 1e-3) & (points < np.asarray(hi) + 1e-3), axis=1)
    assert (on_floor | on_wall | in_box).all()
    assert on_floor.mean() > 0.3


@pytest.fixture(scope="module")
def driver_sim():
    from midas_ros.sim.drivers import DriverSimulator

    # S40 is in the E04 hall: its walls and furniture are all 1.5 m or more from the person.
    return DriverSimulator(subject=40, action=17, num_frames=2, seed=0)


@pytest.mark.parametrize("rig_id", [None, 22, 5], ids=["mmfi", "pool22-high-tilted", "pool05-low"])
def test_depth_of_a_simulated_room_holds_only_the_person(rig_id: int | None) -> None:
    """A full 848 x 480 D435 frame of a room: every output point lies within 0.4 m of a ground-truth
    joint (no wall or floor point), and the person is there head to feet."""
    from midas_ros.sim.drivers import D435, DriverSimulator
    from midas_ros.sim.rigs import rig_pool

    rig = MMFI_RIG if rig_id is None else rig_pool()[rig_id]
    sim = DriverSimulator(subject=40, action=17, num_frames=1, seed=0, rig=rig)
    depth = sim.depth_frame(0)
    out = preprocess_depth(depth, D435.intrinsics, rig.depth_pose)
    assert out.shape == (DEPTH_NUM_POINTS, 3) and out.dtype == np.float32
    joints = sim.joints_in("base")[0]
    distance = np.linalg.norm(out[:, None] - joints[None], axis=-1).min(axis=1)
    assert (distance < 0.4).all(), distance.max()
    assert len(np.unique(out, axis=0)) > 500  # 2 cm voxels of a whole body's visible side
    assert out[:, 2].max() > joints[10, 2] - 0.15  # the head
    assert out[:, 2].min() < joints[[3, 6], 2].min() + 0.3  # the feet (the floor cut takes 0.1 m)
    np.testing.assert_array_equal(
        preprocess_depth(sim.depth_frame_m(0), D435.intrinsics, rig.depth_pose), out
    )


# --- LiDAR ----------------------------------------------------------------------------------------

LIDAR_POSE = MMFI_RIG.lidar_pose  # 1.3 m above the base origin, level


def _person_base(n: int = 3000, seed: int = 0, x: float = 3.0) -> np.ndarray:
    """A person-sized blob x m ahead, feet on the floor (base frame)."""
    rng = np.random.default_rng(seed)
    return np.c_[rng.normal(x, 0.12, n), rng.normal(0.0, 0.18, n), rng.uniform(0.05, 1.7, n)]


def _person_cloud(n: int = 3000, seed: int = 0, pose: Pose = LIDAR_POSE) -> np.ndarray:
    """The blob in the LiDAR frame of a LiDAR at pose."""
    return pose.from_base(_person_base(n, seed))


def test_lidar_fixed_count_float32_in_the_base_frame() -> None:
    out = preprocess_lidar(_person_cloud(), LIDAR_POSE)
    assert out.shape == (LIDAR_NUM_POINTS, 3)
    assert out.dtype == np.float32
    assert PersonSearch().contains(out.astype(np.float64)).all()
    assert len(np.unique(out, axis=0)) == LIDAR_NUM_POINTS  # sampled, not repeated
    np.testing.assert_allclose(out.mean(axis=0)[:2], [3.0, 0.0], atol=0.1)  # base frame: x ahead
    assert out[:, 2].min() >= 0.1 and out[:, 2].max() <= 1.7  # and z up from the floor


def test_lidar_output_does_not_depend_on_the_lidar_pose() -> None:
    """The same base-frame points seen by a level LiDAR at 1.3 m and a tilted, turned one beside it."""
    base = _person_base(400)
    tilted = Pose(x=-0.2, y=0.3, z=1.9, roll=0.05, pitch=0.3, yaw=-0.2)
    level = preprocess_lidar(LIDAR_POSE.from_base(base), LIDAR_POSE, voxel_size_m=0.0)
    np.testing.assert_allclose(
        preprocess_lidar(tilted.from_base(base), tilted, voxel_size_m=0.0), level, atol=1e-5
    )


def test_lidar_drops_non_finite_floor_and_wall_points() -> None:
    person = _person_base(2000)
    rng = np.random.default_rng(1)
    floor = np.c_[rng.uniform(1, 5, (800, 2)), np.zeros(800)]
    wall = np.c_[np.full(500, 4.8), rng.uniform(-2.5, 2.5, 500), rng.uniform(0.0, 2.6, 500)]
    cloud = LIDAR_POSE.from_base(np.r_[person, floor, wall])
    junk = np.array([[np.nan, 0.0, 0.0], [3.0, np.inf, 0.0], [3.0, 0.0, -np.inf], [0.0, 0.0, 0.0]])
    cloud = np.r_[cloud[:1000], junk, cloud[1000:]]
    cloud = np.c_[cloud, np.arange(len(cloud), dtype=np.float64)]  # an intensity column is ignored
    out = preprocess_lidar(cloud, LIDAR_POSE)
    assert np.isfinite(out).all()
    assert out[:, 2].min() >= PersonSearch().floor_m  # the floor is gone
    assert out[:, 0].max() < 4.0  # and the wall
    np.testing.assert_allclose(out.mean(axis=0)[:2], [3.0, 0.0], atol=0.1)
    np.testing.assert_array_equal(out, preprocess_lidar(cloud[:, :3], LIDAR_POSE))


def test_lidar_custom_search_region() -> None:
    cloud = _person_cloud()
    out = preprocess_lidar(cloud, LIDAR_POSE, search=PersonSearch(x_min=2.9))
    assert out[:, 0].min() >= 2.9


def test_lidar_pads_small_clouds_deterministically() -> None:
    cloud = _person_cloud(100)
    out = preprocess_lidar(cloud, LIDAR_POSE, voxel_size_m=0.0)
    assert out.shape == (LIDAR_NUM_POINTS, 3)
    np.testing.assert_array_equal(out, preprocess_lidar(cloud, LIDAR_POSE, voxel_size_m=0.0))
    unique = np.unique(out, axis=0)
    assert 85 <= len(unique) <= 100  # outlier removal may drop a few, padding adds none
    np.testing.assert_array_equal(out[: len(unique)][np.arange(LIDAR_NUM_POINTS) % len(unique)], out)
    assert preprocess_lidar(cloud, LIDAR_POSE, num_points=64, voxel_size_m=0.0).shape == (64, 3)
    with pytest.raises(ValueError):
        preprocess_lidar(cloud, LIDAR_POSE, num_points=0)


def test_lidar_dense_person_is_reduced_first() -> None:
    """Above reduce_above points the person is first thinned on a coarse grid (bounded cost): the same
    kind of output, from other points than the unreduced pipeline picks."""
    cloud = _person_cloud(6000)
    out = preprocess_lidar(cloud, LIDAR_POSE)
    assert out.shape == (LIDAR_NUM_POINTS, 3) and len(np.unique(out, axis=0)) == LIDAR_NUM_POINTS
    np.testing.assert_allclose(out.mean(axis=0)[:2], [3.0, 0.0], atol=0.1)
    unreduced = preprocess_lidar(cloud, LIDAR_POSE, reduce_above=10**6)
    assert unreduced.shape == out.shape and not np.array_equal(unreduced, out)
    np.testing.assert_array_equal(preprocess_lidar(cloud, LIDAR_POSE, reduce_voxel_m=0.0), unreduced)
    np.testing.assert_array_equal(preprocess_lidar(cloud.copy(), LIDAR_POSE), out)


def test_lidar_too_few_points_and_no_person() -> None:
    # ten points up a vertical line: a person's shape (the grid joins them), too few points to use
    line = np.c_[np.full(10, 3.0), np.zeros(10), np.linspace(0.15, 1.7, 10)]
    with pytest.raises(PreprocessError) as info:
        preprocess_lidar(LIDAR_POSE.from_base(line), LIDAR_POSE)
    assert info.value.reason == "too_few_points"
    enough = preprocess_lidar(LIDAR_POSE.from_base(line), LIDAR_POSE, min_points=8)
    assert enough.shape == (LIDAR_NUM_POINTS, 3)
    far_away = LIDAR_POSE.from_base(_person_base(500) + np.array([20.0, 0.0, 0.0]))
    with pytest.raises(PreprocessError) as info:
        preprocess_lidar(far_away, LIDAR_POSE)
    assert info.value.reason == "no_person"


@pytest.mark.parametrize(
    ("points", "reason"),
    [
        (np.zeros((0, 3)), "empty"),
        (np.zeros((10, 2)), "bad_shape"),
        (np.zeros(30), "bad_shape"),
        (np.zeros((4, 4, 2)), "bad_shape"),
        (np.zeros((2, 4, 4, 3)), "bad_shape"),
        (np.zeros((0, 1024, 3)), "empty"),
        (np.full((50, 3), np.nan), "non_finite"),
        (np.zeros((50, 3)), "non_finite"),  # all (0, 0, 0): no returns
        (np.full((64, 1024, 3), np.nan, dtype=np.float32), "non_finite"),
        (np.zeros((50, 3), dtype=[("x", "f4")]), "bad_dtype"),
        (np.array([["a", "b", "c"]]), "bad_dtype"),
        (np.ones((50, 3), dtype=bool), "bad_dtype"),
        (None, "empty"),
    ],
)
def test_lidar_rejections(points: np.ndarray, reason: str) -> None:
    with pytest.raises(PreprocessError) as info:
        preprocess_lidar(points, LIDAR_POSE)
    assert info.value.reason == reason
    assert isinstance(info.value, ValueError)


def test_lidar_no_return_zeros_are_dropped() -> None:
    person = _person_cloud(300)
    cloud = np.concatenate([np.zeros((5000, 3)), person, np.zeros((5000, 3))])
    np.testing.assert_array_equal(valid_points(cloud), person)
    np.testing.assert_array_equal(preprocess_lidar(cloud, LIDAR_POSE), preprocess_lidar(person, LIDAR_POSE))
    # A LiDAR standing in the person: its no-return zeros would lie inside the person's box.
    inside = Pose(x=3.0, z=1.0)
    np.testing.assert_array_equal(
        preprocess_lidar(np.concatenate([inside.from_base(_person_base(300)), np.zeros((5000, 3))]), inside),
        preprocess_lidar(inside.from_base(_person_base(300)), inside),
    )
    organised = np.zeros((64, 1024, 3), dtype=np.float32)  # a blocked sensor: no returns at all
    organised[10:20, 500:520] = np.nan
    with pytest.raises(PreprocessError) as info:
        preprocess_lidar(organised, LIDAR_POSE)
    assert info.value.reason == "non_finite"


def test_lidar_organised_scan_same_output_as_flattened(driver_sim) -> None:
    from midas_ros.sim.drivers import OS1_64

    scan = driver_sim.ouster_scan(0, OS1_64)
    pose = driver_sim.rig.lidar_pose
    assert (~scan.any(axis=-1)).sum() > 100  # has no-return zeros
    out = preprocess_lidar(scan, pose)
    assert out.shape == (LIDAR_NUM_POINTS, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out, preprocess_lidar(scan.reshape(-1, 3), pose))
    with_intensity = np.concatenate([scan, np.ones((*scan.shape[:2], 1), np.float32)], axis=-1)
    np.testing.assert_array_equal(out, preprocess_lidar(with_intensity, pose))
    # stride keeps every n-th ring / column of the organised scan
    np.testing.assert_array_equal(
        preprocess_lidar(scan, pose, stride=(2, 1)), preprocess_lidar(scan[::2], pose)
    )
    np.testing.assert_array_equal(
        preprocess_lidar(scan, pose, stride=2), preprocess_lidar(scan[::2, ::2], pose)
    )
    with pytest.raises(ValueError):
        preprocess_lidar(scan.reshape(-1, 3), pose, stride=2)
    with pytest.raises(ValueError):
        preprocess_lidar(scan, pose, stride=(0, 1))


@pytest.mark.parametrize("size", ["64x1024", "128x2048"])
def test_lidar_full_room_scan_gives_the_person(driver_sim, size: str) -> None:
    from midas_ros.sim.drivers import OS1_64, OS1_128

    scan = driver_sim.ouster_scan(1, OS1_64 if size == "64x1024" else OS1_128)
    assert scan.shape[0] * scan.shape[1] >= 65_536  # walls, floor, ceiling and the person
    out = preprocess_lidar(scan, driver_sim.rig.lidar_pose).astype(np.float64)
    joints = driver_sim.joints_in("base")[1]
    distance = _distance_to_skeleton(out, joints)
    # Nothing from walls, floor or furniture (the nearest is 1.5 m away); the body surface lies within
    # ~0.25 m of its bones, and a rare mixed pixel next to it may survive outlier removal.
    assert (distance < 0.4).all(), distance.max()
    assert np.mean(distance < 0.25) > 0.99
    assert out[:, 2].min() >= PersonSearch().floor_m and out[:, 0].max() < joints[:, 0].max() + 0.4
    # and the whole person, head to shins
    assert len(np.unique(out, axis=0)) > 300
    assert out[:, 2].max() > joints[10, 2] - 0.1 and out[:, 2].min() < joints[[3, 6], 2].max() + 0.2


@pytest.mark.parametrize("rig_id", [0, 22, 31])
def test_lidar_of_a_pool_rig_lies_on_the_person_in_the_base_frame(rig_id: int) -> None:
    """An OS1-64 mounted at a pool rig's LiDAR pose (raised or lowered, tilted, turned, beside the
    camera): the output, in the base frame, lies on the ground-truth skeleton."""
    from midas_ros.sim.drivers import OS1_64, DriverSimulator
    from midas_ros.sim.rigs import rig_pool

    rig = rig_pool()[rig_id]
    sim = DriverSimulator(subject=40, action=17, num_frames=1, seed=0, rig=rig)
    out = preprocess_lidar(sim.ouster_scan(0, OS1_64), rig.lidar_pose).astype(np.float64)
    distance = _distance_to_skeleton(out, sim.joints_in("base")[0])
    assert (distance < 0.4).all(), distance.max()
    assert np.mean(distance < 0.25) > 0.98


@pytest.mark.parametrize(("subject", "rig_id"), [(40, None), (40, 22), (21, 31), (3, 5)])
def test_crop_person_is_a_person_centred_cloud_that_preprocesses_the_same(
    subject: int, rig_id: int | None
) -> None:
    """crop_person gives the person's points in the LiDAR frame (as MM-Fi stores its clouds, and the
    simulator writes them); preprocessing that crop gives exactly what the full scan gives, because
    the person search finds the same cluster again in its own crop."""
    from midas_ros.sim.drivers import OS1_64, DriverSimulator
    from midas_ros.sim.rigs import rig_pool

    rig = MMFI_RIG if rig_id is None else rig_pool()[rig_id]
    sim = DriverSimulator(subject=subject, action=12, num_frames=1, seed=0, rig=rig)
    scan = sim.ouster_scan(0, OS1_64)
    crop = crop_person(scan, rig.lidar_pose)
    assert crop.dtype == np.float64 and crop.shape[1] == 3
    assert 100 < crop.shape[0] < 0.1 * valid_points(scan).shape[0]  # the person, not the room
    # in the LiDAR frame, a subset of the scan's returns
    assert np.isin(crop.view([("", crop.dtype)] * 3), valid_points(scan).view([("", crop.dtype)] * 3)).all()
    joints = sim.joints_in("lidar")[0]
    assert (_distance_to_skeleton(crop, joints) < 0.4).mean() > 0.97
    np.testing.assert_array_equal(
        preprocess_lidar(crop, rig.lidar_pose), preprocess_lidar(scan, rig.lidar_pose)
    )
    np.testing.assert_array_equal(crop_person(crop, rig.lidar_pose), crop)  # a fixed point


def test_lidar_pipeline_order_on_training_clouds() -> None:
    """The pipeline the model is trained with, spelled out on the simulator's training clouds: the
    person's points (crop_person) in the base frame, outlier removal (20 neighbours, 2.0 std), 2 cm
    voxel grid, farthest point sampling to 512 or padding by repetition."""
    import open3d as o3d

    from midas_ros.sim.generate import simulate_sequence

    seq = simulate_sequence(40, 12, 3, seed=0, rig=MMFI_RIG)
    for cloud in seq.lidar:
        xyz = seq.rig.lidar_pose.to_base(crop_person(cloud, seq.rig.lidar_pose))
        assert xyz.shape[0] < 1024  # the small-cloud path (no coarse reduction)
        pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz))
        pcd, _ = pcd.remove_statistical_outlier(20, 2.0)
        pcd = pcd.voxel_down_sample(0.02)
        if len(pcd.points) > LIDAR_NUM_POINTS:
            pcd = pcd.farthest_point_down_sample(LIDAR_NUM_POINTS)
        reference = np.asarray(pcd.points, dtype=np.float32)
        reference = reference[np.arange(LIDAR_NUM_POINTS) % len(reference)]
        np.testing.assert_array_equal(preprocess_lidar(cloud, seq.rig.lidar_pose), reference)


def test_lidar_is_deterministic() -> None:
    from midas_ros.sim.drivers import OS1_128, DriverSimulator

    sim = DriverSimulator(21, 1, 1, seed=0)  # E03: walls and furniture near the search region
    scan = sim.ouster_scan(0, OS1_128)  # a dense person: the coarse-reduction path
    first = preprocess_lidar(scan, sim.rig.lidar_pose)
    assert first.shape == (LIDAR_NUM_POINTS, 3)
    assert PersonSearch().contains(first.astype(np.float64)).all()
    np.testing.assert_array_equal(first, preprocess_lidar(scan.copy(), sim.rig.lidar_pose))
    small = _person_cloud(300)
    np.testing.assert_array_equal(
        preprocess_lidar(small, LIDAR_POSE), preprocess_lidar(small.copy(), LIDAR_POSE)
    )


# --- CSI (its normalisation is being reworked: shapes, NaN/Inf handling and rejections only) -------------


def _csi(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(20.0, 4.0, (3, 114, 10)), rng.uniform(-np.pi, np.pi, (3, 114, 10))


def test_csi_shape_and_dtype() -> None:
    amp, pha = _csi()
    out = preprocess_csi(amp, pha)
    assert out.shape == CSI_INPUT_SHAPE
    assert out.dtype == np.float32
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out, preprocess_csi(amp.copy(), pha.copy()))


def test_csi_inf_and_nan_filled_with_packet_mean() -> None:
    amp, pha = _csi()
    amp_before = amp.copy()
    amp[0, 5, 2] = np.inf
    amp[1, 7, 2] = np.nan
    amp[:, :, 9] = np.nan  # a whole packet lost -> frame mean
    pha[2, 50, 4] = -np.inf
    out = preprocess_csi(amp, pha)
    assert np.isfinite(out).all()
    assert np.isinf(amp[0, 5, 2])  # the caller's array is left alone
    # the filled values equal the packet's mean, so they come out as an input holding that mean would
    reference = amp_before.copy()
    packet = np.delete(amp_before[:, :, 2].ravel(), [5, 114 + 7])
    reference[0, 5, 2] = reference[1, 7, 2] = packet.mean()
    reference[:, :, 9] = np.nanmean(amp[:, :, :9][np.isfinite(amp[:, :, :9])])
    np.testing.assert_allclose(out[:3], preprocess_csi(reference, pha)[:3], atol=1e-5)


@pytest.mark.parametrize(
    ("amp", "pha", "reason"),
    [
        (np.zeros((3, 114, 9)), np.zeros((3, 114, 10)), "bad_shape"),
        (np.zeros((3, 114, 10)), np.zeros((114, 10)), "bad_shape"),
        (np.zeros((0,)), np.zeros((3, 114, 10)), "empty"),
        (np.full((3, 114, 10), np.inf), np.zeros((3, 114, 10)), "non_finite"),
        (np.zeros((3, 114, 10)), np.full((3, 114, 10), np.nan), "non_finite"),
        (np.zeros((3, 114, 10), dtype=bool), np.zeros((3, 114, 10)), "bad_dtype"),
        (np.zeros((3, 114, 10), dtype=np.complex128), np.zeros((3, 114, 10)), "bad_dtype"),
        (None, np.zeros((3, 114, 10)), "empty"),
    ],
)
def test_csi_rejections(amp: np.ndarray, pha: np.ndarray, reason: str) -> None:
    with pytest.raises(PreprocessError) as info:
        preprocess_csi(amp, pha)
    assert info.value.reason == reason
