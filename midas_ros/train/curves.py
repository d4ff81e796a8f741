"""Training curves of a recipe run: per-epoch training and validation MPJPE of every stage, one plot.

Stage 1: each modality's network, training MPJPE (on augmented batches) and validation MPJPE (clean
outer-validation frames). Stage 2: each model's training task loss and validation MPJPE (random modality
subsets). Read from the checkpoints' stored histories, so any finished run can be plotted again.
"""

from __future__ import annotations

from pathlib import Path

from midas_ros.model import read_checkpoint_info
from midas_ros.train import state


def run_histories(run_dir: Path) -> dict[str, list[dict]]:
    """{stage or model name: per-epoch records} of every finished part of a run."""
    names = ["stage1", "midas", "wo_diff", "wo_meta", "base1", "base2"]
    return {
        name: read_checkpoint_info(state.final_stem(run_dir, name))["metadata"]["history"]
        for name in names
        if state.is_done(run_dir, name)
    }


def plot_training_curves(run_dir: Path, out_png: Path) -> Path | None:
    """Write the curves of a run to out_png; None when the run has no finished stage 1."""
    import matplotlib

    matplotlib.use("Agg")  # headless
    import matplotlib.pyplot as plt

    histories = run_histories(run_dir)
    if "stage1" not in histories:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    stage1 = histories.pop("stage1")
    epochs = [r["epoch"] + 1 for r in stage1]
    for modality, colour in zip(("depth", "lidar", "csi"), ("C0", "C1", "C2"), strict=True):
        train = [r.get("train_mpjpe_mm", {}).get(modality) for r in stage1]
        if None not in train:
            left.plot(epochs, train, "--", color=colour, label=f"{modality} train (augmented)")
        left.plot(
            epochs, [r["val_mpjpe_mm"][modality] for r in stage1], "-o", color=colour, label=f"{modality} val"
        )
    left.set(title="Stage 1: single-modality networks", xlabel="epoch", ylabel="MPJPE (mm)")
    left.legend(fontsize=8)
    task = right.twinx()
    for i, (name, history) in enumerate(histories.items()):
        epochs = [r["epoch"] + 1 for r in history]
        right.plot(epochs, [r["val_mpjpe_mm"] for r in history], "-o", color=f"C{i}", label=f"{name} val")
        task.plot(epochs, [r["train_task"] for r in history], "--", color=f"C{i}", alpha=0.6)
    task.set_ylabel("training task loss (dashed)")
    right.set(title="Stage 2: random modality subsets", xlabel="epoch", ylabel="validation MPJPE (mm)")
    right.legend(fontsize=8)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png
