"""The papers' 7-subset table of the five models: Markdown, CSV, bar chart, Shapley values, target checks.

Beside every table, on the same frames, the two references of references.py (the constant Procrustes-mean
pose, and that shape placed at the true pelvis and heading); per model and subset the root position and
heading errors; and the slices of slices.py (facing the camera, seen / unseen actions and rigs).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: no display on build machines
import matplotlib.pyplot as plt
import numpy as np

from midas_ros import MODALITIES
from midas_ros.evaluate.shapley import shapley_values
from midas_ros.evaluate.slices import SLICE_GROUPS
from midas_ros.train.subsets import SHORT_NAMES, SUBSET_LABELS, SUBSETS

# Column order of the table; the keys are the run names the recipe writes.
MODEL_NAMES: dict[str, str] = {
    "midas": "MIDAS",
    "base1": "Base.1 (concat+MLP)",
    "base2": "Base.2 (decision avg)",
    "wo_diff": "w/o Diff",
    "wo_meta": "w/o Meta",
}
METRICS = ("mpjpe", "pa_mpjpe")
PLACEMENT_METRICS = ("root_mm", "heading_deg")  # optional per cell: root position error, heading error
REFERENCE_NAMES: dict[str, str] = {
    "constant_pose": "constant pose (no sensor)",
    "placement_only": "placement only (true root + heading)",
}
# Targets from the issue: the largest allowed loss of a fused subset against its best single member,
# and the smallest required gain of diffusion KD over "w/o Diff" on each single modality.
FUSION_TOLERANCE = 0.03
DIFFUSION_GAIN = 0.10
# Issue 11's targets against the references (reported, not enforced): (subset, metric, reference, ratio).
REFERENCE_TARGETS: tuple[tuple[str, str, str, float], ...] = (
    ("D+L+W", "pa_mpjpe", "constant_pose", 0.5),
    ("D+L+W", "mpjpe", "placement_only", 0.6),
    ("D", "pa_mpjpe", "constant_pose", 0.6),
    ("L", "pa_mpjpe", "constant_pose", 0.6),
    ("D", "mpjpe", "placement_only", 0.75),
    ("L", "mpjpe", "placement_only", 0.75),
    ("W", "pa_mpjpe", "constant_pose", 0.85),
)
UNSEEN_ACTION_RATIO = 1.5  # D+L+W MPJPE on unseen actions at most this times that on seen actions
METRIC_NAMES = {
    "mpjpe": "MPJPE",
    "pa_mpjpe": "PA-MPJPE",
    "root_mm": "root error",
    "heading_deg": "heading error",
}


@dataclass
class SliceResult:
    """The errors on one slice of the test frames (slices.py); everything {} when it has no frames."""

    group: str  # a slices.SLICE_GROUPS key
    name: str
    frames: int
    errors: dict[str, dict[str, dict[str, float]]]  # model -> subset -> metrics, as EvaluationResults
    reference: dict[str, float]  # the constant pose
    placement: dict[str, float]  # placement only
    detail: str = ""


@dataclass
class EvaluationResults:
    """Everything the report shows; errors in mm, keyed by model run name and subset label ('D+L')."""

    # model -> subset -> {"mpjpe", "pa_mpjpe"} and optionally {"root_mm", "heading_deg"}
    errors: dict[str, dict[str, dict[str, float]]]
    reference: dict[str, float]  # the constant pose (no sensor; references.py), same keys as a cell
    weights: dict[str, dict[str, float]] = field(default_factory=dict)  # model -> modality -> weight
    num_frames: int = 0
    test_subjects: tuple[int, ...] = ()
    notes: list[str] = field(default_factory=list)
    placement: dict[str, float] = field(default_factory=dict)  # placement only (references.py)
    slices: list[SliceResult] = field(default_factory=list)
    reference_info: dict[str, Any] = field(default_factory=dict)  # source, frames, mean root / heading
    mean_pose: dict[str, float] = field(default_factory=dict)  # the base-frame average pose (old reference)

    def shapley(self, model: str, metric: str = "mpjpe") -> dict[str, float]:
        """Each modality's Shapley contribution (mm of error removed) for one model."""
        errs = {
            frozenset(s): self.errors[model][label][metric]
            for s, label in zip(SUBSETS, SUBSET_LABELS, strict=True)
        }
        return shapley_values(errs, self.reference[metric])


def validate(results: EvaluationResults) -> None:
    """Raise ValueError unless every model has all 7 subsets with both metrics."""
    for model, rows in results.errors.items():
        missing = [label for label in SUBSET_LABELS if label not in rows]
        if missing:
            raise ValueError(f"{model}: no results for subsets {missing}")
        for label in SUBSET_LABELS:
            if set(METRICS) - set(rows[label]):
                raise ValueError(f"{model} {label}: needs {METRICS}")


CSV_FIELDS = (
    "slice",
    "frames",
    "model",
    "subset",
    "mpjpe_mm",
    "pa_mpjpe_mm",
    "root_error_mm",
    "heading_error_deg",
)
_CSV_METRICS = {
    "mpjpe_mm": "mpjpe",
    "pa_mpjpe_mm": "pa_mpjpe",
    "root_error_mm": "root_mm",
    "heading_error_deg": "heading_deg",
}
ALL_FRAMES = "all"  # the slice name of the whole test set in results.csv


def table_rows(results: EvaluationResults) -> list[dict[str, str | float | int]]:
    """Long-format rows of results.csv: on all test frames, 7 per model in table order, then the two
    references (subset "none"); then the same for every slice with frames."""
    validate(results)
    rows = _slice_rows(
        ALL_FRAMES, results.num_frames, results.errors, results.reference, results.placement, results
    )
    for sl in results.slices:
        if sl.frames:
            rows += _slice_rows(sl.name, sl.frames, sl.errors, sl.reference, sl.placement, results)
    return rows


def _slice_rows(
    name: str,
    frames: int,
    errors: dict[str, dict[str, dict[str, float]]],
    reference: dict[str, float],
    placement: dict[str, float],
    results: EvaluationResults,
) -> list[dict[str, str | float | int]]:
    def row(model: str, subset: str, cell: dict[str, float]) -> dict[str, str | float | int]:
        values = {key: cell.get(metric, "") for key, metric in _CSV_METRICS.items()}
        return {"slice": name, "frames": frames, "model": model, "subset": subset, **values}

    rows = [row(m, label, errors[m][label]) for m in _ordered_models(results) for label in SUBSET_LABELS]
    for key, cell in (("constant_pose", reference), ("placement_only", placement)):
        if cell:
            rows.append(row(key, "none", cell))
    return rows


def _ordered_models(results: EvaluationResults) -> list[str]:
    known = [m for m in MODEL_NAMES if m in results.errors]
    return known + sorted(m for m in results.errors if m not in MODEL_NAMES)


def write_csv(results: EvaluationResults, path: Path) -> None:
    """results.csv: one row per (slice, model or reference, subset); see table_rows."""
    rows = table_rows(results)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(CSV_FIELDS))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.2f}" if isinstance(v, float) else v for k, v in row.items()})


def plot_bars(results: EvaluationResults, path: Path) -> None:
    """Grouped bar chart: MPJPE (top) and PA-MPJPE (bottom) per subset, one bar per model."""
    models = _ordered_models(results)
    x = np.arange(len(SUBSET_LABELS))
    width = 0.8 / len(models)
    fig, axes = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for ax, metric, title in zip(axes, METRICS, ("MPJPE (mm)", "PA-MPJPE (mm)"), strict=True):
        for i, model in enumerate(models):
            values = [results.errors[model][label][metric] for label in SUBSET_LABELS]
            ax.bar(
                x + (i - (len(models) - 1) / 2) * width, values, width, label=MODEL_NAMES.get(model, model)
            )
        ax.axhline(
            results.reference[metric], color="grey", linestyle="--", linewidth=1, label="constant pose"
        )
        if metric in results.placement and metric == "mpjpe":  # placement's PA-MPJPE = the constant's
            ax.axhline(
                results.placement[metric], color="black", linestyle=":", linewidth=1, label="placement only"
            )
        ax.set_ylabel(title)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(ncol=4, fontsize=8)
    axes[1].set_xticks(x, SUBSET_LABELS)
    axes[1].set_xlabel("available modalities (D depth, L LiDAR, W WiFi CSI)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def target_checks(results: EvaluationResults, model: str = "midas") -> list[tuple[str, bool, str]]:
    """The issue's targets, each as (target, met, measured numbers)."""
    validate(results)
    checks: list[tuple[str, bool, str]] = []
    err = {m: {label: results.errors[m][label]["mpjpe"] for label in SUBSET_LABELS} for m in results.errors}
    if model not in err:
        return [(f"{model} was evaluated", False, "no results")]

    best_rows = [label for label in SUBSET_LABELS if err[model][label] <= min(e[label] for e in err.values())]
    checks.append(
        (
            f"{MODEL_NAMES.get(model, model)} has the lowest MPJPE of the {len(err)} models in every row",
            len(best_rows) == len(SUBSET_LABELS),
            f"best in {len(best_rows)} of 7 rows ({', '.join(best_rows) or 'none'})",
        )
    )

    worse = []
    for subset, label in zip(SUBSETS, SUBSET_LABELS, strict=True):
        if len(subset) < 2:
            continue
        best_member = min(err[model][SHORT_NAMES[m]] for m in subset)
        ratio = err[model][label] / best_member - 1
        if ratio > FUSION_TOLERANCE:
            worse.append(f"{label} {err[model][label]:.1f} vs {best_member:.1f} (+{100 * ratio:.1f}%)")
    checks.append(
        (
            f"no fused subset is worse than its best single member by > {100 * FUSION_TOLERANCE:.0f}%",
            not worse,
            "; ".join(worse) if worse else "all fused subsets within tolerance",
        )
    )

    if "wo_diff" in err:
        gains = {
            label: 1 - err[model][label] / err["wo_diff"][label]
            for label in SUBSET_LABELS
            if "+" not in label
        }
        checks.append(
            (
                f"diffusion KD >= {100 * DIFFUSION_GAIN:.0f}% below w/o Diff (MPJPE) on each single modality",
                all(g >= DIFFUSION_GAIN for g in gains.values()),
                ", ".join(f"{k} {100 * g:+.1f}%" for k, g in gains.items()),
            )
        )

    if model in results.weights:
        w = results.weights[model]
        checks.append(
            (
                "WiFi CSI gets the lowest learned weight",
                min(w, key=w.get) == "csi",
                ", ".join(f"{m} {w[m]:.3f}" for m in MODALITIES if m in w),
            )
        )
    return checks


def _main_model(results: EvaluationResults, model: str = "midas") -> str:
    """The model the slices and reference checks show: MIDAS, else the first evaluated one."""
    return model if model in results.errors else _ordered_models(results)[0]


def reference_checks(results: EvaluationResults, model: str = "midas") -> list[tuple[str, bool | None, str]]:
    """Issue 11's targets against the references, each as (target, met, measured); met is None where it
    cannot be measured (no reference, or no unseen-action frames). Reported, not enforced."""
    model = _main_model(results, model)
    refs = {"constant_pose": results.reference, "placement_only": results.placement}
    name = MODEL_NAMES.get(model, model)
    checks: list[tuple[str, bool | None, str]] = []
    for subset, metric, ref, limit in REFERENCE_TARGETS:
        target = (
            f"{name} {subset} {METRIC_NAMES[metric]} <= {limit:.2f}x {REFERENCE_NAMES[ref].split(' (')[0]}"
        )
        ref_value = refs[ref].get(metric)
        value = results.errors[model][subset][metric]
        if not ref_value:
            checks.append((target, None, "no reference"))
            continue
        ratio = value / ref_value
        checks.append((target, ratio <= limit, f"{ratio:.2f}x ({value:.1f} / {ref_value:.1f} mm)"))

    target = f"{name} D+L+W MPJPE on unseen actions <= {UNSEEN_ACTION_RATIO:.1f}x seen actions"
    by_name = {sl.name: sl for sl in results.slices if sl.group == "actions"}
    seen, unseen = by_name.get("seen actions"), by_name.get("unseen actions")
    if seen is None or unseen is None or not seen.frames or not unseen.frames:
        checks.append((target, None, "no unseen-action frames" if seen is not None else "not sliced"))
    else:
        a, b = unseen.errors[model]["D+L+W"]["mpjpe"], seen.errors[model]["D+L+W"]["mpjpe"]
        checks.append((target, a <= UNSEEN_ACTION_RATIO * b, f"{a / b:.2f}x ({a:.1f} / {b:.1f} mm)"))
    return checks


def _pair(cell: dict[str, float], first: str, second: str) -> str:
    if first not in cell or second not in cell:
        return "-"
    return f"{cell[first]:.1f} / {cell[second]:.1f}"


def _reference_rows(results: EvaluationResults, first: str, second: str, columns: int) -> list[str]:
    """The two references as rows under a model table, their value repeated in every model column."""
    lines = []
    for cell, key in ((results.reference, "constant_pose"), (results.placement, "placement_only")):
        if cell and first in cell and second in cell:
            value = f"*{_pair(cell, first, second)}*"
            lines.append(f"| *{REFERENCE_NAMES[key]}* | " + " | ".join([value] * columns) + " |")
    return lines


def _has_placement_metrics(results: EvaluationResults) -> bool:
    return all(
        set(PLACEMENT_METRICS) <= set(cell) for rows in results.errors.values() for cell in rows.values()
    )


def _reference_lines(results: EvaluationResults) -> list[str]:
    info = results.reference_info
    lines = []
    if info:
        lines.append(
            f"References (no model, same frames): *constant pose* = the generalised Procrustes mean of "
            f"{info.get('frames', '?')} training poses ({info.get('source', 'n/a')}), standing at the mean "
            f"training pelvis {_vec(info.get('mean_root_m'))} m and facing the mean training heading "
            f"({info.get('mean_heading_deg', 0.0):.0f} deg; 0 = away from the depth camera); its PA-MPJPE "
            "is the floor of knowing nothing. *Placement only* = the same shape with its pelvis on the true "
            "pelvis, turned to the true heading: what knowing only where the person is buys (its PA-MPJPE "
            "is the constant's)."
        )
    if results.mean_pose:
        lines.append(
            f"Previous reference, the average of the training poses in the base frame: MPJPE "
            f"{results.mean_pose['mpjpe']:.1f}, PA-MPJPE {results.mean_pose['pa_mpjpe']:.1f} (averaging "
            "over headings collapses the skeleton, so this is no floor)."
        )
    return lines


def _vec(values: Any) -> str:
    return "(" + ", ".join(f"{v:.2f}" for v in values) + ")" if values is not None else "n/a"


def _slice_sections(results: EvaluationResults, model: str) -> list[str]:
    name = MODEL_NAMES.get(model, model)
    shown = ("D+L+W", "D", "L", "W")
    lines = [
        f"## Slices of the test frames ({name}; cells MPJPE / PA-MPJPE in mm)",
        "",
        "Facing: the facing direction (normal of the hip and shoulder lines) within 45 deg of the floor "
        "direction from the pelvis to the depth camera. Unseen actions and rigs: held out of training by the "
        "split (the test subjects keep every action and rig).",
    ]
    header = (
        "| slice | frames | "
        + " | ".join(shown)
        + " | D+L+W root (mm) / heading (deg) | constant pose | placement only |"
    )
    for group, title in SLICE_GROUPS.items():
        slices = [sl for sl in results.slices if sl.group == group]
        if not slices:
            continue
        lines += ["", f"### {title}", ""]
        details = sorted({sl.detail for sl in slices if sl.detail})
        if details:
            text = "; ".join(details)
            lines += [text[0].upper() + text[1:] + ".", ""]
        lines += [header, "|---|---|" + "---|" * (len(shown) + 3)]
        for sl in slices:
            if not sl.frames:
                lines.append(f"| {sl.name} | 0 | " + " | ".join(["-"] * (len(shown) + 3)) + " |")
                continue
            cells = [_pair(sl.errors[model][label], "mpjpe", "pa_mpjpe") for label in shown]
            cells.append(_pair(sl.errors[model]["D+L+W"], "root_mm", "heading_deg"))
            cells += [_pair(sl.reference, "mpjpe", "pa_mpjpe"), _pair(sl.placement, "mpjpe", "pa_mpjpe")]
            lines.append(f"| {sl.name} | {sl.frames} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def markdown(results: EvaluationResults) -> str:
    """The Markdown report: tables with the references, slices, weights, Shapley values, target checks."""
    models = _ordered_models(results)
    main = _main_model(results)
    header = [
        "| subset | " + " | ".join(MODEL_NAMES.get(m, m) for m in models) + " |",
        "|---|" + "---|" * len(models),
    ]
    lines = [
        "## MPJPE / PA-MPJPE (mm) on held-out subjects",
        "",
        f"Test subjects: {', '.join(f'S{s:02d}' for s in results.test_subjects) or 'n/a'}; "
        f"{results.num_frames} frames; all models and references: same frames, only the row's modalities "
        "present.",
        "",
        *header,
    ]
    for label in SUBSET_LABELS:
        best = min(results.errors[m][label]["mpjpe"] for m in models)
        cells = []
        for m in models:
            e = results.errors[m][label]
            cell = f"{e['mpjpe']:.1f} / {e['pa_mpjpe']:.1f}"
            cells.append(f"**{cell}**" if e["mpjpe"] == best else cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += _reference_rows(results, "mpjpe", "pa_mpjpe", len(models))
    lines += ["", "Bold: lowest MPJPE of the models in the row; italics: the references.", ""]
    lines += [*(f"{line}\n" for line in _reference_lines(results))]

    if _has_placement_metrics(results):
        lines += [
            "## Root position error (mm) / heading error (deg) on held-out subjects",
            "",
            "Root: distance of the pelvis (joint 0). Heading: absolute difference of the facing directions "
            "(horizontal normal of the hip and shoulder lines), 0 to 180 deg.",
            "",
            *header,
        ]
        for label in SUBSET_LABELS:
            lines.append(
                f"| {label} | "
                + " | ".join(_pair(results.errors[m][label], "root_mm", "heading_deg") for m in models)
                + " |"
            )
        lines += _reference_rows(results, "root_mm", "heading_deg", len(models))
        lines.append("")

    if results.slices:
        lines += _slice_sections(results, main)

    if results.weights:
        lines += ["## Learned modality weights (softmax over all three)", ""]
        lines += ["| model | " + " | ".join(MODALITIES) + " |", "|---|" + "---|" * len(MODALITIES)]
        for m in models:
            if m in results.weights:
                w = results.weights[m]
                lines.append(
                    f"| {MODEL_NAMES.get(m, m)} | " + " | ".join(f"{w[k]:.3f}" for k in MODALITIES) + " |"
                )
        lines.append("")

    lines += [
        "## Shapley contribution of each modality (mm of MPJPE removed)",
        "",
        "v(S) = err(constant pose) - err(S), so v(empty) = 0 and the three values sum to v(D+L+W).",
        "",
        "| model | " + " | ".join(MODALITIES) + " | sum = v(D+L+W) |",
        "|---|" + "---|" * (len(MODALITIES) + 1),
    ]
    for m in models:
        phi = results.shapley(m)
        lines.append(
            f"| {MODEL_NAMES.get(m, m)} | "
            + " | ".join(f"{phi[k]:.1f}" for k in MODALITIES)
            + f" | {sum(phi.values()):.1f} |"
        )
    lines += ["", "## Targets", "", "| target | met | measured |", "|---|---|---|"]
    for target, met, measured in target_checks(results):
        lines.append(f"| {target} | {'yes' if met else 'NO'} | {measured} |")
    if results.placement:
        lines += [
            "",
            "## Against the references (issue 11's targets: reported, not enforced)",
            "",
            "| target | met | measured |",
            "|---|---|---|",
        ]
        for target, met, measured in reference_checks(results, main):
            lines.append(f"| {target} | {'n/a' if met is None else 'yes' if met else 'NO'} | {measured} |")
    if results.notes:
        lines += ["", *[f"- {note}" for note in results.notes]]
    return "\n".join(lines) + "\n"


def write_report(results: EvaluationResults, out_dir: Path, stem: str = "results") -> dict[str, Path]:
    """Write `<stem>.md`, `<stem>.csv` and `<stem>.png` into out_dir; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"md": out_dir / f"{stem}.md", "csv": out_dir / f"{stem}.csv", "png": out_dir / f"{stem}.png"}
    write_csv(results, paths["csv"])
    plot_bars(results, paths["png"])
    paths["md"].write_text(
        f"# Results\n\n![MPJPE per subset]({paths['png'].name})\n\n"
        f"CSV: [{paths['csv'].name}]({paths['csv'].name})\n\n" + markdown(results)
    )
    return paths
