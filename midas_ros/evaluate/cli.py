"""Evaluate a recipe run: the 7-subset table of the five models on the held-out subjects.

    python -m midas_ros.evaluate.cli --data data/mmfi_wide --runs runs/wide --out docs/

Writes <out>/results.md, results.csv, results.png and results.json. Beside the models, on the same frames:
the constant Procrustes-mean pose (read from the run's checkpoints, which store it; computed from the
training rows for older runs) and that shape placed at the true pelvis and heading (references.py); per
model and subset also the root position and heading errors; and the slices of slices.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from midas_ros.evaluate.metrics import frame_errors, mean_errors
from midas_ros.evaluate.predict import (
    encode_all,
    encoder_fingerprint,
    mean_pose_errors,
    predict_subsets,
    subset_frame_errors,
)
from midas_ros.evaluate.references import ReferencePose, reference_from_checkpoint
from midas_ros.evaluate.report import (
    MODEL_NAMES,
    EvaluationResults,
    SliceResult,
    reference_checks,
    write_report,
)
from midas_ros.evaluate.slices import split_slices
from midas_ros.mmfi.preprocessed import PreprocessedSet
from midas_ros.model import load_checkpoint, read_checkpoint_info, resolve_device
from midas_ros.train import state
from midas_ros.train.curves import plot_training_curves
from midas_ros.train.data import TokenCache
from midas_ros.train.splits import SubjectSplit, load_split

logger = logging.getLogger(__name__)


def training_rows(data: PreprocessedSet, split: SubjectSplit) -> np.ndarray:
    """Rows the run trained on: inner-train subjects without the held-out rigs and actions."""
    return split.rows(data, "inner_train")


def stored_reference(run_dir: Path) -> ReferencePose | None:
    """The constant pose stored in the run's checkpoints (MIDAS first, then the others, then stage 1)."""
    for name in (*MODEL_NAMES, "stage1"):
        if state.is_done(run_dir, name):
            reference = reference_from_checkpoint(state.final_stem(run_dir, name))
            if reference is not None:
                return reference
    return None


def evaluate_run(
    data: PreprocessedSet, run_dir: Path, out_dir: Path, device: torch.device | str = "auto"
) -> EvaluationResults:
    """Score every finished model of a run on its test subjects and write the report into out_dir."""
    dev = resolve_device(device)
    split = load_split(run_dir)
    test = data.select_subjects(split.test)
    complete = test.present.all(axis=1)
    notes = []
    if not complete.all():
        notes.append(
            f"{int((~complete).sum())} of {len(test)} test frames lack a modality file and are left out, "
            "so that every row is scored on the same frames."
        )
        test = test.select(complete)
    if len(test) == 0:
        raise ValueError(f"no test frames with all modalities for subjects {split.test}")
    train_joints = data.joints[training_rows(data, split)]
    reference = stored_reference(run_dir)
    if reference is None:
        reference = ReferencePose.from_training(train_joints)
        notes.append(
            f"The constant pose was computed now from the {len(train_joints)} training frames: the run's "
            "checkpoints store none (trained before they did)."
        )

    frame_errs: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    weights: dict[str, dict[str, float]] = {}
    token_sets: dict[str, TokenCache] = {}
    for name in MODEL_NAMES:
        if not state.is_done(run_dir, name):
            logger.warning("%s has no finished model in %s: left out", name, run_dir)
            continue
        stem = state.final_stem(run_dir, name)
        model = load_checkpoint(stem, dev)
        # The five models share the frozen stage-1 encoders: encode the test frames once per distinct
        # set of encoder weights (checked by hash, so a model with other encoders is encoded anew).
        fingerprint = encoder_fingerprint(model)
        if fingerprint not in token_sets:
            token_sets[fingerprint] = encode_all(model, test, dev)
        frame_errs[name] = subset_frame_errors(
            predict_subsets(model, test, dev, tokens=token_sets[fingerprint]), test.joints
        )
        if model.kind == "midas":
            weights[name] = read_checkpoint_info(stem)["metadata"].get("weights", {})
        logger.info("%s: %s", name, {k: mean_errors(v) for k, v in frame_errs[name].items()})
    if not frame_errs:
        raise ValueError(f"no finished models in {run_dir}")

    constant = frame_errors(reference.constant(len(test)), test.joints)
    placement = frame_errors(reference.placed(test.joints), test.joints)

    def errors_on(mask: np.ndarray | None) -> dict[str, dict[str, dict[str, float]]]:
        return {
            name: {label: mean_errors(errs, mask) for label, errs in rows.items()}
            for name, rows in frame_errs.items()
        }

    slices = []
    for sl in split_slices(test, split):
        empty = not sl.mask.any()
        slices.append(
            SliceResult(
                group=sl.group,
                name=sl.name,
                frames=int(sl.mask.sum()),
                errors={} if empty else errors_on(sl.mask),
                reference=mean_errors(constant, sl.mask),
                placement=mean_errors(placement, sl.mask),
                detail=sl.detail,
            )
        )

    notes.extend(_provenance(run_dir, dev))
    if plot_training_curves(run_dir, out_dir / "training_curves.png") is not None:
        notes.append("Training curves (stage 1 and stage 2, per epoch): ![curves](training_curves.png)")
    results = EvaluationResults(
        errors=errors_on(None),
        reference=mean_errors(constant),
        weights=weights,
        num_frames=len(test),
        test_subjects=split.test,
        notes=notes,
        placement=mean_errors(placement),
        slices=slices,
        reference_info={**reference.to_metadata(), "source": reference.source},
        mean_pose=mean_pose_errors(train_joints, test.joints),
    )
    write_report(results, out_dir)
    (out_dir / "results.json").write_text(
        json.dumps(
            {
                **asdict(results),
                "shapley_mpjpe": {m: results.shapley(m) for m in results.errors},
                "shapley_pa_mpjpe": {m: results.shapley(m, "pa_mpjpe") for m in results.errors},
                "reference_checks": [
                    {"target": t, "met": met, "measured": measured}
                    for t, met, measured in reference_checks(results)
                ],
                "run": str(run_dir),
                "split": split.to_dict(),
            },
            indent=2,
        )
    )
    return results


def _provenance(run_dir: Path, device: torch.device) -> list[str]:
    """Where the numbers come from: run, recipe, machine, training time."""
    lines = [
        f"Run: `{run_dir}`; evaluated on {device} ({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__})."
    ]
    recipe_path = run_dir / "recipe.json"
    if recipe_path.is_file():
        info = json.loads(recipe_path.read_text())
        recipe = info["recipe"]
        model = recipe["model"]
        lines.append(
            f"Recipe: seed {info.get('seed')}, data `{info.get('data')}`, d = {model['feature_dim']}, "
            f"{model['num_tokens']} tokens, stage 1 {recipe['stage1']['epochs']} epochs, "
            f"stage 2 {recipe['stage2']['epochs']} epochs (batch {recipe['stage2']['batch_size']})."
        )
    timings_path = run_dir / "timings.json"
    if timings_path.is_file():
        merged: dict[str, float] = {}
        for entry in json.loads(timings_path.read_text()):
            merged.update(entry["seconds"])
        lines.append("Training wall time (s): " + ", ".join(f"{k} {v:.0f}" for k, v in merged.items()) + ".")
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/mmfi_wide"), help="MM-Fi style data folder")
    parser.add_argument("--runs", type=Path, default=Path("runs/wide"), help="recipe run folder")
    parser.add_argument("--out", type=Path, default=Path("docs"), help="where results.* are written")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads for torch (see the recipe's --help)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)

    from midas_ros.train.data import load_preprocessed

    data = load_preprocessed(args.data, args.runs / "preprocessed.npz")
    evaluate_run(data, args.runs, args.out, args.device)
    print((args.out / "results.md").read_text())


if __name__ == "__main__":
    main()
