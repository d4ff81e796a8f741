"""The papers' 7-subset table of the five models: Markdown, CSV, bar chart, Shapley values, target checks."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display on build machines
import matplotlib.pyplot as plt
import numpy as np

from midas_ros import MODALITIES
from midas_ros.evaluate.shapley import shapley_values
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
# Targets from the issue: the largest allowed loss of a fused subset against its best single member,
# and the smallest required gain of diffusion KD over "w/o Diff" on each single modality.
FUSION_TOLERANCE = 0.03
DIFFUSION_GAIN = 0.10


@dataclass
class EvaluationResults:
    """Everything the report shows; errors in mm, keyed by model run name and subset label ('D+L')."""

    errors: dict[str, dict[str, dict[str, float]]]  # model -> subset -> {"mpjpe", "pa_mpjpe"}
    reference: dict[str, float]  # the mean-pose (no sensor) errors: {"mpjpe", "pa_mpjpe"}
    weights: dict[str, dict[str, float]] = field(default_factory=dict)  # model -> modality -> weight
    num_frames: int = 0
    test_subjects: tuple[int, ...] = ()
    notes: list[str] = field(default_factory=list)

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


def table_rows(results: EvaluationResults) -> list[dict[str, str | float]]:
    """Long-format rows (model, subset, mpjpe_mm, pa_mpjpe_mm): 7 per model, in table order."""
    validate(results)
    rows: list[dict[str, str | float]] = []
    for model in _ordered_models(results):
        for label in SUBSET_LABELS:
            e = results.errors[model][label]
            rows.append(
                {"model": model, "subset": label, "mpjpe_mm": e["mpjpe"], "pa_mpjpe_mm": e["pa_mpjpe"]}
            )
    return rows


def _ordered_models(results: EvaluationResults) -> list[str]:
    known = [m for m in MODEL_NAMES if m in results.errors]
    return known + sorted(m for m in results.errors if m not in MODEL_NAMES)


def write_csv(results: EvaluationResults, path: Path) -> None:
    """results.csv: one row per (model, subset)."""
    rows = table_rows(results)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
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
        ax.axhline(results.reference[metric], color="grey", linestyle="--", linewidth=1, label="mean pose")
        ax.set_ylabel(title)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(ncol=3, fontsize=8)
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


def markdown(results: EvaluationResults) -> str:
    """The Markdown report: table, weights, Shapley values, target checks."""
    models = _ordered_models(results)
    lines = [
        "## MPJPE / PA-MPJPE (mm) on held-out subjects",
        "",
        f"Test subjects: {', '.join(f'S{s:02d}' for s in results.test_subjects) or 'n/a'}; "
        f"{results.num_frames} frames; all models: same frames, only the row's modalities present.",
        f"Reference (no sensor: the training set's mean pose): MPJPE {results.reference['mpjpe']:.1f}, "
        f"PA-MPJPE {results.reference['pa_mpjpe']:.1f}.",
        "",
        "| subset | " + " | ".join(MODEL_NAMES.get(m, m) for m in models) + " |",
        "|---|" + "---|" * len(models),
    ]
    for label in SUBSET_LABELS:
        best = min(results.errors[m][label]["mpjpe"] for m in models)
        cells = []
        for m in models:
            e = results.errors[m][label]
            cell = f"{e['mpjpe']:.1f} / {e['pa_mpjpe']:.1f}"
            cells.append(f"**{cell}**" if e["mpjpe"] == best else cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Bold: lowest MPJPE in the row.", ""]

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
        "v(S) = err(mean pose) - err(S), so v(empty) = 0 and the three values sum to v(D+L+W).",
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
