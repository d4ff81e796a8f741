"""The person frame: where the model looks from, found from the sensor data alone.

Every model works in a frame centred on the person, so its encoders see the body at a fixed place and
scale whatever the rig, and its head predicts the pose relative to the person; the located centre is
added back, so the output is absolute in the base frame.

An anchor is (x, y, yaw) in the base frame: the mean x, y of the person's points and the bearing of
that point from the base origin (the floor below the depth camera), so the frame's x axis is the
horizontal line of sight to the person. z stays the base frame's (height above the floor: crouching and
jumping stay visible). A sample set's anchor comes from depth when present, else LiDAR, else (CSI
alone) a fixed default: the training poses' mean position.

The depth encoder sees the person's points drawn into a raster in this frame, looking along +x:
DEPTH_RASTER_HW pixels of DEPTH_RASTER_RES_M, 2.4 m high from the floor and 2 m wide, each pixel holding
the nearest point's forward offset from the anchor and a validity channel.
"""

from __future__ import annotations

import torch
from torch import Tensor

DEPTH_RASTER_HW: tuple[int, int] = (96, 80)
DEPTH_RASTER_RES_M = 0.025
_RASTER_TOP_M = DEPTH_RASTER_HW[0] * DEPTH_RASTER_RES_M  # 2.4 m above the floor
_RASTER_HALF_WIDTH_M = DEPTH_RASTER_HW[1] * DEPTH_RASTER_RES_M / 2  # 1 m to either side
_FORWARD_SCALE_M = 0.5  # forward offsets are divided by this (a body is about +-0.3 m deep)


def points_anchor(points: Tensor) -> Tensor:
    """(B, N, 3) base-frame points -> (B, 3) anchors (x, y, yaw)."""
    centre = points[..., :2].mean(dim=1)
    return torch.cat([centre, torch.atan2(centre[:, 1:2], centre[:, 0:1])], dim=1)


def choose_anchor(depth: Tensor | None, lidar: Tensor | None, default: Tensor, present: Tensor) -> Tensor:
    """(B, 3) anchor of each row: depth's if present, else LiDAR's, else the default (3,).

    depth, lidar: (B, 3) anchors of each modality (rows where it is absent are ignored), or None.
    present: (B, 3) bool in MODALITIES order (depth, lidar, csi).
    """
    anchor = default.to(present.device).expand(present.shape[0], 3)
    if lidar is not None:
        anchor = torch.where(present[:, 1:2], lidar, anchor)
    if depth is not None:
        anchor = torch.where(present[:, 0:1], depth, anchor)
    return anchor


def to_frame(points: Tensor, anchor: Tensor) -> Tensor:
    """Base-frame (B, N, 3) -> person frame of anchor (B, 3)."""
    cos, sin = torch.cos(anchor[:, 2:3]), torch.sin(anchor[:, 2:3])
    dx, dy = points[..., 0] - anchor[:, 0:1], points[..., 1] - anchor[:, 1:2]
    return torch.stack([cos * dx + sin * dy, cos * dy - sin * dx, points[..., 2]], dim=-1)


def from_frame(points: Tensor, anchor: Tensor) -> Tensor:
    """Person frame of anchor (B, 3) -> base frame, (B, N, 3)."""
    cos, sin = torch.cos(anchor[:, 2:3]), torch.sin(anchor[:, 2:3])
    x, y = points[..., 0], points[..., 1]
    return torch.stack(
        [cos * x - sin * y + anchor[:, 0:1], sin * x + cos * y + anchor[:, 1:2], points[..., 2]], dim=-1
    )


def depth_raster(points: Tensor) -> Tensor:
    """Person-frame points (B, N, 3) -> (B, 2, H, W): the nearest point's forward offset (scaled) and a
    validity channel, looking along +x with +y on the left. Points outside the raster are dropped."""
    batch = points.shape[0]
    height, width = DEPTH_RASTER_HW
    col = torch.floor((_RASTER_HALF_WIDTH_M - points[..., 1]) / DEPTH_RASTER_RES_M).long()
    row = torch.floor((_RASTER_TOP_M - points[..., 2]) / DEPTH_RASTER_RES_M).long()
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    rows = torch.arange(batch, device=points.device).view(-1, 1).expand_as(col)
    cell = (rows * height + row) * width + col
    nearest = points.new_full((batch * height * width,), float("inf"))
    nearest = nearest.scatter_reduce(0, cell[inside], points[..., 0][inside], "amin")
    valid = torch.isfinite(nearest)
    forward = torch.where(valid, nearest / _FORWARD_SCALE_M, torch.zeros_like(nearest))
    return (
        torch.stack([forward, valid.to(points.dtype)], dim=1)
        .view(batch, height, width, 2)
        .permute(0, 3, 1, 2)
    )
