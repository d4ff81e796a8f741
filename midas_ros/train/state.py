"""Resumable training state on disk: model checkpoints (the model package's safetensors + JSON) and the
optimizer states (safetensors for the tensors, JSON for the rest). Nothing is pickled.

Layout of one trained model under a run folder:
    <run>/<name>/final.{safetensors,json}   written when the model is finished (its presence = done)
    <run>/<name>/last.{safetensors,json}    the latest finished epoch (metadata: epoch, history)
    <run>/<name>/last_optim.{safetensors,json}
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from midas_ros.model import FusionModel, load_checkpoint, read_checkpoint_info, save_checkpoint


def final_stem(run_dir: Path, name: str) -> Path:
    return run_dir / name / "final"


def last_stem(run_dir: Path, name: str) -> Path:
    return run_dir / name / "last"


def is_done(run_dir: Path, name: str) -> bool:
    """True when `<run>/<name>/final` exists (both files)."""
    stem = final_stem(run_dir, name)
    return stem.with_suffix(".safetensors").is_file() and stem.with_suffix(".json").is_file()


def save_optimizers(optimizers: dict[str, torch.optim.Optimizer], stem: Path) -> None:
    """All optimizers' states into `<stem>.safetensors` (tensors) + `<stem>.json` (hyper-parameters)."""
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {}
    for key, opt in optimizers.items():
        sd = opt.state_dict()
        scalars: dict[str, Any] = {}
        for pid, state in sd["state"].items():
            for k, v in state.items():
                if torch.is_tensor(v):
                    tensors[f"{key}.{pid}.{k}"] = v.detach().cpu().contiguous()
                else:
                    scalars[f"{pid}.{k}"] = v
        meta[key] = {"param_groups": sd["param_groups"], "scalars": scalars, "num_states": len(sd["state"])}
    stem.parent.mkdir(parents=True, exist_ok=True)
    _atomic_save_file(tensors, stem.with_suffix(".safetensors"))
    _atomic_write_text(stem.with_suffix(".json"), json.dumps(meta, indent=1))


def load_optimizers(optimizers: dict[str, torch.optim.Optimizer], stem: Path) -> None:
    """Inverse of save_optimizers (the optimizers must be built over the same parameters)."""
    tensors = load_file(str(stem.with_suffix(".safetensors")))
    meta = json.loads(stem.with_suffix(".json").read_text())
    for key, opt in optimizers.items():
        info = meta[key]
        state: dict[int, dict[str, Any]] = {}
        for name, value in tensors.items():
            owner, pid, k = name.split(".", 2)
            if owner == key:
                state.setdefault(int(pid), {})[k] = value
        for name, value in info["scalars"].items():
            pid, k = name.split(".", 1)
            state.setdefault(int(pid), {})[k] = value
        if len(state) != info["num_states"]:
            raise ValueError(f"{stem}: optimizer {key!r} state is incomplete")
        opt.load_state_dict({"state": state, "param_groups": info["param_groups"]})


def save_epoch(
    model: FusionModel,
    optimizers: dict[str, torch.optim.Optimizer],
    run_dir: Path,
    name: str,
    metadata: dict[str, Any],
) -> None:
    """Mid-stage checkpoint after an epoch: model + optimizers; metadata must hold 'epoch'."""
    stem = last_stem(run_dir, name)
    save_optimizers(optimizers, stem.with_name("last_optim"))
    save_checkpoint(model, stem, metadata)  # written last: its JSON marks the epoch as complete


def load_epoch(run_dir: Path, name: str, device: torch.device) -> tuple[FusionModel, dict[str, Any]] | None:
    """(model, metadata) of the latest finished epoch, or None when there is none."""
    stem = last_stem(run_dir, name)
    if not (stem.with_suffix(".json").is_file() and stem.with_name("last_optim.json").is_file()):
        return None
    return load_checkpoint(stem, device), read_checkpoint_info(stem)["metadata"]


def restore_optimizers(optimizers: dict[str, torch.optim.Optimizer], run_dir: Path, name: str) -> None:
    load_optimizers(optimizers, last_stem(run_dir, name).with_name("last_optim"))


def save_final(model: FusionModel, run_dir: Path, name: str, metadata: dict[str, Any]) -> Path:
    """The finished model; later runs of the recipe skip `name` once this exists."""
    path = save_checkpoint(model, final_stem(run_dir, name), metadata)
    for leftover in ("last.safetensors", "last.json", "last_optim.safetensors", "last_optim.json"):
        (run_dir / name / leftover).unlink(missing_ok=True)
    return path


def _atomic_save_file(tensors: dict[str, torch.Tensor], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
