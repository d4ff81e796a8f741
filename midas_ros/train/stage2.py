"""Stage 2: MIDAS, its ablations and the baselines, trained from the same stage-1 encoders on the same data.

Every model starts from the stage-1 encoders and projections (Base.2 also from the stage-1 pose heads,
which are its per-modality heads), draws the same per-sample random modality subsets in the same order,
and runs the same number of epochs. Departure from PTA (documented in docs/training.md): the encoders
are frozen here and their tokens cached once, which makes stage 2 about 5x cheaper on a CPU; PTA
fine-tunes them.

Inner loop: Adam (5e-4, cosine decay per step after a short warm-up) on task loss + lambda (0.1) x
(diffusion + KD + autoencoder loss). The task loss is the pose error (mean joint distance, in
decimetres) of the prediction plus, for MIDAS, that of the unrefined weighted-sum teacher (so the
teacher the students are distilled toward is itself a good pose feature).
Outer loop (models with learnable weights): every `outer_every` inner steps one Adam (1e-2) step on the
modality weights with the validation task loss through a differentiable look-ahead inner step
(train/bilevel.py), on frames of the outer-validation subjects.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call
from tqdm import tqdm

from midas_ros import MODALITIES
from midas_ros.evaluate.metrics import mpjpe_mm
from midas_ros.evaluate.references import reference_metadata
from midas_ros.model import FusionModel, MidasConfig, MidasOutput, build_model, load_checkpoint
from midas_ros.train import state
from midas_ros.train.bilevel import outer_step
from midas_ros.train.data import TokenCache
from midas_ros.train.stage1 import cosine_lr, epoch_seed, pose_loss
from midas_ros.train.subsets import random_present

logger = logging.getLogger(__name__)

# run name -> (model kind, MidasConfig overrides)
VARIANTS: dict[str, tuple[str, dict[str, bool]]] = {
    "midas": ("midas", {}),
    "wo_diff": ("midas", {"use_diffkd": False}),
    "wo_meta": ("midas", {"learn_weights": False}),
    "base1": ("base1", {}),
    "base2": ("base2", {}),
}
WEIGHT_PARAM = "model.modality_logits"  # name of the weights inside _FromTokens


@dataclass(frozen=True)
class Stage2Settings:
    epochs: int = 6
    batch_size: int = 32
    lr: float = 5e-4
    weight_lr: float = 1e-2
    kd_lambda: float = 0.1
    outer_every: int = 4  # inner steps per outer (weight) step
    first_order: bool = False  # True drops the second-order term of the outer gradient
    teacher_loss: bool = True
    # Length unit of the pose error in the inner loss (1.0: metres, 0.1: decimetres). It sets the balance
    # between the task loss and lambda x the distillation losses, which are unit-free.
    pose_unit_m: float = 0.1
    warmup_steps: int = 100


class _FromTokens(nn.Module):
    """`model.forward_from_tokens` as a module forward, so torch.func.functional_call can run it."""

    def __init__(self, model: FusionModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, tokens: dict[str, Tensor], present: Tensor, anchor: Tensor, compute_losses: bool
    ) -> MidasOutput:
        return self.model.forward_from_tokens(tokens, present, anchor, compute_losses)


def training_loss(out: MidasOutput, joints: Tensor, settings: Stage2Settings) -> tuple[Tensor, Tensor]:
    """(total inner loss, task loss) of one batch."""
    task = pose_loss(out.pose, joints)
    if settings.teacher_loss and out.teacher_pose is not None:
        task = task + pose_loss(out.teacher_pose, joints)
    task = task / settings.pose_unit_m
    return task + settings.kd_lambda * out.aux_loss, task


def init_from_stage1(
    kind: str, config: MidasConfig, stage1: FusionModel, device: torch.device
) -> FusionModel:
    """A fresh model whose encoders and projections (and Base.2's heads) are copied from stage 1."""
    model = build_model(kind, config).to(device)
    prefixes = ("encoders.", "projectors.", "heads.") if kind == "base2" else ("encoders.", "projectors.")
    source = {k: v for k, v in stage1.state_dict().items() if k.startswith(prefixes)}
    missing = [k for k in source if k not in model.state_dict()]
    if missing:
        raise ValueError(f"stage-1 tensors without a place in {kind}: {missing[:5]}")
    model.load_state_dict(source, strict=False)
    model.pose_mean.copy_(stage1.pose_mean)
    model.default_anchor.copy_(stage1.default_anchor)
    return model


def _freeze_encoders(model: FusionModel) -> None:
    for p in model.encoder_parameters():
        p.requires_grad_(False)


@torch.no_grad()
def _weights(model: FusionModel) -> dict[str, float]:
    all_present = torch.ones(1, len(MODALITIES), dtype=torch.bool, device=model.pose_mean.device)
    w = model.modality_weights(all_present)[0]
    return {m: float(w[j]) for j, m in enumerate(MODALITIES)}


@torch.no_grad()
def validation_mpjpe(
    model: FusionModel,
    cache: TokenCache,
    rows: np.ndarray,
    present: Tensor,
    device: torch.device,
    batch: int = 256,
) -> float:
    """MPJPE (mm) on `rows` with a fixed per-frame modality subset `present` (eval mode)."""
    model.eval()
    preds = []
    for start in range(0, len(rows), batch):
        index = torch.from_numpy(rows[start : start + batch])
        subset = present[start : start + batch].to(device)
        tokens, anchor = cache.batch(index, subset, device)
        preds.append(model.forward_from_tokens(tokens, subset, anchor, False).pose.cpu().numpy())
    if not preds:
        return 0.0
    return mpjpe_mm(np.concatenate(preds), cache.joints[torch.from_numpy(rows)].numpy())


def train_stage2(
    name: str,
    stage1: FusionModel,
    cache: TokenCache,
    train_rows: np.ndarray,
    val_rows: np.ndarray,
    config: MidasConfig,
    settings: Stage2Settings,
    run_dir: Path,
    device: torch.device,
    seed: int,
) -> FusionModel:
    """Train (or resume, or load when finished) one stage-2 model `name` (a key of VARIANTS)."""
    if state.is_done(run_dir, name):
        logger.info("%s already trained", name)
        return load_checkpoint(state.final_stem(run_dir, name), device)
    kind, overrides = VARIANTS[name]
    torch.manual_seed(seed)
    model = init_from_stage1(kind, replace(config, **overrides), stage1, device)
    history: list[dict] = []
    start_epoch = 0
    resumed = state.load_epoch(run_dir, name, device)
    if resumed is not None:
        model, meta = resumed
        start_epoch, history = meta["epoch"] + 1, meta["history"]
        logger.info("%s: resuming after epoch %d", name, meta["epoch"])
    _freeze_encoders(model)
    inner_params = [p for p in model.model_parameters() if p.requires_grad]
    inner_opt = torch.optim.Adam(inner_params, lr=settings.lr)
    meta_learning = bool(model.weight_parameters())
    optimizers: dict[str, torch.optim.Optimizer] = {"inner": inner_opt}
    if meta_learning:
        optimizers["weights"] = torch.optim.Adam(model.weight_parameters(), lr=settings.weight_lr)
    if resumed is not None:
        state.restore_optimizers(optimizers, run_dir, name)

    wrapper = _FromTokens(model)

    def inner_loss_fn(params: dict[str, Tensor], batch: tuple) -> Tensor:
        tokens, present, anchor, joints = batch
        out = functional_call(wrapper, params, (tokens, present, anchor, True))
        return training_loss(out, joints, settings)[0]

    def outer_loss_fn(params: dict[str, Tensor], batch: tuple) -> Tensor:
        tokens, present, anchor, joints = batch
        return pose_loss(functional_call(wrapper, params, (tokens, present, anchor, False)).pose, joints)

    # One fixed random subset per validation frame, the same for every epoch and model.
    val_present = random_present(cache.available[val_rows], torch.Generator().manual_seed(seed + 7))

    steps_per_epoch = -(-len(train_rows) // settings.batch_size)
    total_steps = settings.epochs * steps_per_epoch
    for epoch in range(start_epoch, settings.epochs):
        t0 = time.perf_counter()
        g = torch.Generator().manual_seed(
            epoch_seed(seed, epoch, 2)
        )  # batches + subsets: same for all models
        g_val = torch.Generator().manual_seed(epoch_seed(seed, epoch, 3))
        torch.manual_seed(epoch_seed(seed, epoch, 4))  # diffusion noise and timesteps
        order = train_rows[torch.randperm(len(train_rows), generator=g).numpy()]
        val_order = val_rows[torch.randperm(len(val_rows), generator=g_val).numpy()]
        val_cursor = 0
        sums = {"loss": 0.0, "task": 0.0, "aux": 0.0, "outer": 0.0}
        steps = outer_steps = 0
        model.train()
        bar = tqdm(
            range(0, len(order), settings.batch_size), desc=f"{name} epoch {epoch + 1}/{settings.epochs}"
        )
        for start in bar:
            index = torch.from_numpy(order[start : start + settings.batch_size])
            present = random_present(cache.available[index], g).to(device)
            tokens, anchor = cache.batch(index, present, device)
            joints = cache.joints[index].to(device)
            factor = cosine_lr(epoch * steps_per_epoch + steps, total_steps, settings.warmup_steps)
            for group in inner_opt.param_groups:
                group["lr"] = settings.lr * factor
            if meta_learning and steps % settings.outer_every == 0:
                if val_cursor + settings.batch_size > len(val_order):
                    val_cursor = 0
                vindex = torch.from_numpy(val_order[val_cursor : val_cursor + settings.batch_size])
                val_cursor += settings.batch_size
                vpresent = random_present(cache.available[vindex], g_val).to(device)
                vtokens, vanchor = cache.batch(vindex, vpresent, device)
                vbatch = (vtokens, vpresent, vanchor, cache.joints[vindex].to(device))
                result = outer_step(
                    wrapper,
                    WEIGHT_PARAM,
                    inner_loss_fn,
                    outer_loss_fn,
                    (tokens, present, anchor, joints),
                    vbatch,
                    inner_opt,
                    optimizers["weights"],
                    first_order=settings.first_order,
                )
                sums["outer"] += result.outer_loss
                outer_steps += 1
                model.train()
            out = model.forward_from_tokens(tokens, present, anchor, True)
            loss, task = training_loss(out, joints, settings)
            inner_opt.zero_grad(set_to_none=True)
            loss.backward()
            inner_opt.step()
            steps += 1
            sums["loss"] += float(loss.detach())
            sums["task"] += float(task.detach())
            sums["aux"] += float(out.aux_loss.detach())
            bar.set_postfix(task=f"{sums['task'] / steps:.4f}", aux=f"{sums['aux'] / steps:.3f}")
        record = {
            "epoch": epoch,
            "train_loss": sums["loss"] / max(steps, 1),
            "train_task": sums["task"] / max(steps, 1),
            "train_aux": sums["aux"] / max(steps, 1),
            "outer_val_mse": sums["outer"] / outer_steps if outer_steps else None,
            "val_mpjpe_mm": validation_mpjpe(model, cache, val_rows, val_present, device),
            "weights": _weights(model),
            "seconds": time.perf_counter() - t0,
        }
        history.append(record)
        logger.info("%s epoch %d: %s", name, epoch, record)
        state.save_epoch(model, optimizers, run_dir, name, {"epoch": epoch, "history": history})

    meta = {
        "stage": "stage2",
        "variant": name,
        "settings": asdict(settings),
        "seed": seed,
        "history": history,
        "weights": _weights(model),
        "encoders": "frozen stage-1 encoders (tokens cached)",
        # The no-sensor constant pose of the training rows, for any later evaluation (references.py).
        **reference_metadata(cache.joints[torch.from_numpy(train_rows)].numpy()),
    }
    state.save_final(model, run_dir, name, meta)
    return model.eval()
