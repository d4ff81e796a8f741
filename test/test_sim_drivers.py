"""Full-size sensor frames from the simulator (midas_ros.sim.drivers), and the default simulator unchanged."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from midas_ros.preprocess import LidarROI
from midas_ros.sim.drivers import (
    D435,
    LIVOX_MID40,
    OS1_32,
    OS1_64,
    OS1_128,
    VLP_16,
    DriverSimulator,
    depth_mm_to_m,
    ground_truth_joints,
    spinning_directions,
)
from midas_ros.sim.generate import simulate_sequence
from midas_ros.sim.sensors import LIDAR_POSITION


@pytest.fixture(scope="module")
def sim() -> DriverSimulator:
    return DriverSimulator(subject=40, action=12, num_frames=4, seed=0)


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def test_default_simulator_output_is_unchanged() -> None:
    """Digests of simulate_sequence(1, 1, 2, seed=0) taken before sim/depth.py got configurable
    intrinsics: the defaults must keep producing byte-identical training data. (Ray casting is Embree
    float arithmetic: another open3d build or CPU family may legitimately change the LiDAR/depth bytes.)"""
    seq = simulate_sequence(1, 1, 2, seed=0)
    digests = {
        "joints": _digest(seq.joints),
        "depth": _digest(seq.depth_mm),
        "lidar": _digest(*seq.lidar),
        "csi": _digest(seq.csi_amplitude, seq.csi_phase),
    }
    assert digests == {
        "joints": "70556a38bea67058",
        "depth": "5cb85d6e2aeb00d2",
        "lidar": "f76631f4dd880d77",
        "csi": "120931005ab2cdbc",
    }


def test_joints_match_simulate_sequence(sim: DriverSimulator) -> None:
    np.testing.assert_array_equal(sim.joints, simulate_sequence(40, 12, 4, seed=0).joints)
    np.testing.assert_array_equal(ground_truth_joints(40, 12, 4, seed=0), sim.joints)
    np.testing.assert_allclose(sim.joints_in("lidar") + np.asarray(LIDAR_POSITION), sim.joints)
    optical = sim.joints_in("depth_optical")
    assert (optical[..., 2] > 2.0).all()  # in front of the camera
    with pytest.raises(ValueError):
        sim.joints_in("map")


@pytest.mark.parametrize("lidar", [OS1_32, OS1_64, OS1_128], ids=["32x1024", "64x1024", "128x2048"])
def test_ouster_scan_shape_dtype_and_no_return_zeros(sim: DriverSimulator, lidar) -> None:
    scan = sim.ouster_scan(0, lidar)
    assert scan.shape == (lidar.rings, lidar.columns, 3)
    assert scan.dtype == np.float32
    assert np.isfinite(scan).all()
    no_return = ~scan.any(axis=-1)
    assert 0.005 < no_return.mean() < 0.05  # random dropouts; the closed room returns everything else
    ranges = np.linalg.norm(scan[~no_return], axis=-1)
    assert ranges.min() > lidar.min_range_m and ranges.max() < 15.0  # inside the room
    # the same frame twice is the same scan; another frame is not
    np.testing.assert_array_equal(scan, sim.ouster_scan(0, lidar))
    assert not np.array_equal(scan, sim.ouster_scan(1, lidar))


def test_ouster_layout_is_ring_0_on_top_and_middle_column_forward() -> None:
    dirs = spinning_directions(OS1_64)
    assert dirs[0, 0, 2] > 0 > dirs[-1, 0, 2]
    assert abs(dirs[32, 512, 1]) < 1e-6 and dirs[32, 512, 0] > 0.99  # the middle column looks along +x
    assert dirs[32, 0, 0] < -0.99  # column 0 looks backwards
    assert dirs[32, 500, 1] > 0 > dirs[32, 524, 1]  # azimuth decreases with the column (clockwise)


def test_ouster_scan_sees_walls_floor_and_the_person_inside_the_roi(sim: DriverSimulator) -> None:
    scan = sim.ouster_scan(2)
    points = scan.reshape(-1, 3)
    points = points[points.any(axis=1)].astype(np.float64)
    assert (np.abs(points[:, 2] + LIDAR_POSITION[2]) < 0.05).sum() > 1000  # the floor
    assert (points[:, 2] > 3.4 - LIDAR_POSITION[2] - 0.05).sum() > 1000  # the E04 hall's ceiling
    joints = sim.joints_in("lidar")[2]
    inside = points[LidarROI().contains(points)]
    near = np.linalg.norm(inside[:, None, :] - joints[None], axis=2).min(axis=1) < 0.3
    assert near.sum() > 300  # the person, sampled by 64 beams
    for joint in (0, 8, 10, 13, 16):  # pelvis, thorax, head, wrists: returns near each
        assert np.linalg.norm(inside - joints[joint], axis=1).min() < 0.3


def test_unorganised_velodyne_and_livox_clouds(sim: DriverSimulator) -> None:
    velodyne = sim.velodyne_cloud(0)
    assert velodyne.dtype == np.float32 and velodyne.ndim == 2 and velodyne.shape[1] == 3
    assert 25_000 < velodyne.shape[0] < VLP_16.rings * VLP_16.columns  # no-returns left out
    assert np.isfinite(velodyne).all() and velodyne.any(axis=1).all()
    elevation = np.degrees(np.arctan2(velodyne[:, 2], np.hypot(velodyne[:, 0], velodyne[:, 1])))
    assert elevation.min() > -15.5 and elevation.max() < 15.5

    livox = sim.livox_cloud(0)
    assert livox.shape == (LIVOX_MID40.points_per_frame, 3) and livox.dtype == np.float32
    nan_rows = np.isnan(livox).any(axis=1)
    assert 0.005 < nan_rows.mean() < 0.1
    assert np.isnan(livox[nan_rows]).all()  # a no-return row is NaN in x, y and z
    valid = livox[~nan_rows]
    off_axis = np.degrees(np.arccos(valid[:, 0] / np.linalg.norm(valid, axis=1)))
    assert off_axis.max() < LIVOX_MID40.fov_deg / 2 + 0.5  # a forward cone
    assert not np.array_equal(np.isnan(livox), np.isnan(sim.livox_cloud(1)))  # non-repetitive


def test_depth_frames_16uc1_and_32fc1(sim: DriverSimulator) -> None:
    depth = sim.depth_frame(1)
    assert depth.shape == (480, 848) and depth.dtype == np.uint16
    band = D435.invalid_band_px
    assert band == int(np.ceil(421.0 * 0.05 / 0.2))
    assert (depth[:, :band] == 0).all()  # the left imager's columns with no match
    rest = depth[:, band:]
    assert 0.002 < (rest == 0).mean() < 0.1  # holes: speckle, edges, IR shadow
    assert 1000 < np.median(rest[rest > 0]) < 9000  # a room, in mm
    np.testing.assert_array_equal(depth, sim.depth_frame(1))

    metres = sim.depth_frame_m(1)
    assert metres.dtype == np.float32 and metres.shape == depth.shape
    np.testing.assert_array_equal(np.isnan(metres), depth == 0)
    np.testing.assert_allclose(metres[depth > 0], depth[depth > 0] / 1000.0, rtol=1e-6)
    np.testing.assert_array_equal(np.isnan(depth_mm_to_m(depth)), np.isnan(metres))


def test_depth_shows_the_person_where_the_joints_project(sim: DriverSimulator) -> None:
    depth = sim.depth_frame(0).astype(np.float64) / 1000
    x, y, z = sim.joints_in("depth_optical")[0, 0]  # pelvis
    u, v = D435.cx + D435.fx * x / z, D435.cy + D435.fy * y / z
    window = depth[round(v) - 3 : round(v) + 4, round(u) - 3 : round(u) + 4]
    assert abs(np.median(window[window > 0]) - z) < 0.25  # the body's surface, not the wall behind


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        DriverSimulator(41, 1)
    with pytest.raises(ValueError):
        DriverSimulator(1, 28)
    with pytest.raises(ValueError):
        DriverSimulator(1, 1, num_frames=0)
    with pytest.raises(IndexError):
        DriverSimulator(1, 1, num_frames=2).ouster_scan(2)


def test_ray_casts_own_their_memory() -> None:
    """open3d ends the process with exit status 1 when its buffers outlive it (this failed CI once while
    every test passed): the renders the simulator caches must be plain numpy memory, not open3d's."""
    from midas_ros.sim import depth, drivers, lidar

    triangle = (
        np.array([[2.0, -1, -1], [2, 1, -1], [2, 0, 2]], np.float32),
        np.array([[0, 1, 2]], np.uint32),
    )
    casts = [
        depth._cast(*triangle, np.ones((2, 2, 3), np.float32)),
        drivers._cast(*triangle, (0.0, 0.0, 0.0), np.ones((2, 3), np.float32)),
        lidar._cast(*triangle),
    ]
    assert all(c.flags.owndata and c.base is None for c in casts)
