"""Checkpoints: `<stem>.safetensors` (tensors) + `<stem>.json` (model kind, config, modality order,
metadata). Only safetensors is ever read: any other file (pickle, torch.save zip, ...) is refused after
checking its header bytes, before anything is deserialised (no torch.load anywhere)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model

from midas_ros import MODALITIES
from midas_ros.model.baselines import ConcatBaseline, DecisionAverageBaseline
from midas_ros.model.config import MidasConfig
from midas_ros.model.midas import MIDAS, FusionModel

FORMAT_VERSION = 1
MODEL_KINDS: dict[str, type[FusionModel]] = {
    cls.kind: cls for cls in (MIDAS, ConcatBaseline, DecisionAverageBaseline)
}
# A safetensors header longer than this is not a real checkpoint header (guards against a huge read).
_MAX_HEADER_BYTES = 100_000_000


class CheckpointError(ValueError):
    """The file is not a valid midas_ros checkpoint."""


def build_model(kind: str, config: MidasConfig) -> FusionModel:
    """A fresh model of a registered kind ("midas", "base1", "base2")."""
    if kind not in MODEL_KINDS:
        raise CheckpointError(f"unknown model kind {kind!r}; known: {sorted(MODEL_KINDS)}")
    return MODEL_KINDS[kind](config)


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """(tensor file, json file) for a stem, the `.json`, or the tensor file itself (any existing file:
    a `model.pt` given here is then refused by the header check, not silently replaced by `model.pt.json`)."""
    p = Path(path)
    if p.suffix == ".json":
        return p.with_suffix(".safetensors"), p
    if p.suffix == ".safetensors" or p.is_file():
        return p, p.with_suffix(".json")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def save_checkpoint(
    model: FusionModel, path_stem: str | Path, metadata: dict[str, Any] | None = None
) -> Path:
    """Write `<stem>.safetensors` and `<stem>.json`; returns the safetensors path.

    metadata: anything JSON-serialisable (training info, metrics, data set, ...).
    """
    stem = Path(path_stem)
    if stem.suffix in (".safetensors", ".json"):
        stem = stem.with_suffix("")
    tensors_path, json_path = stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")
    tensors_path.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, str(tensors_path), metadata={"kind": model.kind, "format_version": str(FORMAT_VERSION)})
    info = {
        "format_version": FORMAT_VERSION,
        "kind": model.kind,
        "config": model.config.to_dict(),
        "modalities": list(MODALITIES),
        "metadata": metadata or {},
    }
    json_path.write_text(json.dumps(info, indent=2) + "\n")
    return tensors_path


def check_safetensors_file(path: Path) -> None:
    """Raise CheckpointError unless `path` starts with a safetensors header (8-byte length + JSON object)."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path} is too short to be a safetensors file")
        (length,) = struct.unpack("<Q", head)
        size = path.stat().st_size
        if length < 2 or length > min(_MAX_HEADER_BYTES, size - 8):
            kind = _guess_format(head)
            raise CheckpointError(f"{path} is not a safetensors file{kind}; refusing to load it")
        header = f.read(length)
    try:
        parsed = json.loads(header)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} has no valid safetensors header; refusing to load it") from err
    if not isinstance(parsed, dict):
        raise CheckpointError(f"{path} has no valid safetensors header; refusing to load it")


def _guess_format(head: bytes) -> str:
    if head[:1] == b"\x80":
        return " (it looks like a pickle)"
    if head[:2] == b"PK":
        return " (it looks like a torch.save zip archive, which contains a pickle)"
    return ""


def read_checkpoint_info(path: str | Path) -> dict[str, Any]:
    """The JSON side of a checkpoint (kind, config, modalities, metadata), validated."""
    _, json_path = checkpoint_paths(path)
    if not json_path.is_file():
        raise CheckpointError(f"checkpoint description not found: {json_path}")
    try:
        info = json.loads(json_path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{json_path} is not valid JSON: {err}") from err
    for key in ("kind", "config", "modalities"):
        if key not in info:
            raise CheckpointError(f"{json_path} lacks {key!r}")
    if tuple(info["modalities"]) != MODALITIES:
        raise CheckpointError(f"{json_path}: modality order {info['modalities']} != {list(MODALITIES)}")
    return info


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> FusionModel:
    """Model from `<stem>.safetensors` + `<stem>.json` (path: the stem or either file), in eval mode."""
    tensors_path, _ = checkpoint_paths(path)
    check_safetensors_file(tensors_path)  # before anything else reads the file
    info = read_checkpoint_info(path)
    model = build_model(info["kind"], MidasConfig.from_dict(info["config"]))
    missing, unexpected = load_model(model, str(tensors_path), strict=False, device=str(device))
    if missing or unexpected:
        raise CheckpointError(
            f"{tensors_path} does not match a {info['kind']} model: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}"
        )
    return model.to(device).eval()
