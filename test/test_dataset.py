"""MMFiDataset on a small fake MM-Fi tree written with layout's writers."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from midas_ros.interfaces import DEPTH_NUM_POINTS
from midas_ros.mmfi import layout
from midas_ros.mmfi.dataset import MMFiDataset
from midas_ros.rig import MMFI_RIG

SUBJECTS = (1, 2, 3, 11, 12)  # E01 and E02 only: far fewer than MM-Fi's 40
ACTIONS = (1, 2, 27)  # A01 is P2, A02 and A27 are P1
NUM_FRAMES = 4


def _code(subject: int, action: int, frame: int) -> int:
    return subject * 1000 + action * 10 + frame


def _joints(subject: int, action: int) -> np.ndarray:
    frames = np.arange(1, NUM_FRAMES + 1, dtype=np.float64)[:, None, None]
    return np.broadcast_to(_code(subject, action, 0) + frames, (NUM_FRAMES, 17, 3)) / 1000.0


def _write_tree(root: Path) -> Path:
    for subject in SUBJECTS:
        for action in ACTIONS:
            seq = layout.sequence_dir(root, subject, action)
            for folder in layout.MODALITY_FOLDERS.values():
                (seq / folder).mkdir(parents=True)
            layout.write_ground_truth(seq, _joints(subject, action))
            for frame in range(1, NUM_FRAMES + 1):
                code = _code(subject, action, frame)
                layout.write_depth_png(
                    layout.frame_path(seq, "depth", frame), np.full((6, 8), code, np.uint16)
                )
                layout.write_lidar_bin(layout.frame_path(seq, "lidar", frame), np.full((frame + 2, 3), code))
                layout.write_csi_mat(
                    layout.frame_path(seq, "csi", frame),
                    np.full(layout.CSI_SHAPE, code, dtype=np.float64),
                    np.full(layout.CSI_SHAPE, -code, dtype=np.float64),
                )
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_tree(tmp_path_factory.mktemp("mmfi"))


@pytest.fixture
def own_tree(tmp_path: Path) -> Path:
    """A tree a test may damage."""
    return _write_tree(tmp_path / "mmfi")


def _check_record(record, modalities=("depth", "lidar", "csi")) -> None:
    code = _code(record.subject, record.action, record.frame)
    np.testing.assert_allclose(record.joints, code / 1000.0, rtol=1e-6)
    assert record.joints.shape == (17, 3)
    assert record.joints.dtype == np.float32
    assert set(record.raw) == set(modalities)
    if record.raw.get("depth") is not None:
        assert record.raw["depth"].dtype == np.uint16
        assert (record.raw["depth"] == code).all()
    if record.raw.get("lidar") is not None:
        assert record.raw["lidar"].shape == (record.frame + 2, 3)
        assert (record.raw["lidar"] == code).all()
    if record.raw.get("csi") is not None:
        amplitude, phase = record.raw["csi"]
        assert (amplitude == code).all()
        assert (phase == -code).all()


def test_round_trip_returns_what_was_written(tree: Path) -> None:
    data = MMFiDataset(tree, split="all")
    assert len(data) == len(SUBJECTS) * len(ACTIONS) * NUM_FRAMES
    assert data.subjects == SUBJECTS
    seen = set()
    for record in data:
        _check_record(record)
        assert all(record.raw[m] is not None for m in ("depth", "lidar", "csi"))
        assert record.environment == layout.environment_of(record.subject)
        seen.add((record.subject, record.action, record.frame))
    assert len(seen) == len(data)
    assert data.frame_info(-1) == (12, 27, NUM_FRAMES)
    with pytest.raises(IndexError):
        data[len(data)]


def test_modality_selection(tree: Path) -> None:
    data = MMFiDataset(tree, modalities=("lidar",), split="all")
    record = data[0]
    assert set(record.raw) == {"lidar"}
    _check_record(record, ("lidar",))
    with pytest.raises(ValueError, match="modalities"):
        MMFiDataset(tree, modalities=("rgb",))


def test_protocols_select_their_actions(tree: Path) -> None:
    for protocol, expected in (("P1", {2, 27}), ("P2", {1}), ("P3", {1, 2, 27})):
        data = MMFiDataset(tree, protocol=protocol, split="all")
        assert {data.frame_info(i)[1] for i in range(len(data))} == expected
        assert len(data) == len(SUBJECTS) * len(expected) * NUM_FRAMES
    assert len(MMFiDataset(tree, protocol=[27], split="all")) == len(SUBJECTS) * NUM_FRAMES
    with pytest.raises(ValueError, match="protocol"):
        MMFiDataset(tree, protocol="P4")


def _sequences(data: MMFiDataset) -> set[tuple[int, int]]:
    return {(s.subject, s.action) for s in data.sequences}


def test_random_split_is_disjoint_per_action_and_seeded(tree: Path) -> None:
    train = MMFiDataset(tree, split="train", seed=3)
    val = MMFiDataset(tree, split="val", seed=3)
    assert not _sequences(train) & _sequences(val)
    assert _sequences(train) | _sequences(val) == {(s, a) for s in SUBJECTS for a in ACTIONS}
    for action in ACTIONS:
        # floor(0.8 * 5) = 4 training subjects per action
        assert sum(a == action for _, a in _sequences(train)) == 4
    assert _sequences(MMFiDataset(tree, split="train", seed=3)) == _sequences(train)
    others = [_sequences(MMFiDataset(tree, split="train", seed=seed)) for seed in range(4, 10)]
    assert any(other != _sequences(train) for other in others)


def test_cross_subject_split(tree: Path) -> None:
    train = MMFiDataset(tree, split="train", split_scheme="cross_subject", seed=1)
    val = MMFiDataset(tree, split="val", split_scheme="cross_subject", seed=1)
    assert not set(train.subjects) & set(val.subjects)
    assert set(train.subjects) | set(val.subjects) == set(SUBJECTS)
    assert len(val.subjects) == 1
    assert MMFiDataset(tree, split="val", split_scheme="cross_subject", seed=1).subjects == val.subjects
    given = MMFiDataset(tree, split="val", split_scheme="cross_subject", val_subjects=[2, 12])
    assert given.subjects == (2, 12)
    assert MMFiDataset(tree, split="train", split_scheme="cross_subject", val_subjects=[2, 12]).subjects == (
        1,
        3,
        11,
    )
    with pytest.raises(ValueError, match="not found"):
        MMFiDataset(tree, split="val", split_scheme="cross_subject", val_subjects=[40])


def test_cross_environment_split(tree: Path) -> None:
    train = MMFiDataset(tree, split="train", split_scheme="cross_environment")
    val = MMFiDataset(tree, split="val", split_scheme="cross_environment")
    assert train.subjects == (1, 2, 3)
    assert val.subjects == (11, 12)
    assert MMFiDataset(tree, split="val", split_scheme="cross_environment", val_environment=1).subjects == (
        1,
        2,
        3,
    )
    with pytest.raises(ValueError, match="E03"):
        MMFiDataset(tree, split="val", split_scheme="cross_environment", val_environment=3)


def test_subject_restriction(tree: Path) -> None:
    data = MMFiDataset(tree, split="all", subjects=[3, 11])
    assert data.subjects == (3, 11)
    with pytest.raises(ValueError, match="not found"):
        MMFiDataset(tree, split="all", subjects=[4])


def test_subject_restriction_ignores_other_subjects_half_written_sequences(own_tree: Path) -> None:
    (layout.sequence_dir(own_tree, 2, 27) / "ground_truth.npy").unlink()  # S02 still being written
    assert MMFiDataset(own_tree, split="all", subjects=[1]).subjects == (1,)
    with pytest.raises(FileNotFoundError, match="ground_truth"):
        MMFiDataset(own_tree, split="all", subjects=[1, 2])


def test_missing_file_is_marked_missing_not_shifted(own_tree: Path) -> None:
    seq = layout.sequence_dir(own_tree, 2, 27)
    layout.frame_path(seq, "lidar", 2).unlink()
    data = MMFiDataset(own_tree, split="all", subjects=[2], protocol=[27])
    assert [data.frame_info(i)[2] for i in range(len(data))] == [1, 2, 3, 4]
    frame2, frame3 = data[1], data[2]
    assert frame2.frame == 2
    assert frame2.raw["lidar"] is None
    assert frame2.raw["depth"] is not None
    _check_record(frame2)
    # frame 3 keeps its own LiDAR file (3 + 2 points) and its own ground truth
    assert frame3.frame == 3
    assert frame3.raw["lidar"].shape == (5, 3)
    _check_record(frame3)
    assert data.has_file(1) == {"depth": True, "lidar": False, "csi": True}


def test_empty_file_is_missing(own_tree: Path) -> None:
    seq = layout.sequence_dir(own_tree, 1, 1)
    layout.frame_path(seq, "depth", 3).write_bytes(b"")
    layout.frame_path(seq, "csi", 3).write_bytes(b"")
    data = MMFiDataset(own_tree, split="all", subjects=[1], protocol=[1])
    record = data[2]
    assert record.frame == 3
    assert record.raw["depth"] is None
    assert record.raw["csi"] is None
    _check_record(record)


def test_frames_without_data_or_ground_truth_are_left_out_and_counted(own_tree: Path) -> None:
    seq = layout.sequence_dir(own_tree, 1, 2)
    for modality in ("depth", "lidar", "csi"):
        layout.frame_path(seq, modality, 4).unlink()
    layout.write_lidar_bin(layout.frame_path(seq, "lidar", 9), np.zeros((3, 3)))  # no ground truth for it
    (seq / "lidar" / "notes.txt").write_text("not a frame")
    data = MMFiDataset(own_tree, split="all", subjects=[1], protocol=[2])
    assert [data.frame_info(i)[2] for i in range(len(data))] == [1, 2, 3]
    assert data.skipped == {"no_modality": 1, "beyond_ground_truth": 1}
    # asking only for depth: a frame with a LiDAR file but no depth file is not a depth frame
    layout.frame_path(seq, "depth", 1).unlink()
    depth_only = MMFiDataset(own_tree, modalities=["depth"], split="all", subjects=[1], protocol=[2])
    assert [depth_only.frame_info(i)[2] for i in range(len(depth_only))] == [2, 3]


def test_bad_layouts_give_clear_errors(own_tree: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a directory"):
        MMFiDataset(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no E01\.\.E04 folders under"):
        MMFiDataset(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="pass its parent"):
        MMFiDataset(own_tree / "E01")
    (layout.sequence_dir(own_tree, 3, 2) / "ground_truth.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"no ground_truth\.npy"):
        MMFiDataset(own_tree)
    with pytest.raises(FileNotFoundError, match="no sequence of actions"):
        MMFiDataset(own_tree, protocol=[5])
    with pytest.raises(ValueError, match="split"):
        MMFiDataset(own_tree, split="test")


def test_pickles_for_worker_processes(tree: Path) -> None:
    data = MMFiDataset(tree, split="all", subjects=[1])
    _ = data[0]
    clone = pickle.loads(pickle.dumps(data))
    assert len(clone) == len(data)
    _check_record(clone[5])


# --- PreprocessedSet ---------------------------------------------------------------------------------


def _person_depth(distance_m: float) -> np.ndarray:
    """A 640 x 480 frame of MM-Fi's camera (1.0 m up, level, fx 383): a 0.5 m wide, 1.7 m tall slab at
    distance_m, nothing else in range."""
    k, top, bottom = MMFI_RIG.depth_intrinsics, 1.7, 0.15
    rows = slice(
        round(k.cy - k.fy * (top - 1.0) / distance_m), round(k.cy + k.fy * (1.0 - bottom) / distance_m)
    )
    cols = slice(round(k.cx - k.fx * 0.25 / distance_m), round(k.cx + k.fx * 0.25 / distance_m))
    depth = np.zeros((k.height, k.width), dtype=np.uint16)
    depth[rows, cols] = round(1000 * distance_m)
    return depth


def _write_realistic_tree(root: Path) -> Path:
    """Two subjects, one action, 3 frames of data the preprocessing accepts, plus a few broken files."""
    rng = np.random.default_rng(0)
    for subject in (1, 11):
        seq = layout.sequence_dir(root, subject, 2)
        for folder in layout.MODALITY_FOLDERS.values():
            (seq / folder).mkdir(parents=True)
        layout.write_ground_truth(seq, _joints(subject, 2)[:3])
        for frame in range(1, 4):
            layout.write_depth_png(layout.frame_path(seq, "depth", frame), _person_depth(2.0 + 0.5 * frame))
            person = np.c_[rng.normal(3, 0.1, 300), rng.normal(0, 0.15, 300), rng.uniform(-1.2, 0.4, 300)]
            layout.write_lidar_bin(layout.frame_path(seq, "lidar", frame), person)
            amp, pha = rng.normal(10, 2, layout.CSI_SHAPE), rng.uniform(-3, 3, layout.CSI_SHAPE)
            layout.write_csi_mat(layout.frame_path(seq, "csi", frame), amp, pha)
    seq = layout.sequence_dir(root, 11, 2)
    layout.frame_path(seq, "depth", 1).unlink()  # missing file
    layout.write_lidar_bin(layout.frame_path(seq, "lidar", 2), np.zeros((3, 3)))  # only "no return"s
    np.zeros(7).tofile(layout.frame_path(seq, "lidar", 3))  # corrupt: not a multiple of 3
    layout.write_depth_png(
        layout.frame_path(seq, "depth", 3), np.zeros((480, 640), np.uint16)
    )  # no valid pixel
    layout.frame_path(seq, "csi", 3).unlink()  # frame 3 of S11 is left with nothing usable
    return root


@pytest.fixture(scope="module")
def preprocessed_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_realistic_tree(tmp_path_factory.mktemp("mmfi_real"))


def test_preprocessed_set_marks_missing_and_rejected(preprocessed_tree: Path) -> None:
    from midas_ros.mmfi.preprocessed import PreprocessedSet

    data = MMFiDataset(preprocessed_tree, split="all")
    built = PreprocessedSet.build(data, progress=False)
    assert len(built) == 5  # S11 frame 3 had no usable modality
    assert built.stats == {
        "depth:missing_file": 1,
        "lidar:non_finite": 1,
        "lidar:unreadable": 1,
        "depth:no_valid_pixels": 1,
        "csi:missing_file": 1,
        "frame:no_usable_modality": 1,
    }
    rows = {(int(s), int(f)): i for i, (s, f) in enumerate(zip(built.subject, built.frame, strict=True))}
    assert set(rows) == {(1, 1), (1, 2), (1, 3), (11, 1), (11, 2)}
    assert built.present[rows[1, 2]].tolist() == [True, True, True]
    assert built.present[rows[11, 1]].tolist() == [False, True, True]
    assert built.present[rows[11, 2]].tolist() == [True, False, True]
    assert not built.depth[rows[11, 1]].any()
    assert not built.lidar[rows[11, 2]].any()
    # the slab at 3 m (0.5 m wide, 0.15 to 1.7 m high) as base-frame points, float16 (1 mm steps here)
    person = built.depth[rows[1, 2]].astype(np.float64)
    np.testing.assert_allclose(person[:, 0], 3.0, atol=2e-3)
    assert np.abs(person[:, 1]).max() < 0.25 + 2e-3
    assert person[:, 2].min() > 0.15 - 2e-3 and person[:, 2].max() < 1.7 + 2e-3
    assert person[:, 1].min() < -0.23 and person[:, 1].max() > 0.23 and person[:, 2].max() > 1.68
    assert 0.9 * 25 * 78 < len(np.unique(person, axis=0)) < 1.1 * 25 * 78  # its 2 cm voxels
    np.testing.assert_allclose(built.joints[rows[11, 2]], _code(11, 2, 2) / 1000.0, rtol=1e-6)
    assert built.depth.shape == (5, DEPTH_NUM_POINTS, 3) and built.depth.dtype == np.float16
    assert built.lidar.shape == (5, 512, 3) and built.lidar.dtype == np.float32
    assert built.csi.shape == (5, 6, 114, 10) and built.csi.dtype == np.float16
    batch = built.inputs([0, 1])
    assert batch["csi"].dtype == np.float32 and batch["present"].shape == (2, 3)


def test_preprocessed_set_save_load_select(preprocessed_tree: Path, tmp_path: Path) -> None:
    from midas_ros.mmfi.preprocessed import PreprocessedSet

    data = MMFiDataset(preprocessed_tree, modalities=("depth", "csi"), split="all")
    built = PreprocessedSet.build(data, progress=False)
    assert not built.present[:, 1].any()  # LiDAR not requested
    path = built.save(tmp_path / "cache" / "set")
    assert path.name == "set.npz"
    loaded = PreprocessedSet.load(path)
    for name in ("depth", "lidar", "csi", "present", "joints", "subject", "action", "frame"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(built, name))
    assert loaded.stats == built.stats
    part = loaded.select_subjects([11])
    assert set(part.subject.tolist()) == {11}
    assert len(part) + len(loaded.select(~loaded.subject_mask([11]))) == len(loaded)
    assert len(loaded.select(loaded.action_mask(layout.PROTOCOLS["P2"]))) == 0
    # the cache is reused for the same dataset and rebuilt for another
    assert PreprocessedSet.load_or_build(path, data, progress=False).stats == built.stats
    other = MMFiDataset(preprocessed_tree, modalities=("depth",), split="all")
    assert "csi:missing_file" not in PreprocessedSet.load_or_build(path, other, progress=False).stats
    np.savez(tmp_path / "junk.npz", depth=np.zeros(3))
    with pytest.raises(ValueError, match="not a PreprocessedSet"):
        PreprocessedSet.load(tmp_path / "junk.npz")


def test_preprocessed_set_workers_match_serial(preprocessed_tree: Path) -> None:
    from midas_ros.mmfi.preprocessed import PreprocessedSet

    data = MMFiDataset(preprocessed_tree, split="all")
    serial = PreprocessedSet.build(data, progress=False)
    parallel = PreprocessedSet.build(data, workers=2, progress=False)
    assert parallel.stats == serial.stats
    for name in ("depth", "lidar", "csi", "present", "joints", "subject", "frame"):
        np.testing.assert_array_equal(getattr(parallel, name), getattr(serial, name))
