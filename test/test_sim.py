"""The sensing simulator: determinism, MM-Fi file formats, geometry of each modality, and that depth and
LiDAR carry far more pose information than WiFi CSI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from midas_ros.mmfi import layout
from midas_ros.preprocess import preprocess_csi, preprocess_depth, preprocess_lidar
from midas_ros.sim.body import forward_kinematics, make_body
from midas_ros.sim.depth import add_depth_noise, project_to_pixels
from midas_ros.sim.generate import generate, main, simulate_sequence
from midas_ros.sim.motions import action_params
from midas_ros.sim.sensors import DEPTH_CX, DEPTH_CY, DEPTH_FX, DEPTH_FY, LIDAR_POSITION
from midas_ros.skeleton import BONES

SEED = 3


@pytest.fixture(scope="module")
def sequence():
    return simulate_sequence(1, 13, 6, SEED)


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, Path]:
    """The same two short sequences written twice with the same seed."""
    roots = []
    for name in ("a", "b"):
        root = tmp_path_factory.mktemp(name)
        generate(root, subjects=[2, 31], actions=[6], frames=3, seed=SEED, progress=False)
        roots.append(root)
    return roots[0], roots[1]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(written) -> None:
    a, b = _files(written[0]), _files(written[1])
    assert len(a) == 2 * (3 * 3 + 1)
    assert a.keys() == b.keys()
    assert all(a[name] == b[name] for name in a)


def test_other_seed_gives_other_data(sequence) -> None:
    other = simulate_sequence(1, 13, 6, SEED + 1)
    assert not np.allclose(other.joints, sequence.joints)
    assert not np.array_equal(other.depth_mm, sequence.depth_mm)


def test_files_follow_mmfi_layout(written) -> None:
    seq_dir = written[0] / "E04" / "S31" / "A06"
    joints = layout.read_ground_truth(seq_dir)
    assert joints.shape == (3, 17, 3)
    for frame in (1, 3):
        depth = layout.read_depth_png(layout.frame_path(seq_dir, "depth", frame))
        assert depth.shape == (480, 640) and depth.dtype == np.uint16
        assert 0.5 < np.mean(depth > 0) < 1.0  # mostly valid, with holes
        raw = np.fromfile(layout.frame_path(seq_dir, "lidar", frame), dtype=np.float64)
        assert raw.size % 3 == 0 and raw.size // 3 > 50
        amplitude, phase = layout.read_csi_mat(layout.frame_path(seq_dir, "csi", frame))
        assert amplitude.shape == phase.shape == (3, 114, 10)


def test_bone_lengths_are_constant_and_subjects_differ() -> None:
    times = np.arange(40) / 10
    lengths = []
    for subject, action in ((1, 12), (1, 26), (17, 9), (33, 20)):
        joints = forward_kinematics(
            make_body(subject), action_params(action, times, np.random.default_rng(0)), (3.0, 0.0), 1.0
        )
        bones = np.stack([np.linalg.norm(joints[:, c] - joints[:, p], axis=1) for p, c in BONES], axis=1)
        assert np.all(bones.std(axis=0) < 1e-9)
        assert joints[:, :, 2].min() > 0.0  # nobody sinks into the floor
        lengths.append(bones[0])
    assert not np.allclose(lengths[0], lengths[2], atol=0.01)


def test_mirrored_actions_use_the_other_hand() -> None:
    body, times = make_body(5), np.arange(60) / 10

    def wrist_heights(action: int) -> tuple[float, float]:
        joints = forward_kinematics(body, action_params(action, times, np.random.default_rng(1)), (3, 0), 0)
        return joints[:, 13, 2].max(), joints[:, 16, 2].max()  # left, right wrist

    left_raise, right_raise = wrist_heights(13), wrist_heights(14)
    assert left_raise[0] > body.height > left_raise[1]
    assert right_raise[1] > body.height > right_raise[0]


def test_depth_shows_the_person_where_the_skeleton_is(sequence) -> None:
    u, v, z = project_to_pixels(sequence.joints[:, 0])
    hits = 0
    for f in range(len(z)):
        r, c = round(v[f]), round(u[f])
        window = sequence.depth_mm[f, r - 3 : r + 4, c - 3 : c + 4].astype(float) / 1000
        window = window[window > 0]
        # the pelvis joint lies inside the body, about a torso's half depth behind the visible surface
        hits += window.size > 0 and abs(np.median(window) - z[f]) < 0.25
    assert hits >= len(z) - 1
    assert (DEPTH_FX, DEPTH_FY, DEPTH_CX, DEPTH_CY) == (383.0, 383.0, 319.5, 239.5)


def test_depth_noise_grows_with_distance_and_holes_follow_edges() -> None:
    """A wall at 4 m with a box at 1.5 m in front: D435-like error, IR shadow and edge dropouts."""
    truth = np.full((480, 640), 4.0, dtype=np.float32)
    truth[140:340, 220:420] = 1.5
    depth = add_depth_noise(truth, np.random.default_rng(0)).astype(float) / 1000
    far, near = depth[:100, :200], depth[160:320, 240:400]
    far_err, near_err = far[far > 0] - 4.0, near[near > 0] - 1.5
    assert abs(far_err.mean()) < 0.02 and 0.03 < far_err.std() < 0.12
    # error ~ z^2: (4 / 1.5)^2 ~ 7 times larger far away
    assert 4 < far_err.std() / near_err.std() < 12
    assert np.mean(far == 0) < 0.01  # only sparse holes away from edges
    # the second imager cannot see the wall just left of the box: f * B * (1/1.5 - 1/4) ~ 8 pixels
    assert np.all(depth[150:330, 214:218] == 0)
    assert np.mean(depth[150:330, 424:428] == 0) < 0.1
    # the box's top and bottom edges lose many pixels
    edges = np.concatenate([depth[139:141, 230:410].ravel(), depth[339:341, 230:410].ravel()])
    assert np.mean(edges == 0) > 0.2


def test_lidar_points_lie_on_the_person(sequence) -> None:
    for f in (0, 5):
        points = sequence.lidar[f] + np.asarray(LIDAR_POSITION)  # back to the room frame
        joints = sequence.joints[f]
        a, b = joints[[p for p, _ in BONES]], joints[[c for _, c in BONES]]
        ab = b - a
        t = np.clip(np.einsum("nbd,bd->nb", points[:, None] - a, ab) / np.sum(ab * ab, axis=1), 0, 1)
        closest = a + t[..., None] * ab
        dist = np.linalg.norm(points[:, None] - closest, axis=2).min(axis=1)
        # the detector box also takes in the floor around the feet, as MM-Fi's clouds do
        floor = points[:, 2] < 0.05
        assert 0.0 <= np.mean(floor) < 0.4
        near = np.mean(dist[~floor] < 0.25)
        assert near > 0.85, f"frame {f}: only {near:.0%} of the points above the floor near the skeleton"
        assert sequence.lidar[f].dtype == np.float64


def test_csi_shapes_and_values(sequence) -> None:
    assert sequence.csi_amplitude.shape == sequence.csi_phase.shape == (6, 3, 114, 10)
    assert np.mean(np.isfinite(sequence.csi_amplitude)) > 0.99
    assert np.all(np.abs(sequence.csi_phase) <= np.pi)
    np.testing.assert_allclose(sequence.timestamps, np.arange(6) / 10)


def test_bad_ids_are_rejected() -> None:
    with pytest.raises(ValueError, match="subject"):
        simulate_sequence(0, 1, 2)
    with pytest.raises(ValueError, match="action"):
        simulate_sequence(1, 28, 2)
    with pytest.raises(ValueError, match="num_frames"):
        simulate_sequence(1, 1, 0)
    with pytest.raises(ValueError, match="seed"):
        simulate_sequence(1, 1, 2, seed=-1)


def test_cli_writes_the_requested_sequences(tmp_path) -> None:
    main(
        ["--out", str(tmp_path), "--preset", "tiny", "--subjects", "S12", "--actions", "A05", "--frames", "2"]
    )
    seq_dir = tmp_path / "E02" / "S12" / "A05"
    assert sorted(p.name for p in (seq_dir / "wifi-csi").iterdir()) == ["frame001.mat", "frame002.mat"]
    assert layout.read_ground_truth(seq_dir).shape == (2, 17, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["E02"]


# --- quality ordering: a linear regressor on crude features of each modality ---------------------------


def _cloud_features(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Occupancy of room-frame points around their centroid (x, y) in the sensing area, and the centroid."""
    keep = (points[:, 0] > 1.8) & (points[:, 0] < 4.6) & (np.abs(points[:, 1]) < 1.6)
    keep &= (points[:, 2] > 0.1) & (points[:, 2] < 2.4)
    points = points[keep]
    centre = np.array([points[:, 0].mean(), points[:, 1].mean(), 0.0])
    occupancy, _ = np.histogramdd(
        points - centre, bins=(8, 8, 12), range=((-0.8, 0.8), (-0.8, 0.8), (0, 2.4))
    )
    return occupancy.ravel() / len(points), centre


def _depth_points(depth: np.ndarray) -> np.ndarray:
    """Back-project a preprocessed (96 x 128) depth image into the room frame."""
    height, width = depth.shape
    scale = 640 / width
    uu, vv = np.meshgrid((np.arange(width) + 0.5) * scale - 0.5, (np.arange(height) + 0.5) * scale - 0.5)
    ok = depth > 0
    z = depth[ok]
    return np.stack(
        [z, -(uu[ok] - DEPTH_CX) / DEPTH_FX * z, -(vv[ok] - DEPTH_CY) / DEPTH_FY * z + 1.0], axis=1
    )


def _ridge(x_train, y_train, x_test, lam: float = 1.0) -> np.ndarray:
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-6
    a, b = (x_train - mean) / std, (x_test - mean) / std
    y_mean = y_train.mean(axis=0)
    weights = np.linalg.solve(a.T @ a + lam * len(a) * np.eye(a.shape[1]), a.T @ (y_train - y_mean))
    return b @ weights + y_mean


@pytest.mark.slow
def test_depth_and_lidar_carry_far_more_pose_than_csi() -> None:
    """Train on two subjects, test on a third (same room): MPJPE of ridge regression per modality."""
    features: dict[str, list] = {"depth": [], "lidar": [], "csi": []}
    centres: dict[str, list] = {"depth": [], "lidar": [], "csi": []}
    joints, subjects = [], []
    for subject in (1, 2, 3):
        for action in (2, 12, 27):
            seq = simulate_sequence(subject, action, 12, seed=7)
            for f in range(12):
                depth_f, depth_c = _cloud_features(_depth_points(preprocess_depth(seq.depth_mm[f])[0]))
                cloud = preprocess_lidar(seq.lidar[f]).astype(np.float64) + np.asarray(LIDAR_POSITION)
                lidar_f, lidar_c = _cloud_features(cloud)
                csi = preprocess_csi(seq.csi_amplitude[f], seq.csi_phase[f]).mean(axis=2).ravel()
                for name, feat, centre in (
                    ("depth", depth_f, depth_c),
                    ("lidar", lidar_f, lidar_c),
                    ("csi", csi, np.zeros(3)),  # CSI gives no location to centre on
                ):
                    features[name].append(feat)
                    centres[name].append(centre)
                joints.append(seq.joints[f])
                subjects.append(subject)
    joints, test = np.array(joints), np.array(subjects) == 3
    errors = {}
    for name in features:
        x, c = np.array(features[name]), np.array(centres[name])[:, None, :]
        y = (joints - c).reshape(len(joints), -1)
        pred = _ridge(x[~test], y[~test], x[test]).reshape(-1, 17, 3) + c[test]
        errors[name] = 1000 * np.linalg.norm(pred - joints[test], axis=2).mean()
    baseline = 1000 * np.linalg.norm(joints[~test].mean(axis=0) - joints[test], axis=2).mean()
    assert errors["depth"] < 0.5 * errors["csi"], errors
    assert errors["lidar"] < 0.5 * errors["csi"], errors
    assert max(errors["depth"], errors["lidar"]) < 0.6 * baseline, (errors, baseline)
