"""Preprocessing: depth units and resizing, LiDAR filtering and sampling, CSI cleaning and phase."""

from __future__ import annotations

import numpy as np
import pytest

from midas_ros.interfaces import CSI_INPUT_SHAPE, DEPTH_INPUT_HW, LIDAR_NUM_POINTS
from midas_ros.preprocess import (
    LidarROI,
    PreprocessError,
    preprocess_csi,
    preprocess_depth,
    preprocess_lidar,
)

# --- depth ----------------------------------------------------------------------------------------


def _depth_mm(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(800, 6000, size=(480, 640)).astype(np.uint16)


def test_depth_mm_and_metres_give_the_same_output() -> None:
    mm = _depth_mm()
    mm[100:200, 300:400] = 0
    metres = mm.astype(np.float32) / 1000.0
    metres[mm == 0] = np.nan
    out_mm = preprocess_depth(mm)
    out_m = preprocess_depth(metres)
    assert out_mm.shape == (1, *DEPTH_INPUT_HW)
    assert out_mm.dtype == np.float32
    np.testing.assert_allclose(out_mm, out_m, atol=1e-5)
    # float64 metres and an explicit scale agree too
    np.testing.assert_allclose(preprocess_depth(metres.astype(np.float64)), out_mm, atol=1e-5)
    np.testing.assert_allclose(preprocess_depth(mm.astype(np.float32), scale_to_m=0.001), out_mm, atol=1e-5)


def test_depth_resize_is_an_area_average() -> None:
    mm = _depth_mm(1)
    out = preprocess_depth(mm)[0]
    expected = mm.astype(np.float64).reshape(96, 5, 128, 5).mean(axis=(1, 3)) / 1000.0
    np.testing.assert_allclose(out, expected, rtol=1e-5)


def _reference_area_resize(image: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Slow, obvious area resize: each output cell averages the VALID input pixels by their overlap area."""

    def overlaps(n_in: int, n_out: int) -> np.ndarray:
        step = n_in / n_out
        weights = np.zeros((n_out, n_in))
        for o in range(n_out):
            for i in range(n_in):
                weights[o, i] = max(0.0, min((o + 1) * step, i + 1) - max(o * step, i))
        return weights

    rows, cols = overlaps(image.shape[0], out_hw[0]), overlaps(image.shape[1], out_hw[1])
    valid = np.isfinite(image)
    total = rows @ np.where(valid, image, 0.0) @ cols.T
    count = rows @ valid @ cols.T
    return np.divide(total, count, out=np.zeros_like(total), where=count > 1e-9)


@pytest.mark.parametrize("out_hw", [(3, 4), (10, 7), (13, 25)])
def test_depth_fractional_resize_matches_area_average(out_hw: tuple[int, int]) -> None:
    metres = np.random.default_rng(2).uniform(0.5, 6.0, size=(7, 11))
    out = preprocess_depth(metres, out_hw=out_hw)[0]
    np.testing.assert_allclose(out, _reference_area_resize(metres, out_hw), rtol=1e-5)
    metres[::2] = np.nan  # invalid rows are left out, not averaged in as 0
    out = preprocess_depth(metres, out_hw=out_hw)[0]
    np.testing.assert_allclose(out, _reference_area_resize(metres, out_hw), rtol=1e-5, atol=1e-6)
    assert out[out > 0].min() >= 0.5


def test_depth_invalid_pixels_do_not_bias_the_average() -> None:
    mm = np.full((480, 640), 2500, dtype=np.uint16)
    mm[::2, :] = 0  # half the rows have no return
    mm[0:5, 0:5] = 0  # and one whole output cell
    out = preprocess_depth(mm)[0]
    assert out[0, 0] == 0.0  # no valid pixel -> invalid
    valid = out[out > 0]
    assert valid.size == out.size - 1
    np.testing.assert_allclose(valid, 2.5, rtol=1e-6)

    metres = np.full((480, 640), 2.5, dtype=np.float32)
    metres[::3, :] = np.inf
    metres[1::3, :] = -1.0
    np.testing.assert_allclose(preprocess_depth(metres), 2.5, rtol=1e-6)


def test_depth_crop_and_out_size() -> None:
    mm = np.full((480, 640), 1000, dtype=np.uint16)
    mm[100:196, 200:328] = 3000  # exactly the cropped window
    out = preprocess_depth(mm, crop=(100, 200, 96, 128), out_hw=(48, 64))
    assert out.shape == (1, 48, 64)
    np.testing.assert_allclose(out, 3.0, rtol=1e-6)
    with pytest.raises(PreprocessError) as info:
        preprocess_depth(mm, crop=(400, 600, 96, 128))
    assert info.value.reason == "bad_crop"


def test_depth_clips_to_max_range() -> None:
    mm = np.full((480, 640), 12000, dtype=np.uint16)
    mm[:, :320] = 2000
    out = preprocess_depth(mm, max_range_m=8.0)[0]
    np.testing.assert_allclose(out[:, :64], 2.0, rtol=1e-6)
    np.testing.assert_allclose(out[:, 64:], 8.0, rtol=1e-6)


@pytest.mark.parametrize(
    ("depth", "reason"),
    [
        (np.zeros((480, 640), dtype=np.uint16), "no_valid_pixels"),
        (np.full((48, 64), np.nan, dtype=np.float32), "no_valid_pixels"),
        (np.zeros((0, 640), dtype=np.uint16), "empty"),
        (np.ones((3, 480, 640), dtype=np.uint16), "bad_shape"),
        (np.ones((480, 640), dtype=bool), "bad_dtype"),
        (np.ones((480, 640), dtype=np.complex64), "bad_dtype"),
        (None, "empty"),
    ],
)
def test_depth_rejections(depth: np.ndarray, reason: str) -> None:
    with pytest.raises(PreprocessError) as info:
        preprocess_depth(depth)
    assert info.value.reason == reason
    assert isinstance(info.value, ValueError)


# --- LiDAR ----------------------------------------------------------------------------------------


def _person_cloud(n: int = 3000, seed: int = 0) -> np.ndarray:
    """A person-sized blob 3 m ahead, feet on the floor (z = -1.3 in the LiDAR frame)."""
    rng = np.random.default_rng(seed)
    return np.c_[rng.normal(3.0, 0.12, n), rng.normal(0.0, 0.18, n), rng.uniform(-1.2, 0.45, n)]


def test_lidar_fixed_count_float32_and_inside_roi() -> None:
    roi = LidarROI()
    out = preprocess_lidar(_person_cloud())
    assert out.shape == (LIDAR_NUM_POINTS, 3)
    assert out.dtype == np.float32
    assert roi.contains(out.astype(np.float64)).all()
    assert len(np.unique(out, axis=0)) == LIDAR_NUM_POINTS  # sampled, not repeated


def test_lidar_drops_non_finite_and_out_of_roi_points() -> None:
    person = _person_cloud(2000)
    floor = np.c_[np.random.default_rng(1).uniform(1, 5, (800, 2)), np.full(800, -1.3)]
    wall = np.c_[np.full(500, 7.5), np.random.default_rng(2).uniform(-2, 2, (500, 2))]
    junk = np.array([[np.nan, 0.0, 0.0], [3.0, np.inf, 0.0], [3.0, 0.0, -np.inf]])
    cloud = np.r_[person, floor, junk, wall]
    cloud = np.c_[cloud, np.arange(len(cloud), dtype=np.float64)]  # an intensity column is ignored
    out = preprocess_lidar(cloud)
    assert np.isfinite(out).all()
    assert out[:, 2].min() > -1.25  # the floor is gone
    assert out[:, 0].max() < 6.0  # and the wall
    # the result is the person: its centroid stays near the blob's
    np.testing.assert_allclose(out.mean(axis=0)[:2], [3.0, 0.0], atol=0.1)


def test_lidar_custom_roi() -> None:
    cloud = _person_cloud()
    roi = LidarROI(x_min=2.9, x_max=10.0, y_min=-5, y_max=5, z_min=-2, z_max=2)
    out = preprocess_lidar(cloud, roi=roi)
    assert out[:, 0].min() >= 2.9


def test_lidar_pads_small_clouds_deterministically() -> None:
    cloud = _person_cloud(100)
    out = preprocess_lidar(cloud, voxel_size_m=0.0)
    assert out.shape == (LIDAR_NUM_POINTS, 3)
    np.testing.assert_array_equal(out, preprocess_lidar(cloud, voxel_size_m=0.0))
    unique = np.unique(out, axis=0)
    assert 90 <= len(unique) <= 100  # outlier removal may drop a few, padding adds none
    assert preprocess_lidar(cloud, num_points=64, voxel_size_m=0.0).shape == (64, 3)


def test_lidar_too_few_points_rejected() -> None:
    cloud = _person_cloud(10)
    with pytest.raises(PreprocessError) as info:
        preprocess_lidar(cloud)
    assert info.value.reason == "too_few_points"
    far_away = _person_cloud(500) + np.array([20.0, 0.0, 0.0])
    with pytest.raises(PreprocessError) as info:
        preprocess_lidar(far_away)
    assert info.value.reason == "too_few_points"


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
        (np.zeros((50, 3)), "too_few_points"),  # all (0, 0, 0): no returns
        (np.full((64, 1024, 3), np.nan, dtype=np.float32), "non_finite"),
        (np.zeros((50, 3), dtype=[("x", "f4")]), "bad_dtype"),
        (np.array([["a", "b", "c"]]), "bad_dtype"),
    ],
)
def test_lidar_rejections(points: np.ndarray, reason: str) -> None:
    with pytest.raises(PreprocessError) as info:
        preprocess_lidar(points)
    assert info.value.reason == reason


def _old_order_reference(cloud: np.ndarray) -> np.ndarray:
    """The pipeline the shipped model was trained with, spelled out: ROI, outlier removal (20, 2.0),
    2 cm voxel grid, farthest point sampling to 512 or padding by repetition."""
    import open3d as o3d

    xyz = cloud[np.isfinite(cloud).all(axis=1)]
    xyz = xyz[LidarROI().contains(xyz)]
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz))
    pcd, _ = pcd.remove_statistical_outlier(20, 2.0)
    pcd = pcd.voxel_down_sample(0.02)
    if len(pcd.points) > LIDAR_NUM_POINTS:
        pcd = pcd.farthest_point_down_sample(LIDAR_NUM_POINTS)
    out = np.asarray(pcd.points, dtype=np.float32)
    return out[np.arange(LIDAR_NUM_POINTS) % len(out)]


def test_lidar_training_clouds_keep_the_output_the_model_was_trained_on() -> None:
    from midas_ros.sim.generate import simulate_sequence

    seq = simulate_sequence(40, 12, 3, seed=0)
    for cloud in seq.lidar:
        np.testing.assert_array_equal(preprocess_lidar(cloud), _old_order_reference(cloud))
    big = _person_cloud(3000)  # above the reduce threshold: same kind of output, not the same points
    assert preprocess_lidar(big).shape == (LIDAR_NUM_POINTS, 3)


@pytest.fixture(scope="module")
def driver_sim():
    from midas_ros.sim.drivers import DriverSimulator

    # S40 is in the E04 hall, where the default ROI holds only the person.
    return DriverSimulator(subject=40, action=17, num_frames=2, seed=0)


def _distance_to_skeleton(points: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """Distance of each point to the nearest bone (segment between joints)."""
    from midas_ros.skeleton import BONES

    a = joints[[p for p, _ in BONES]][None]
    b = joints[[c for _, c in BONES]][None]
    ab = b - a
    t = np.clip(((points[:, None] - a) * ab).sum(-1) / (ab * ab).sum(-1), 0.0, 1.0)
    return np.linalg.norm(points[:, None] - (a + t[..., None] * ab), axis=-1).min(axis=1)


def test_lidar_organised_scan_same_output_as_flattened(driver_sim) -> None:
    from midas_ros.sim.drivers import OS1_64

    scan = driver_sim.ouster_scan(0, OS1_64)
    assert (~scan.any(axis=-1)).sum() > 100  # has no-return zeros
    out = preprocess_lidar(scan)
    assert out.shape == (LIDAR_NUM_POINTS, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out, preprocess_lidar(scan.reshape(-1, 3)))
    with_intensity = np.concatenate([scan, np.ones((*scan.shape[:2], 1), np.float32)], axis=-1)
    np.testing.assert_array_equal(out, preprocess_lidar(with_intensity))
    # stride keeps every n-th ring / column of the organised scan
    np.testing.assert_array_equal(preprocess_lidar(scan, stride=(2, 1)), preprocess_lidar(scan[::2]))
    with pytest.raises(ValueError):
        preprocess_lidar(scan.reshape(-1, 3), stride=2)


def test_lidar_no_return_zeros_are_dropped() -> None:
    roi = LidarROI(x_min=-5.0, x_max=5.0, y_min=-5.0, y_max=5.0, z_min=-5.0, z_max=5.0)  # holds (0, 0, 0)
    person = _person_cloud(300)
    cloud = np.concatenate([np.zeros((5000, 3)), person, np.zeros((5000, 3))])
    out = preprocess_lidar(cloud, roi=roi)
    assert cloud.shape[0] > 1024  # the zeros would have taken the reduce path
    np.testing.assert_array_equal(out, preprocess_lidar(person, roi=roi))
    assert out.any(axis=1).all()
    organised = np.zeros((64, 1024, 3), dtype=np.float32)  # a blocked sensor: no returns at all
    organised[10:20, 500:520] = np.nan
    for box in (LidarROI(), roi):
        with pytest.raises(PreprocessError) as info:
            preprocess_lidar(organised, roi=box)
        assert info.value.reason == "too_few_points"


@pytest.mark.parametrize("size", ["64x1024", "128x2048"])
def test_lidar_full_room_scan_gives_the_person(driver_sim, size: str) -> None:
    from midas_ros.sim.drivers import OS1_64, OS1_128
    from midas_ros.sim.sensors import LIDAR_POSITION

    scan = driver_sim.ouster_scan(1, OS1_64 if size == "64x1024" else OS1_128)
    assert scan.shape[0] * scan.shape[1] >= 65_536  # walls, floor, ceiling and the person
    out = preprocess_lidar(scan).astype(np.float64)
    joints = driver_sim.joints[1] - np.asarray(LIDAR_POSITION)
    distance = _distance_to_skeleton(out, joints)
    # Nothing from walls, floor or furniture (the nearest is 1.5 m away); the body surface lies within
    # ~0.25 m of its bones, and a rare mixed pixel next to it may survive outlier removal.
    assert (distance < 0.4).all(), distance.max()
    assert np.mean(distance < 0.25) > 0.99
    assert out[:, 2].min() > -1.25 and out[:, 0].max() < joints[:, 0].max() + 0.4
    # and the whole person, head to shins (the ROI's floor margin cuts the feet)
    assert len(np.unique(out, axis=0)) > 300
    assert out[:, 2].max() > joints[10, 2] - 0.1 and out[:, 2].min() < joints[[3, 6], 2].max() + 0.2


def test_lidar_is_deterministic() -> None:
    from midas_ros.sim.drivers import OS1_128, DriverSimulator

    scan = DriverSimulator(21, 1, 1, seed=0).ouster_scan(0, OS1_128)  # E03: walls in the default ROI
    first = preprocess_lidar(scan)
    assert first.shape == (LIDAR_NUM_POINTS, 3)
    assert LidarROI().contains(first.astype(np.float64)).all()
    np.testing.assert_array_equal(first, preprocess_lidar(scan.copy()))
    small = _person_cloud(300)
    np.testing.assert_array_equal(preprocess_lidar(small), preprocess_lidar(small.copy()))


# --- CSI ------------------------------------------------------------------------------------------


def _csi(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(20.0, 4.0, (3, 114, 10)), rng.uniform(-np.pi, np.pi, (3, 114, 10))


def test_csi_shape_and_dtype() -> None:
    amp, pha = _csi()
    out = preprocess_csi(amp, pha)
    assert out.shape == CSI_INPUT_SHAPE
    assert out.dtype == np.float32
    assert np.isfinite(out).all()
    # robust per-frame normalisation: median 0, scale near 1
    assert abs(np.median(out[:3])) < 1e-6
    assert 0.7 < out[:3].std() < 1.3


def test_csi_linear_phase_and_packet_offset_are_removed() -> None:
    rng = np.random.default_rng(3)
    k = np.arange(114)[None, :, None]
    slope = rng.uniform(-0.3, 0.3, (3, 1, 10))  # timing offset: differs by antenna and packet
    offset = rng.uniform(-np.pi, np.pi, (3, 1, 10))  # random phase of each packet
    wrapped = np.angle(np.exp(1j * (slope * k + offset)))
    amp, _ = _csi()
    out = preprocess_csi(amp, wrapped)
    np.testing.assert_allclose(out[3:], 0.0, atol=1e-6)

    # a real signal on top of the nuisance line survives (minus its own linear part)
    signal = 0.5 * np.sin(np.arange(114) / 6.0)[None, :, None] * np.ones((3, 1, 10))
    out = preprocess_csi(amp, np.angle(np.exp(1j * (slope * k + offset + signal))))
    assert np.abs(out[3:]).max() > 0.2
    centred = signal - signal.mean(axis=1, keepdims=True)
    kc = np.arange(114) - 56.5
    line = (kc @ centred[0, :, 0]) / (kc @ kc) * kc
    np.testing.assert_allclose(out[3:][0, :, 0], centred[0, :, 0] - line, atol=1e-5)


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
    # the filled values equal the packet's mean, so they normalise like it
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
        (np.zeros((3, 114, 10), dtype=bool), np.zeros((3, 114, 10)), "bad_dtype"),
    ],
)
def test_csi_rejections(amp: np.ndarray, pha: np.ndarray, reason: str) -> None:
    with pytest.raises(PreprocessError) as info:
        preprocess_csi(amp, pha)
    assert info.value.reason == reason


def test_csi_flat_amplitude_gives_zeros() -> None:
    _, pha = _csi()
    out = preprocess_csi(np.full((3, 114, 10), 7.0), pha)
    np.testing.assert_array_equal(out[:3], 0.0)
