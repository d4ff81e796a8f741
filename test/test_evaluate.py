"""Evaluation: Shapley values, the reference poses, slices, the 7-row x 5-model report with references and
slices, target checks, and a run scored end to end."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from synthetic_data import synthetic_set

from midas_ros import MODALITIES
from midas_ros.demo.scoring import score
from midas_ros.evaluate.cli import evaluate_run, training_rows
from midas_ros.evaluate.metrics import frame_errors, heading_error_deg, heading_rad, pa_mpjpe_mm
from midas_ros.evaluate.predict import mean_pose_errors, predict_subsets
from midas_ros.evaluate.references import (
    REFERENCE_KEY,
    ReferencePose,
    canonical_poses,
    procrustes_mean_pose,
    reference_from_checkpoint,
    rotate_about_z,
)
from midas_ros.evaluate.report import (
    MODEL_NAMES,
    EvaluationResults,
    SliceResult,
    reference_checks,
    target_checks,
    write_report,
)
from midas_ros.evaluate.shapley import shapley_values
from midas_ros.evaluate.slices import facing_camera, split_slices
from midas_ros.model import MidasConfig, load_checkpoint
from midas_ros.sim.body import NUM_PARAMS, forward_kinematics, make_body
from midas_ros.train.recipe import Recipe, run_recipe_on
from midas_ros.train.splits import SubjectSplit, load_split
from midas_ros.train.stage1 import Stage1Settings
from midas_ros.train.stage2 import Stage2Settings
from midas_ros.train.subsets import SUBSET_LABELS, SUBSETS

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _errors(values: dict[str, float]) -> dict[frozenset[str], float]:
    return {frozenset(s): values[label] for s, label in zip(SUBSETS, SUBSET_LABELS, strict=True)}


def test_shapley_values_sum_to_the_full_coalition_value() -> None:
    rng = np.random.default_rng(0)
    values = dict(zip(SUBSET_LABELS, rng.uniform(50, 200, size=7).tolist(), strict=True))
    empty = 300.0
    phi = shapley_values(_errors(values), empty)
    assert sum(phi.values()) == pytest.approx(empty - values["D+L+W"])


def test_shapley_of_additive_errors_is_each_modality_own_gain() -> None:
    gain = {"depth": 40.0, "lidar": 25.0, "csi": 5.0}
    values = {
        label: 300.0 - sum(gain[m] for m in subset)
        for subset, label in zip(SUBSETS, SUBSET_LABELS, strict=True)
    }
    phi = shapley_values(_errors(values), 300.0)
    assert phi == pytest.approx(gain)


def test_shapley_gives_a_useless_modality_zero_and_symmetric_ones_equal_shares() -> None:
    # CSI never changes the error; depth and LiDAR are interchangeable.
    values = {"D": 100.0, "L": 100.0, "W": 300.0, "D+L": 80.0, "D+W": 100.0, "L+W": 100.0, "D+L+W": 80.0}
    phi = shapley_values(_errors(values), 300.0)
    assert phi["csi"] == pytest.approx(0.0)
    assert phi["depth"] == pytest.approx(phi["lidar"])


def test_shapley_needs_every_subset() -> None:
    with pytest.raises(KeyError):
        shapley_values({frozenset({"depth"}): 1.0}, 2.0)


def _cell(rng: np.random.Generator) -> dict[str, float]:
    return {
        "mpjpe": float(rng.uniform(60, 200)),
        "pa_mpjpe": float(rng.uniform(30, 100)),
        "root_mm": float(rng.uniform(20, 300)),
        "heading_deg": float(rng.uniform(0, 90)),
    }


def _fake_results() -> EvaluationResults:
    rng = np.random.default_rng(1)

    def table() -> dict[str, dict[str, dict[str, float]]]:
        return {model: {label: _cell(rng) for label in SUBSET_LABELS} for model in MODEL_NAMES}

    constant = {"mpjpe": 400.0, "pa_mpjpe": 120.0, "root_mm": 350.0, "heading_deg": 80.0}
    placement = {"mpjpe": 150.0, "pa_mpjpe": 120.0, "root_mm": 0.0, "heading_deg": 0.0}
    slices = [
        SliceResult("heading", "facing camera (<= 45 deg)", 4, table(), constant, placement),
        SliceResult("heading", "all headings", 10, table(), constant, placement),
        SliceResult("actions", "seen actions", 7, table(), constant, placement, "held-out actions: 5"),
        SliceResult("actions", "unseen actions", 3, table(), constant, placement, "held-out actions: 5"),
        SliceResult("rigs", "seen rigs", 10, table(), constant, placement, "the split holds out no rig"),
        SliceResult("rigs", "unseen rigs", 0, {}, {}, {}, "the split holds out no rig"),
    ]
    return EvaluationResults(
        errors=table(),
        reference=constant,
        weights={"midas": {"depth": 0.4, "lidar": 0.45, "csi": 0.15}},
        num_frames=10,
        test_subjects=(3, 13),
        placement=placement,
        slices=slices,
        reference_info={
            "frames": 40,
            "source": "stored in x",
            "mean_root_m": [2.0, 0.0, 0.9],
            "mean_heading_deg": 180.0,
        },
        mean_pose={"mpjpe": 480.0, "pa_mpjpe": 190.0},
    )


def _section(md: str, title: str) -> list[str]:
    """The lines of one '## ' or '### ' section of the Markdown (title: its start)."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("#") and title in line)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("#")), len(lines))
    return lines[start:end]


def test_report_has_seven_rows_for_each_of_five_models_and_the_references(tmp_path: Path) -> None:
    results = _fake_results()
    paths = write_report(results, tmp_path)
    with open(paths["csv"]) as f:
        rows = list(csv.DictReader(f))
    whole = [r for r in rows if r["slice"] == "all"]
    assert len(whole) == 35 + 2  # 7 subsets x 5 models, then the two references
    assert [r["subset"] for r in whole[:7]] == list(SUBSET_LABELS)
    assert {r["model"] for r in whole[:35]} == set(MODEL_NAMES)
    assert [r["model"] for r in whole[35:]] == ["constant_pose", "placement_only"]
    assert float(whole[0]["mpjpe_mm"]) == pytest.approx(results.errors["midas"]["D"]["mpjpe"], abs=0.01)
    assert float(whole[0]["root_error_mm"]) == pytest.approx(
        results.errors["midas"]["D"]["root_mm"], abs=0.01
    )
    assert float(whole[0]["heading_error_deg"]) == pytest.approx(
        results.errors["midas"]["D"]["heading_deg"], abs=0.01
    )
    # Every slice with frames follows, with its frame count; the empty one is left out.
    by_slice = {r["slice"]: int(r["frames"]) for r in rows}
    assert by_slice == {
        "all": 10,
        "facing camera (<= 45 deg)": 4,
        "all headings": 10,
        "seen actions": 7,
        "unseen actions": 3,
        "seen rigs": 10,
    }
    assert len(rows) == 6 * 37

    md = paths["md"].read_text()
    for title, cells in (
        ("MPJPE / PA-MPJPE", ("mpjpe", "pa_mpjpe")),
        ("Root position", ("root_mm", "heading_deg")),
    ):
        section = _section(md, title)
        table = [
            line for line in section if line.startswith(tuple(f"| {label} |" for label in SUBSET_LABELS))
        ]
        assert len(table) == 7 and all(line.count("|") == 7 for line in table)
        refs = [line for line in section if line.startswith("| *")]
        assert len(refs) == 2 and all(line.count("|") == 7 for line in refs)
        first, second = cells
        e = results.errors["midas"]["D"]
        assert f"{e[first]:.1f} / {e[second]:.1f}" in table[0]
        assert f"*{results.reference[first]:.1f} / {results.reference[second]:.1f}*" in refs[0]
    assert "*placement only (true root + heading)* | *0.0 / 0.0*" in md

    facing = _section(md, "Facing the depth camera")
    assert any(line.startswith("| facing camera (<= 45 deg) | 4 |") for line in facing)
    assert any(line.startswith("| slice | frames | D+L+W |") and "root (mm)" in line for line in facing)
    unseen_rig = next(
        line for line in _section(md, "Seen vs unseen rigs") if line.startswith("| unseen rigs")
    )
    assert unseen_rig.startswith("| unseen rigs | 0 | -")
    assert "Held-out actions: 5." in _section(md, "Seen vs unseen actions")
    checks = _section(md, "Against the references")
    assert len([line for line in checks if line.startswith("| MIDAS")]) == 8
    assert "Previous reference" in md and "generalised Procrustes mean of 40 training poses" in md
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_without_references_or_slices_still_renders(tmp_path: Path) -> None:
    # The old shape of the results (two metrics, one reference, no slices) renders as before.
    results = _fake_results()
    results.placement, results.slices, results.reference_info, results.mean_pose = {}, [], {}, {}
    for rows in results.errors.values():
        for cell in rows.values():
            del cell["root_mm"], cell["heading_deg"]
    md = write_report(results, tmp_path)["md"].read_text()
    assert "## Slices" not in md and "Root position" not in md and "Against the references" not in md
    assert len([line for line in md.splitlines() if line.startswith("| *constant pose")]) == 1


def test_reference_checks_report_ratios_and_whether_met() -> None:
    results = _fake_results()
    results.errors["midas"]["D+L+W"]["pa_mpjpe"] = 50.0  # 0.42x the constant's 120
    results.errors["midas"]["D+L+W"]["mpjpe"] = 100.0  # 0.67x placement's 150: not met
    by_target = {target: (met, measured) for target, met, measured in reference_checks(results)}
    met, measured = by_target["MIDAS D+L+W PA-MPJPE <= 0.50x constant pose"]
    assert met is True and measured.startswith("0.42x (50.0 / 120.0")
    assert by_target["MIDAS D+L+W MPJPE <= 0.60x placement only"][0] is False
    assert len(by_target) == 8
    for sl in results.slices:
        if sl.group == "actions":
            sl.errors["midas"]["D+L+W"]["mpjpe"] = 100.0 if sl.name == "seen actions" else 160.0
    unseen = next(c for c in reference_checks(results) if "unseen actions" in c[0])
    assert unseen[1] is False and unseen[2].startswith("1.60x")
    results.slices = [sl for sl in results.slices if sl.group != "actions"]
    assert next(c for c in reference_checks(results) if "unseen actions" in c[0])[1] is None


# --- reference poses ------------------------------------------------------------------------------------


def _subject_poses(frames: int, seed: int = 0, spread: float = 0.3) -> np.ndarray:
    """Simulated poses (F, 17, 3) of one body: random joint angles, places and headings."""
    rng = np.random.default_rng(seed)
    params = rng.normal(scale=spread, size=(frames, NUM_PARAMS))
    body = make_body(3)
    return np.concatenate(
        [
            forward_kinematics(
                body, params[f : f + 1], tuple(rng.uniform(1.0, 4.0, 2)), rng.uniform(-np.pi, np.pi)
            )
            for f in range(frames)
        ]
    )


def test_procrustes_mean_of_turned_scaled_shifted_copies_is_the_pose() -> None:
    pose = _subject_poses(1, seed=1)[0]
    rng = np.random.default_rng(2)
    angles = rng.uniform(-np.pi, np.pi, 6)
    scales = np.array([0.8, 0.9, 1.0, 1.1, 1.2, 1.0])  # mean size = the pose's own
    copies = scales[:, None, None] * rotate_about_z(np.broadcast_to(pose, (6, 17, 3)), angles)
    copies = copies + rng.uniform(-2, 2, (6, 1, 3))
    mean = procrustes_mean_pose(copies)
    # The canonical frame: pelvis at the origin, facing +x, z up; the size is the copies' mean size.
    np.testing.assert_allclose(mean, canonical_poses(pose)[0], atol=1e-6)
    assert mean[0] == pytest.approx(np.zeros(3)) and heading_rad(mean)[0] == pytest.approx(0.0, abs=1e-9)


def test_procrustes_mean_of_copies_turned_about_any_axis_has_the_pose_shape() -> None:
    pose = _subject_poses(1, seed=3)[0]
    rots = Rotation.random(5, random_state=4).as_matrix()
    copies = np.einsum("jk,fik->fji", pose, rots) + np.arange(5)[:, None, None]
    assert pa_mpjpe_mm(procrustes_mean_pose(copies), pose) == pytest.approx(0.0, abs=1e-4)


def test_constant_reference_on_hand_made_training_poses() -> None:
    # Two copies of one pose, both facing +x, pelvis at x = 1 and x = 3 m: the constant is that pose at
    # x = 2 m facing +x, so it is 1 m off on every joint of both (MPJPE 1000), and exact after alignment.
    pose = canonical_poses(_subject_poses(1, seed=5))[0] + np.array([0.0, 0.0, 0.9])
    train = np.stack([pose + np.array([1.0, 0.0, 0.0]), pose + np.array([3.0, 0.0, 0.0])])
    ref = ReferencePose.from_training(train)
    assert ref.frames == 2 and ref.mean_heading_rad == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(ref.mean_root, [2.0, 0.0, pose[0, 2]], atol=1e-12)
    errors = {k: v.mean() for k, v in frame_errors(ref.constant(2), train).items()}
    assert errors["mpjpe"] == pytest.approx(1000.0)
    assert errors["pa_mpjpe"] == pytest.approx(0.0, abs=1e-4)
    assert errors["root_mm"] == pytest.approx(1000.0) and errors["heading_deg"] == pytest.approx(
        0.0, abs=1e-6
    )
    # A pose with one joint moved: the constant's PA-MPJPE on the training poses is the mean of the
    # per-frame similarity-fit errors of the one Procrustes-mean shape.
    other = pose.copy()
    other[13] += [0.0, 0.0, 0.3]  # left wrist raised 30 cm
    train = np.stack([pose, other])
    ref = ReferencePose.from_training(train)
    expected = np.mean([pa_mpjpe_mm(ref.pose, p) for p in train])
    assert frame_errors(ref.constant(2), train)["pa_mpjpe"].mean() == pytest.approx(expected)
    # The mean lies between the two: the wrist about halfway up, every other joint nearly unchanged.
    canon = canonical_poses(pose)[0]
    assert 0.1 < ref.pose[13, 2] - canon[13, 2] < 0.2
    assert 0.0 < expected < pa_mpjpe_mm(pose, other)


def test_procrustes_mean_beats_the_base_frame_average_on_random_headings() -> None:
    train = _subject_poses(60, seed=6)
    test = _subject_poses(20, seed=7)
    ref = ReferencePose.from_training(train)
    constant = frame_errors(ref.constant(20), test)["pa_mpjpe"].mean()
    assert constant < 0.8 * mean_pose_errors(train, test)["pa_mpjpe"]


def test_placement_only_stands_on_the_true_root_facing_the_true_way() -> None:
    train, test = _subject_poses(30, seed=8), _subject_poses(10, seed=9)
    ref = ReferencePose.from_training(train)
    placed = ref.placed(test)
    np.testing.assert_allclose(placed[:, 0], test[:, 0], atol=1e-12)
    errors = frame_errors(placed, test)
    assert errors["root_mm"] == pytest.approx(np.zeros(10), abs=1e-9)
    assert errors["heading_deg"] == pytest.approx(np.zeros(10), abs=1e-6)
    # Its PA-MPJPE is the constant's (same shape, similarity-fitted anyway).
    np.testing.assert_allclose(
        errors["pa_mpjpe"], frame_errors(ref.constant(10), test)["pa_mpjpe"], atol=1e-6
    )
    # Placing the pose itself (its own canonical shape) reproduces it exactly.
    own = ReferencePose(canonical_poses(test[:1])[0], test[0, 0], 0.0, 1)
    np.testing.assert_allclose(own.placed(test[:1]), test[:1], atol=1e-12)
    assert heading_error_deg(rotate_about_z(test[:1], np.radians(30)), test[:1])[0] == pytest.approx(30.0)


def test_reference_metadata_round_trips_through_a_checkpoint(tmp_path: Path) -> None:
    from midas_ros.model import MIDAS, save_checkpoint, tiny_config

    ref = ReferencePose.from_training(_subject_poses(12, seed=10))
    path = save_checkpoint(MIDAS(tiny_config()), tmp_path / "m", {REFERENCE_KEY: ref.to_metadata(), "x": 1})
    meta = json.loads((tmp_path / "m.json").read_text())["metadata"][REFERENCE_KEY]
    assert set(meta) == {"procrustes_mean_m", "mean_root_m", "mean_heading_deg", "frames"}
    back = reference_from_checkpoint(path)
    assert back is not None and back.frames == 12
    np.testing.assert_allclose(back.pose, ref.pose, atol=1e-6)
    np.testing.assert_allclose(back.constant(1), ref.constant(1), atol=1e-5)
    save_checkpoint(MIDAS(tiny_config()), tmp_path / "old", {"x": 1})
    assert reference_from_checkpoint(tmp_path / "old") is None


def test_demo_scoring_uses_the_stored_reference_and_adds_placement() -> None:
    gt = _subject_poses(4, seed=11)
    ref = ReferencePose.from_training(_subject_poses(20, seed=12))
    stamps = np.arange(4) * 100_000_000
    result = score(stamps, gt + 0.01, ["depth", "depth", "lidar", "lidar"], stamps, gt, ref)
    assert result.reference_mm is not None and result.placement_mm is not None
    assert result.reference_mm["all"] == pytest.approx(frame_errors(ref.constant(4), gt)["mpjpe"].mean())
    assert result.placement_mm["lidar"] == pytest.approx(
        frame_errors(ref.placed(gt[2:]), gt[2:])["mpjpe"].mean()
    )
    table = result.table(4, 4)
    assert "constant pose (mm)" in table and "placement only (mm)" in table
    plain = score(stamps, gt, ["depth"] * 4, stamps, gt, ref.pose)  # a bare (17, 3) pose: as before
    assert plain.placement_mm is None and "mean pose (mm)" in plain.table(4, 4)


# --- slices ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("heading_deg", "facing"), [(180, True), (140, True), (-136, True), (130, False), (0, False)]
)
def test_facing_the_camera_is_within_45_degrees_of_the_pelvis_to_camera_direction(
    heading_deg: float, facing: bool
) -> None:
    # Standing at x = 3 m on the camera's axis: the camera's floor point (the origin) lies at 180 deg.
    body = make_body(2)
    pose = forward_kinematics(body, np.zeros((1, NUM_PARAMS)), (3.0, 0.0), np.radians(heading_deg))
    assert facing_camera(pose)[0] == facing


def test_facing_the_camera_off_axis() -> None:
    # At (2, 2) the camera is at 225 deg; facing 200 deg is 25 deg off, facing 170 deg is 55 deg off.
    body = make_body(2)
    at = (2.0, 2.0)
    assert facing_camera(forward_kinematics(body, np.zeros((1, NUM_PARAMS)), at, np.radians(200)))[0]
    assert not facing_camera(forward_kinematics(body, np.zeros((1, NUM_PARAMS)), at, np.radians(170)))[0]


def test_slices_pick_the_right_frames() -> None:
    headings = np.radians([180, 0, 180, 90, 170, 10])
    joints = np.concatenate(
        [forward_kinematics(make_body(1), np.zeros((1, NUM_PARAMS)), (3.0, 0.5), h) for h in headings]
    )
    actions = np.array([1, 2, 3, 1, 2, 3])
    data = _Frames(joints, actions, np.array([-1, -1, 4, 4, 7, -1]))
    split = SubjectSplit((1,), (2,), (3,), held_out_rigs=(4, 9), held_out_actions=(3,))
    got = {sl.name: np.flatnonzero(sl.mask).tolist() for sl in split_slices(data, split)}
    assert got == {
        "facing camera (<= 45 deg)": [0, 2, 4],
        "all headings": [0, 1, 2, 3, 4, 5],
        "seen actions": [0, 1, 3, 4],
        "unseen actions": [2, 5],
        "seen rigs": [0, 1, 4, 5],
        "unseen rigs": [2, 3],
    }
    # A set without rig ids (older preprocessed caches) is all MM-Fi rig: every rig seen.
    unseen_rigs = next(sl for sl in split_slices(_Frames(joints, actions), split) if sl.name == "unseen rigs")
    assert not unseen_rigs.mask.any()


class _Frames:
    """The fields of a PreprocessedSet the slices read."""

    def __init__(self, joints: np.ndarray, action: np.ndarray, rig: np.ndarray | None = None) -> None:
        self.joints, self.action = joints, action
        if rig is not None:
            self.rig = rig

    def __len__(self) -> int:
        return len(self.joints)


def test_load_split_reads_old_and_new_split_files(tmp_path: Path) -> None:
    (tmp_path / "split.json").write_text(json.dumps({"inner_train": [1, 2], "outer_val": [3], "test": [4]}))
    assert load_split(tmp_path) == SubjectSplit((1, 2), (3,), (4,))
    new = SubjectSplit((1, 2), (3,), (4,), held_out_rigs=(2,), held_out_actions=(5, 6))
    (tmp_path / "split.json").write_text(json.dumps(new.to_dict()))
    assert load_split(tmp_path) == new


# --- the report -----------------------------------------------------------------------------------------


def test_report_rejects_a_missing_subset(tmp_path: Path) -> None:
    results = _fake_results()
    del results.errors["base1"]["L+W"]
    with pytest.raises(ValueError, match="L\\+W"):
        write_report(results, tmp_path)


def test_target_checks_report_the_measured_numbers() -> None:
    results = _fake_results()
    for model in MODEL_NAMES:  # make MIDAS best everywhere, fusion monotone, 20% better than w/o Diff
        for label in SUBSET_LABELS:
            results.errors[model][label]["mpjpe"] = 200.0 - 10 * label.count("+")
    for label in SUBSET_LABELS:
        results.errors["midas"][label]["mpjpe"] = 90.0 - 10 * label.count("+")
        results.errors["wo_diff"][label]["mpjpe"] = 110.0
    assert [met for _, met, _ in target_checks(results)] == [True, True, True, True]

    results.errors["midas"]["D+W"]["mpjpe"] = 94.0  # 4.4% worse than D (90) alone
    results.errors["base1"]["L"]["mpjpe"] = 50.0  # a baseline wins one row
    checks = target_checks(results)
    assert checks[0][1] is False and "6 of 7" in checks[0][2]
    assert checks[1][1] is False and "D+W" in checks[1][2]
    results.weights["midas"]["csi"] = 0.5
    assert target_checks(results)[3][1] is False


def test_mean_pose_reference_is_the_error_of_the_training_mean() -> None:
    train = np.zeros((4, 17, 3))
    test = np.zeros((2, 17, 3)) + np.array([0.0, 0.0, 0.1])
    assert mean_pose_errors(train, test)["mpjpe"] == pytest.approx(100.0)


TINY = Recipe(
    model=MidasConfig(feature_dim=16, num_tokens=4, encoder_width=4, latent_channels=8, head_hidden=16),
    stage1=Stage1Settings(epochs=1, batch_size=16),
    stage2=Stage2Settings(epochs=1, batch_size=16, outer_every=2),
)


def test_a_tiny_run_is_scored_end_to_end(tmp_path: Path) -> None:
    data = synthetic_set(frames_per_subject=8, missing=0.1)
    run_recipe_on(data, tmp_path / "run", TINY, seed=0, device="cpu", evaluate=False)
    results = evaluate_run(data, tmp_path / "run", tmp_path / "docs", device="cpu")

    assert set(results.errors) == set(MODEL_NAMES)
    assert all(set(rows) == set(SUBSET_LABELS) for rows in results.errors.values())
    assert set(results.weights) == {"midas", "wo_diff", "wo_meta"}
    assert results.weights["wo_meta"] == pytest.approx(dict.fromkeys(MODALITIES, 1 / 3))
    assert results.num_frames == int(data.select_subjects(results.test_subjects).present.all(axis=1).sum())
    assert results.notes  # frames with a missing modality were left out, and the report says so
    for name in ("results.md", "results.csv", "results.png", "results.json"):
        assert (tmp_path / "docs" / name).is_file()

    # The table's numbers are the models' real predictions: recompute one cell with a full forward pass.
    test = data.select_subjects(results.test_subjects)
    test = test.select(test.present.all(axis=1))
    model = load_checkpoint(tmp_path / "run" / "base1" / "final")
    present = torch.zeros(len(test), 3, dtype=torch.bool)
    present[:, 1] = True
    with torch.no_grad():
        inputs = {
            m: torch.from_numpy(v) for m, v in test.inputs(np.arange(len(test))).items() if m != "present"
        }
        pose = model(inputs, present).pose.numpy()
    expected = np.linalg.norm(pose - test.joints, axis=-1).mean() * 1000
    assert results.errors["base1"]["L"]["mpjpe"] == pytest.approx(expected, rel=1e-4)
    np.testing.assert_allclose(predict_subsets(model, test, torch.device("cpu"))["L"], pose, atol=1e-5)

    # Every checkpoint stores the constant pose of the training rows it was given; evaluation uses it.
    split = load_split(tmp_path / "run")
    train = data.joints[training_rows(data, split)]  # held-out actions (and rigs) left out
    assert len(train) < len(data.joints[data.subject_mask(split.inner_train)])
    computed = ReferencePose.from_training(train)
    for name in ("stage1", *MODEL_NAMES):
        stored = reference_from_checkpoint(tmp_path / "run" / name / "final")
        assert stored is not None and stored.frames == len(train)
        np.testing.assert_allclose(stored.pose, computed.pose, atol=2e-6)
    assert results.reference_info["source"].startswith("stored in")
    assert results.reference["pa_mpjpe"] == pytest.approx(
        frame_errors(computed.constant(len(test)), test.joints)["pa_mpjpe"].mean(), abs=0.01
    )
    assert results.placement["root_mm"] == pytest.approx(0.0, abs=1e-6)
    assert all(
        {"root_mm", "heading_deg"} <= set(cell) for rows in results.errors.values() for cell in rows.values()
    )
    by_name = {sl.name: sl for sl in results.slices}
    assert by_name["all headings"].frames == by_name["seen rigs"].frames == results.num_frames
    assert by_name["unseen rigs"].frames == 0 and by_name["unseen rigs"].errors == {}
    unseen = np.isin(test.action, split.held_out_actions)
    assert 0 < by_name["unseen actions"].frames == unseen.sum() < results.num_frames
    assert by_name["seen actions"].frames == results.num_frames - unseen.sum()
    assert by_name["all headings"].errors == results.errors
    saved = json.loads((tmp_path / "docs" / "results.json").read_text())
    assert len(saved["slices"]) == 6 and len(saved["reference_checks"]) == 8
    md = (tmp_path / "docs" / "results.md").read_text()
    assert "## Slices of the test frames" in md and "## Against the references" in md

    # A run whose checkpoints store no reference (trained before they did): computed now, and said so.
    for name in ("stage1", *MODEL_NAMES):
        path = tmp_path / "run" / name / "final.json"
        info = json.loads(path.read_text())
        del info["metadata"][REFERENCE_KEY]
        path.write_text(json.dumps(info))
    again = evaluate_run(data, tmp_path / "run", tmp_path / "docs2", device="cpu")
    assert any("computed now" in note for note in again.notes)
    assert again.reference["pa_mpjpe"] == pytest.approx(results.reference["pa_mpjpe"], abs=0.01)
