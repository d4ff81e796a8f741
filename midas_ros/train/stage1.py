"""Stage 1: each modality's encoder pre-trained on its own modality (encoder + projection + pose head, MSE).

The three single-modality networks are held in one `DecisionAverageBaseline` ("base2"), which has
exactly that structure per modality (encoder, projection, own pose head). Every batch trains each
modality's network only on the rows where that modality exists, with only that modality present, so no
encoder ever sees another modality's gradient. The result is saved with the model package's checkpoint
functions as `<run>/stage1/final`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from midas_ros import MODALITIES
from midas_ros.evaluate.metrics import mpjpe_mm
from midas_ros.evaluate.references import reference_metadata
from midas_ros.mmfi.preprocessed import PreprocessedSet
from midas_ros.model import FusionModel, MidasConfig, build_model, load_checkpoint
from midas_ros.train import state
from midas_ros.train.data import batch_inputs

logger = logging.getLogger(__name__)
NAME = "stage1"


@dataclass(frozen=True)
class Stage1Settings:
    epochs: int = 4
    batch_size: int = 32
    lr: float = 1e-3


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """Seed of one random stream of one epoch: resuming at an epoch replays exactly what a full run does."""
    return (seed * 1_000_003 + epoch * 101 + stream) % (2**63)


def _single_modality_losses(
    model: FusionModel, inputs: dict[str, torch.Tensor], available: torch.Tensor, joints: torch.Tensor
) -> dict[str, torch.Tensor]:
    """MSE of each modality's own network on the rows that have that modality."""
    losses = {}
    for j, m in enumerate(MODALITIES):
        rows = available[:, j].nonzero(as_tuple=True)[0]
        if len(rows) == 0:
            continue
        present = torch.zeros(len(rows), len(MODALITIES), dtype=torch.bool, device=joints.device)
        present[:, j] = True
        out = model({m: inputs[m][rows]}, present)
        losses[m] = F.mse_loss(out.pose, joints[rows])
    return losses


@torch.no_grad()
def single_modality_mpjpe(
    model: FusionModel, data: PreprocessedSet, rows: np.ndarray, device: torch.device, batch_size: int = 128
) -> dict[str, float]:
    """MPJPE (mm) of each modality's network on the given rows (eval mode)."""
    model.eval()
    preds: dict[str, list[np.ndarray]] = {m: [] for m in MODALITIES}
    truths: dict[str, list[np.ndarray]] = {m: [] for m in MODALITIES}
    for start in range(0, len(rows), batch_size):
        index = rows[start : start + batch_size]
        inputs = batch_inputs(data, index, device)
        available = torch.from_numpy(data.present[index]).to(device)
        for j, m in enumerate(MODALITIES):
            sel = available[:, j].nonzero(as_tuple=True)[0]
            if len(sel) == 0:
                continue
            present = torch.zeros(len(sel), len(MODALITIES), dtype=torch.bool, device=device)
            present[:, j] = True
            preds[m].append(model({m: inputs[m][sel]}, present).pose.cpu().numpy())
            truths[m].append(data.joints[index][sel.cpu().numpy()])
    return {m: mpjpe_mm(np.concatenate(preds[m]), np.concatenate(truths[m])) for m in MODALITIES if preds[m]}


def train_stage1(
    data: PreprocessedSet,
    train_rows: np.ndarray,
    val_rows: np.ndarray,
    config: MidasConfig,
    settings: Stage1Settings,
    run_dir: Path,
    device: torch.device,
    seed: int,
) -> FusionModel:
    """Train (or resume, or load when finished) the stage-1 encoders; returns the model in eval mode."""
    if state.is_done(run_dir, NAME):
        logger.info("stage 1 already trained: %s", state.final_stem(run_dir, NAME))
        return load_checkpoint(state.final_stem(run_dir, NAME), device)

    torch.manual_seed(seed)
    model = build_model("base2", config).to(device)
    model.set_pose_mean(data.joints[train_rows].mean(axis=0))
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    history: list[dict] = []
    start_epoch = 0
    resumed = state.load_epoch(run_dir, NAME, device)
    if resumed is not None:
        model, meta = resumed
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
        state.restore_optimizers({"model": optimizer}, run_dir, NAME)
        start_epoch, history = meta["epoch"] + 1, meta["history"]
        logger.info("stage 1: resuming after epoch %d", meta["epoch"])

    for epoch in range(start_epoch, settings.epochs):
        t0 = time.perf_counter()
        model.train()
        g = torch.Generator().manual_seed(epoch_seed(seed, epoch, 1))
        order = train_rows[torch.randperm(len(train_rows), generator=g).numpy()]
        sums = dict.fromkeys(MODALITIES, 0.0)
        steps = 0
        bar = tqdm(
            range(0, len(order), settings.batch_size), desc=f"stage1 epoch {epoch + 1}/{settings.epochs}"
        )
        for start in bar:
            index = order[start : start + settings.batch_size]
            losses = _single_modality_losses(
                model,
                batch_inputs(data, index, device),
                torch.from_numpy(data.present[index]).to(device),
                torch.from_numpy(data.joints[index]).to(device),
            )
            optimizer.zero_grad(set_to_none=True)
            sum(losses.values()).backward()
            optimizer.step()
            steps += 1
            for m, v in losses.items():
                sums[m] += float(v.detach())
            bar.set_postfix({m[0]: f"{sums[m] / steps:.4f}" for m in MODALITIES})
        record = {
            "epoch": epoch,
            "train_mse": {m: sums[m] / max(steps, 1) for m in MODALITIES},
            "val_mpjpe_mm": single_modality_mpjpe(model, data, val_rows, device),
            "seconds": time.perf_counter() - t0,
        }
        history.append(record)
        logger.info("stage 1 epoch %d: %s", epoch, record)
        state.save_epoch(model, {"model": optimizer}, run_dir, NAME, {"epoch": epoch, "history": history})

    meta = {
        "stage": NAME,
        "settings": asdict(settings),
        "seed": seed,
        "history": history,
        # The no-sensor constant pose of the training rows, for any later evaluation (references.py).
        **reference_metadata(data.joints[train_rows]),
    }
    state.save_final(model, run_dir, NAME, meta)
    return model.eval()
