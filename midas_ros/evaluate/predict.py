"""Run trained models on held-out frames with each of the seven modality subsets."""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from tqdm import tqdm

from midas_ros.evaluate.metrics import frame_errors, pose_errors_mm
from midas_ros.mmfi.preprocessed import PreprocessedSet
from midas_ros.model import FusionModel
from midas_ros.train.data import TokenCache, build_token_cache
from midas_ros.train.subsets import SUBSET_LABELS, SUBSETS, subset_mask


def encoder_fingerprint(model: FusionModel) -> str:
    """Hash of the encoders' weights and statistics: equal fingerprints give equal tokens."""
    digest = hashlib.sha1()
    for name, tensor in sorted(model.encoders.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def encode_all(
    model: FusionModel, data: PreprocessedSet, device: torch.device, batch_size: int = 128
) -> TokenCache:
    """Encoder tokens (float32, CPU) of every frame of `data`, all modalities, with their anchors."""
    if not data.present.all():
        raise ValueError("evaluation needs frames with every modality present")
    model = model.to(device)
    return build_token_cache(model, data, device, batch_size, f"encode {model.kind}", torch.float32)


@torch.no_grad()
def predict_subsets(
    model: FusionModel,
    data: PreprocessedSet,
    device: torch.device,
    batch_size: int = 128,
    tokens: TokenCache | None = None,
) -> dict[str, np.ndarray]:
    """{subset label: (N, 17, 3) predictions} for every frame of `data`, which must have all modalities.

    Each modality is encoded once per frame (or `tokens` from encode_all with this model's encoders are
    reused); the seven subsets then run the rest of the model with only their modalities marked present.
    The encoders see each frame on its own in eval mode, so this equals a full forward pass per subset.
    """
    if tokens is None:
        tokens = encode_all(model, data, device, batch_size)
    model = model.to(device).eval()
    n = len(data)
    preds = {label: np.zeros((n, 17, 3), dtype=np.float32) for label in SUBSET_LABELS}
    masks = {label: subset_mask(s).to(device) for label, s in zip(SUBSET_LABELS, SUBSETS, strict=True)}
    for start in tqdm(range(0, n, batch_size), desc=f"evaluate {model.kind}", unit="batch", leave=False):
        index = torch.arange(start, min(start + batch_size, n))
        for label, mask in masks.items():
            present = mask.expand(len(index), -1)
            batch_tokens, anchor = tokens.batch(index, present, device)
            pose = model.forward_from_tokens(batch_tokens, present, anchor, False).pose
            preds[label][index.numpy()] = pose.cpu().numpy()
    return preds


def subset_errors(preds: dict[str, np.ndarray], joints: np.ndarray) -> dict[str, dict[str, float]]:
    """{subset label: {"mpjpe", "pa_mpjpe"}} in mm."""
    return {label: pose_errors_mm(pred, joints) for label, pred in preds.items()}


def subset_frame_errors(preds: dict[str, np.ndarray], joints: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """{subset label: metrics.frame_errors} (per-frame MPJPE, PA-MPJPE, root and heading errors)."""
    return {label: frame_errors(pred, joints) for label, pred in preds.items()}


def mean_pose_errors(train_joints: np.ndarray, joints: np.ndarray) -> dict[str, float]:
    """Errors of always predicting the training poses' average in the base frame (the report's reference
    before the Procrustes mean, see references.py: averaging over headings collapses the skeleton)."""
    mean = train_joints.mean(axis=0, dtype=np.float64)
    return pose_errors_mm(np.broadcast_to(mean, joints.shape), joints)
