"""Training augmentation of person points and poses, applied to inputs and labels alike.

Each sample is turned about the vertical through its person (as if the sensor stood elsewhere around
them), mirrored left-right (with the joints' sides swapped), scaled about their floor point (a smaller or
larger person), given sensor noise and a random occlusion (the points in a ball removed). All of it in
the person frame of the sample's own points (model/person_frame.py), so the located person stays put.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from midas_ros.model.person_frame import from_frame, points_anchor, to_frame
from midas_ros.skeleton import LEFT_JOINTS, NUM_JOINTS, RIGHT_JOINTS

_MIRRORED = list(range(NUM_JOINTS))
for _left, _right in zip(LEFT_JOINTS, RIGHT_JOINTS, strict=True):
    _MIRRORED[_left], _MIRRORED[_right] = _right, _left


@dataclass(frozen=True)
class Augmentation:
    max_turn_rad: float = math.radians(45)
    mirror_probability: float = 0.5
    scale_range: tuple[float, float] = (0.9, 1.1)
    noise_m: float = 0.01
    occlusion_probability: float = 0.3
    occlusion_radius_m: tuple[float, float] = (0.1, 0.3)


def augment_points(
    points: Tensor, joints: Tensor, settings: Augmentation, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Base-frame points (B, N, 3) and joints (B, 17, 3) -> the same, augmented (new tensors)."""
    batch, device = points.shape[0], points.device

    def uniform(low: float, high: float, shape: tuple[int, ...] = (batch,)) -> Tensor:
        return (torch.rand(shape, generator=generator) * (high - low) + low).to(device)

    anchor = points_anchor(points)
    turn = uniform(-settings.max_turn_rad, settings.max_turn_rad)
    mirror = torch.where(uniform(0, 1) < settings.mirror_probability, -1.0, 1.0).to(points.dtype)
    scale = uniform(*settings.scale_range)
    turning = torch.stack([torch.zeros_like(turn), torch.zeros_like(turn), turn], dim=1)

    def transform(x: Tensor) -> Tensor:
        rel = to_frame(x, anchor)
        rel = torch.stack([rel[..., 0], rel[..., 1] * mirror[:, None], rel[..., 2]], dim=-1)
        rel = from_frame(rel, turning)  # turned about the person's vertical
        return from_frame(rel * scale[:, None, None], anchor)

    new_joints = transform(joints)
    mirrored = mirror < 0
    new_joints[mirrored] = new_joints[mirrored][:, _MIRRORED]
    new_points = transform(points)
    new_points = new_points + torch.randn(points.shape, generator=generator).to(device) * settings.noise_m
    return _occlude(new_points, settings, generator), new_joints


def _occlude(points: Tensor, settings: Augmentation, generator: torch.Generator) -> Tensor:
    """Remove the points in a random ball from some samples, refilling their slots with kept points."""
    batch, count = points.shape[:2]
    chosen = (torch.rand(batch, generator=generator) < settings.occlusion_probability).nonzero().flatten()
    for b in chosen.tolist():
        centre = points[b, int(torch.randint(count, (1,), generator=generator))]
        low, high = settings.occlusion_radius_m
        radius = low + (high - low) * float(torch.rand(1, generator=generator))
        kept = ((points[b] - centre).norm(dim=-1) > radius).nonzero().flatten()
        if len(kept) < count // 2:  # never remove most of the person
            continue
        missing = ((points[b] - centre).norm(dim=-1) <= radius).nonzero().flatten()
        slots = torch.arange(count, device=points.device)
        slots[missing] = kept[torch.randint(len(kept), (len(missing),), generator=generator).to(kept.device)]
        points[b] = points[b][slots]
    return points
