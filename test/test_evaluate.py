"""Evaluation: Shapley values, the 7-row x 5-model report, target checks, and a run scored end to end."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from midas_ros import MODALITIES
from midas_ros.evaluate.cli import evaluate_run
from midas_ros.evaluate.predict import mean_pose_errors, predict_subsets
from midas_ros.evaluate.report import MODEL_NAMES, EvaluationResults, target_checks, write_report
from midas_ros.evaluate.shapley import shapley_values
from midas_ros.model import MidasConfig, load_checkpoint
from midas_ros.train.recipe import Recipe, run_recipe_on
from midas_ros.train.stage1 import Stage1Settings
from midas_ros.train.stage2 import Stage2Settings
from midas_ros.train.subsets import SUBSET_LABELS, SUBSETS
from midas_ros.train.synthetic import synthetic_set

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


def _fake_results() -> EvaluationResults:
    rng = np.random.default_rng(1)
    errors = {
        model: {
            label: {"mpjpe": float(rng.uniform(60, 200)), "pa_mpjpe": float(rng.uniform(30, 100))}
            for label in SUBSET_LABELS
        }
        for model in MODEL_NAMES
    }
    return EvaluationResults(
        errors=errors,
        reference={"mpjpe": 250.0, "pa_mpjpe": 120.0},
        weights={"midas": {"depth": 0.4, "lidar": 0.45, "csi": 0.15}},
        num_frames=10,
        test_subjects=(3, 13),
    )


def test_report_has_seven_rows_for_each_of_five_models(tmp_path: Path) -> None:
    results = _fake_results()
    paths = write_report(results, tmp_path)
    with open(paths["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 35
    assert [r["subset"] for r in rows[:7]] == list(SUBSET_LABELS)
    assert {r["model"] for r in rows} == set(MODEL_NAMES)
    assert float(rows[0]["mpjpe_mm"]) == pytest.approx(results.errors["midas"]["D"]["mpjpe"], abs=0.01)
    md = paths["md"].read_text()
    table = [
        line for line in md.splitlines() if line.startswith(tuple(f"| {label} |" for label in SUBSET_LABELS))
    ]
    assert len(table) == 7 and all(line.count("|") == 7 for line in table)
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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
