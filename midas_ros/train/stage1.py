"""Stage 1: each modality's encoder pre-trained on its own modality (encoder + projection + pose head).

The three single-modality networks are held in one `DecisionAverageBaseline` ("base2"), which has
exactly that structure per modality (encoder, projection, own pose head). Every batch trains each
modality's network only on the rows where that modality exists, with only that modality present, so no
encoder ever sees another modality's gradient. Loss: the mean joint distance (MPJPE, metres); AdamW with
weight decay, a linear warm-up then a cosine learning-rate decay per step; depth and LiDAR batches are
augmented (train/augment.py). The result is saved with the model package's checkpoint functions as
`<run>/stage1/final`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from midas_ros import MODALITIES
from midas_ros.evaluate.metrics import mpjpe_mm
from midas_ros.evaluate.references import reference_metadata
from midas_ros.mmfi.preprocessed import PreprocessedSet
from midas_ros.model import FusionModel, MidasConfig, build_model, load_checkpoint
from midas_ros.train import state
from midas_ros.train.augment import Augmentation, augment_points
from midas_ros.train.data import batch_inputs, person_frame_statistics

logger = logging.getLogger(__name__)
NAME = "stage1"


@dataclass(frozen=True)
class Stage1Settings:
    epochs: int = 8
    batch_size: int = 32
    lr: float = 2e-3
    # The LiDAR PointNet++ learns nothing at 2e-3 (train MPJPE flat at ~220 mm over 150 steps) and
    # best at 5e-4 of the rates tried (0.5, 1, 2e-3): its learning rate is lr x this factor.
    lidar_lr_factor: float = 0.25
    weight_decay: float = 0.05
    warmup_steps: int = 200
    augment: bool = True


def pose_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean joint distance (MPJPE) in metres: the metric itself, less swayed by outliers than MSE."""
    return (pred - target).norm(dim=-1).mean()


def cosine_lr(step: int, total_steps: int, warmup_steps: int) -> float:
    """Learning-rate factor: linear warm-up over warmup_steps, then a cosine decay to 0 at total_steps."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """Seed of one random stream of one epoch: resuming at an epoch replays exactly what a full run does."""
    return (seed * 1_000_003 + epoch * 101 + stream) % (2**63)


def _single_modality_losses(
    model: FusionModel,
    inputs: dict[str, torch.Tensor],
    available: torch.Tensor,
    joints: torch.Tensor,
    augmentation: Augmentation | None,
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """Pose loss of each modality's own network on the rows that have that modality."""
    losses = {}
    for j, m in enumerate(MODALITIES):
        rows = available[:, j].nonzero(as_tuple=True)[0]
        if len(rows) == 0:
            continue
        present = torch.zeros(len(rows), len(MODALITIES), dtype=torch.bool, device=joints.device)
        present[:, j] = True
        x, target = inputs[m][rows], joints[rows]
        if augmentation is not None and m != "csi":
            x, target = augment_points(x, target, augmentation, generator)
        losses[m] = pose_loss(model({m: x}, present).pose, target)
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
    pose_mean, default_anchor = person_frame_statistics(data, train_rows)
    model.set_pose_mean(pose_mean)
    model.set_default_anchor(default_anchor)

    def make_optimizer(m: FusionModel) -> torch.optim.Optimizer:
        lidar = [p for name, p in m.named_parameters() if ".lidar." in f".{name}"]
        lidar_ids = {id(p) for p in lidar}
        groups = [
            {"params": [p for p in m.parameters() if id(p) not in lidar_ids], "scale": 1.0},
            {"params": lidar, "scale": settings.lidar_lr_factor},
        ]
        return torch.optim.AdamW(groups, lr=settings.lr, weight_decay=settings.weight_decay)

    optimizer = make_optimizer(model)
    history: list[dict] = []
    start_epoch = 0
    resumed = state.load_epoch(run_dir, NAME, device)
    if resumed is not None:
        model, meta = resumed
        optimizer = make_optimizer(model)
        state.restore_optimizers({"model": optimizer}, run_dir, NAME)
        start_epoch, history = meta["epoch"] + 1, meta["history"]
        logger.info("stage 1: resuming after epoch %d", meta["epoch"])

    steps_per_epoch = -(-len(train_rows) // settings.batch_size)
    total_steps = settings.epochs * steps_per_epoch
    augmentation = Augmentation() if settings.augment else None
    for epoch in range(start_epoch, settings.epochs):
        t0 = time.perf_counter()
        model.train()
        g = torch.Generator().manual_seed(epoch_seed(seed, epoch, 1))
        g_augment = torch.Generator().manual_seed(epoch_seed(seed, epoch, 5))
        order = train_rows[torch.randperm(len(train_rows), generator=g).numpy()]
        sums = dict.fromkeys(MODALITIES, 0.0)
        steps = 0
        bar = tqdm(
            range(0, len(order), settings.batch_size), desc=f"stage1 epoch {epoch + 1}/{settings.epochs}"
        )
        for start in bar:
            index = order[start : start + settings.batch_size]
            factor = cosine_lr(epoch * steps_per_epoch + steps, total_steps, settings.warmup_steps)
            for group in optimizer.param_groups:
                group["lr"] = settings.lr * factor * group["scale"]
            losses = _single_modality_losses(
                model,
                batch_inputs(data, index, device),
                torch.from_numpy(data.present[index]).to(device),
                torch.from_numpy(data.joints[index]).to(device),
                augmentation,
                g_augment,
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
            "train_mpjpe_mm": {m: 1000 * sums[m] / max(steps, 1) for m in MODALITIES},
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
