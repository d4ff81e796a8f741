"""Honest, rig-independent inputs: no ground truth reaches any input, the same scene through different
rigs gives nearly the same input, and sensor poses transform as ROS defines them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.spatial import cKDTree

from midas_ros.mmfi.dataset import MMFiDataset
from midas_ros.mmfi.preprocessed import PreprocessedSet
from midas_ros.preprocess import preprocess_depth, preprocess_lidar
from midas_ros.rig import MMFI_RIG, CameraIntrinsics, LidarModel, Pose, Rig, read_rig, write_rig
from midas_ros.sim.generate import simulate_sequence, write_sequence
from midas_ros.sim.rigs import CAMERA_MODELS, rig_pool

# --- no ground truth in any input -----------------------------------------------------------------------


def test_changing_the_ground_truth_after_rendering_leaves_every_input_byte_identical(tmp_path) -> None:
    """Two copies of a rendered sequence, one with its joints moved (up to 0.5 m, as a wrong label
    would be): written and preprocessed, every array the model receives is the same bytes."""
    sequences = [simulate_sequence(subject, 26, 4, seed=5) for subject in (7, 33)]  # two rooms, two rigs
    arrays = []
    for name, shift in (("true", 0.0), ("moved", 1.0)):
        root = tmp_path / name
        for seq in sequences:
            rng = np.random.default_rng(seq.subject)
            moved = seq.joints + shift * rng.uniform(-0.5, 0.5, seq.joints.shape)
            write_sequence(root, dataclasses.replace(seq, joints=moved))
        arrays.append(PreprocessedSet.build(MMFiDataset(root, split="all"), progress=False))
    true, moved = arrays
    assert len(true) == len(moved) == 8 and true.present.all()
    for field in ("depth", "lidar", "csi", "present", "subject", "action", "frame", "rig"):
        assert getattr(true, field).tobytes() == getattr(moved, field).tobytes(), field
    assert not np.allclose(true.joints, moved.joints)  # the labels did change


# --- rig independence -----------------------------------------------------------------------------------


def _scene_through(rig: Rig, frames: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """One subject's pose seen through `rig` at the room's origin: the model's depth and LiDAR inputs."""
    seq = simulate_sequence(40, 12, frames, seed=1, rig=rig, placement=Pose())
    depth = np.stack([preprocess_depth(d, rig.depth_intrinsics, rig.depth_pose) for d in seq.depth_mm])
    lidar = np.stack([preprocess_lidar(cloud, rig.lidar_pose) for cloud in seq.lidar])
    return depth, lidar


@pytest.fixture(scope="module")
def mmfi_view() -> tuple[np.ndarray, np.ndarray]:
    return _scene_through(MMFI_RIG)


def _chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """Mean nearest-neighbour distance between two clouds, both ways (m)."""
    return float((cKDTree(b).query(a)[0].mean() + cKDTree(a).query(b)[0].mean()) / 2)


@pytest.mark.parametrize(
    ("camera", "pose"),
    [
        ("D435 848x480", Pose(z=1.8, pitch=np.deg2rad(20))),  # mounted high, looking down
        ("D435 1280x720", Pose(z=0.6, pitch=np.deg2rad(-4))),  # low, looking up
        ("Azure Kinect NFOV 640x576", Pose(z=1.3, roll=0.03, pitch=np.deg2rad(8))),
    ],
)
def test_the_same_scene_through_another_camera_gives_nearly_the_same_depth_input(
    mmfi_view, camera, pose
) -> None:
    """Tolerance: the cameras' own depth noise at 3 m is 1-2 cm and a viewpoint 0.8 m higher or lower
    sees other parts of the surface (from above, the tops of head and shoulders, farther back), so the
    person's points (2 cm voxel means) within 2.5 cm (mean nearest neighbour, both ways), centroids
    within 3 cm on the floor plane and 6 cm in all, bounding boxes within 3 cm but for the far side
    (x max, 8 cm). Measured: 1.0-1.5 cm; centroids 1.5 cm and 4.4 cm; boxes 1.5 cm, far side 6.1 cm.
    A person misplaced by a wrong pose or intrinsics would be 0.3 m or more off. The old canonical
    image and, before it, a whole-frame resize gave a different image for every camera."""
    rig = dataclasses.replace(MMFI_RIG, depth_intrinsics=CAMERA_MODELS[camera], depth_pose=pose)
    depth, _ = _scene_through(rig)
    for a, b in zip(mmfi_view[0], depth, strict=True):
        a, b = np.unique(a, axis=0), np.unique(b, axis=0)
        assert _chamfer(a, b) < 0.025, camera
        shift = a.mean(axis=0) - b.mean(axis=0)
        assert np.linalg.norm(shift[:2]) < 0.03 and np.linalg.norm(shift) < 0.06, (camera, shift)
        np.testing.assert_allclose(a.min(axis=0), b.min(axis=0), atol=0.03, err_msg=camera)
        np.testing.assert_allclose(a.max(axis=0)[1:], b.max(axis=0)[1:], atol=0.03, err_msg=camera)
        assert abs(a[:, 0].max() - b[:, 0].max()) < 0.08, camera


@pytest.mark.parametrize(
    ("lidar", "pose"),
    [
        (LidarModel("VLP-16", 16, 1800, 30.0), Pose(x=-0.2, y=0.2, z=2.0, pitch=np.deg2rad(20))),
        (LidarModel("OS1-128", 128, 1024, 45.0), Pose(y=-0.3, z=0.5, pitch=np.deg2rad(-8), yaw=0.15)),
    ],
)
def test_the_same_scene_through_another_lidar_gives_nearly_the_same_lidar_input(
    mmfi_view, lidar, pose
) -> None:
    """Tolerance: a 16-ring LiDAR's rings lie ~7 cm apart on a person at 3 m, and each mount sees its
    own side of the body (one at 0.5 m sees more legs than one at 1.3 m, which shifts the centroid
    up to ~0.15 m in height); clouds within 6 cm (mean nearest neighbour), centroids within 10 cm on
    the floor plane and 18 cm in all are the same person in the same place (a misplaced frame would be
    0.3 m or more off)."""
    rig = dataclasses.replace(MMFI_RIG, lidar=lidar, lidar_pose=pose)
    _, clouds = _scene_through(rig)
    for a, b in zip(mmfi_view[1], clouds, strict=True):
        assert _chamfer(a, b) < 0.06, lidar.name
        shift = a.mean(axis=0) - b.mean(axis=0)
        assert np.linalg.norm(shift[:2]) < 0.1 and np.linalg.norm(shift) < 0.18, (lidar.name, shift)


def test_sequences_of_different_rigs_share_the_base_frame() -> None:
    """Through two pool rigs at different heights and tilts, the inputs sit where the base-frame
    ground truth is: the LiDAR cloud's and the depth points' centroids near the pelvis (the depth
    points are the visible front surface, a little nearer the camera than the pelvis)."""
    for rig in (rig_pool()[2], rig_pool()[4]):
        seq = simulate_sequence(21, 2, 2, seed=3, rig=rig)
        cloud = preprocess_lidar(seq.lidar[0], rig.lidar_pose)
        assert np.linalg.norm(cloud.mean(axis=0)[:2] - seq.joints[0, 0, :2]) < 0.25, rig.name
        depth = preprocess_depth(seq.depth_mm[0], rig.depth_intrinsics, rig.depth_pose)
        assert np.linalg.norm(depth.mean(axis=0)[:2] - seq.joints[0, 0, :2]) < 0.25, rig.name
        assert abs(np.median(depth[:, 2]) - seq.joints[0, 0, 2]) < 0.3, rig.name


# --- poses and rig files --------------------------------------------------------------------------------


def test_pose_follows_ros_conventions() -> None:
    looking_down = Pose(z=1.5, pitch=np.deg2rad(30))  # positive pitch turns +x towards -z
    forward = looking_down.to_base([[1.0, 0.0, 0.0]])[0]
    np.testing.assert_allclose(forward, [np.cos(np.deg2rad(30)), 0, 1.5 - np.sin(np.deg2rad(30))], atol=1e-12)
    turned = Pose(x=1.0, yaw=np.pi / 2)  # +x of the sensor points along +y of the base
    np.testing.assert_allclose(turned.to_base([[2.0, 0.0, 0.0]])[0], [1.0, 2.0, 0.0], atol=1e-12)
    pose = Pose(0.3, -0.2, 1.1, 0.05, 0.2, -0.4)
    points = np.random.default_rng(0).normal(size=(10, 3))
    np.testing.assert_allclose(pose.from_base(pose.to_base(points)), points, atol=1e-12)
    again = Pose.from_transform(pose.translation, pose.quaternion_xyzw())
    np.testing.assert_allclose(again.as_list(), pose.as_list(), atol=1e-12)
    outer = Pose(1.0, 2.0, 0.0, yaw=0.3)
    np.testing.assert_allclose(
        outer.compose(pose).to_base(points), outer.to_base(pose.to_base(points)), atol=1e-12
    )
    with pytest.raises(ValueError, match="got 3 values"):
        Pose.from_list([0, 0, 1])


def test_camera_info_k_and_rig_sidecars_round_trip(tmp_path) -> None:
    k = CameraIntrinsics.from_k(848, 480, [421.0, 0, 423.5, 0, 421.0, 239.5, 0, 0, 1])
    assert k == CAMERA_MODELS["D435 848x480"]
    with pytest.raises(ValueError, match="focal"):
        CameraIntrinsics(640, 480, 0.0, 383.0, 319.5, 239.5)
    for rig in (MMFI_RIG, rig_pool()[17]):
        write_rig(tmp_path, rig)
        assert read_rig(tmp_path) == rig
    (tmp_path / "rig.json").write_text('{"name": "broken"}')
    with pytest.raises(ValueError, match="not a rig file"):
        read_rig(tmp_path)
