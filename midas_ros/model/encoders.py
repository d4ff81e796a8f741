"""Per-modality encoders: person-frame input -> token features (B, C, L) with C = feature_dim.

Depth and LiDAR take the person's points in the person frame (model/person_frame.py), so they see the
body at a fixed place and scale. They are sized so that batch-1 CPU inference of all three modalities
plus the diffusion refinement runs at 30 Hz on two cores (the shipped width 16: 0.29 GFLOP a frame in
all, 41 Hz; docs/bench_inference.md), and training fits on a CPU. Each encoder has a static
`num_tokens` (L), which the X-Fi style projection needs.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from midas_ros import MODALITIES
from midas_ros.model.person_frame import DEPTH_RASTER_HW, depth_raster


def _conv_bn_relu(cin: int, cout: int, kernel: int, stride: int | tuple[int, int]) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class PointMLP(nn.Module):
    """Shared MLP over the last axis of (..., C): Linear + BN + ReLU per layer.

    Channels-last Linear layers are several times faster on CPU than the equivalent 1x1 Conv2d on
    small grouped point tensors (and avoid permutes before the max pool).
    """

    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        self.linears = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in itertools.pairwise(channels))
        self.norms = nn.ModuleList(nn.BatchNorm1d(c) for c in channels[1:])

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        x = x.reshape(-1, x.shape[-1])
        for linear, norm in zip(self.linears, self.norms, strict=True):
            x = torch.relu(norm(linear(x)))
        return x.reshape(*lead, -1)


class DepthEncoder(nn.Module):
    """CNN on the person's depth raster (person_frame.depth_raster, 2 x 96 x 80): five stride-2 stages
    -> 6 x 5 = 30 tokens."""

    num_tokens = (DEPTH_RASTER_HW[0] // 16) * (DEPTH_RASTER_HW[1] // 16)

    def __init__(self, feature_dim: int, width: int) -> None:
        super().__init__()
        w = width
        self.body = nn.Sequential(
            _conv_bn_relu(2, w, 5, 2),  # input channels: forward offset and validity
            _conv_bn_relu(w, 2 * w, 3, 2),
            _conv_bn_relu(2 * w, 2 * w, 3, 1),
            _conv_bn_relu(2 * w, 4 * w, 3, 2),
            _conv_bn_relu(4 * w, 4 * w, 3, 1),
            _conv_bn_relu(4 * w, 8 * w, 3, 2),
            _conv_bn_relu(8 * w, 8 * w, 3, 1),
            _conv_bn_relu(8 * w, feature_dim, 1, 1),
        )

    def forward(self, points: Tensor) -> Tensor:
        """points (B, N, 3) in the person frame -> (B, C, 30)."""
        return self.body(depth_raster(points)).flatten(2)


def farthest_point_sample(xyz: Tensor, num_samples: int) -> Tensor:
    """Deterministic farthest point sampling (start: the point farthest from the centroid).

    xyz (B, N, 3) -> indices (B, num_samples). Any prefix of the result is itself an FPS sample.
    """
    # One pairwise distance matrix up front keeps the sequential loop to three small ops per sample.
    dist = torch.cdist(xyz, xyz)  # (B, N, N)
    batch = torch.arange(xyz.shape[0], device=xyz.device)
    current = (xyz - xyz.mean(dim=1, keepdim=True)).square().sum(-1).argmax(dim=1)
    nearest = dist[batch, current]
    chosen = [current]
    for _ in range(num_samples - 1):
        current = nearest.argmax(dim=1)
        chosen.append(current)
        nearest = torch.minimum(nearest, dist[batch, current])
    return torch.stack(chosen, dim=1)


def _gather(points: Tensor, index: Tensor) -> Tensor:
    """points (B, N, C), index (B, ...) -> (B, ..., C) (one index_select on the flattened batch)."""
    b, n, c = points.shape
    offsets = (torch.arange(b, device=index.device) * n).view(b, *([1] * (index.ndim - 1)))
    return points.reshape(b * n, c).index_select(0, (index + offsets).reshape(-1)).view(*index.shape, c)


class SetAbstraction(nn.Module):
    """PointNet++ set abstraction: kNN groups around given centroids, shared MLP, max pool."""

    def __init__(self, in_features: int, channels: list[int], k: int) -> None:
        super().__init__()
        self.k = k
        self.mlp = PointMLP([in_features + 3, *channels])

    def forward(self, xyz: Tensor, features: Tensor, centroids: Tensor) -> Tensor:
        """xyz (B, N, 3), features (B, N, F), centroids (B, S, 3) -> (B, S, C_out)."""
        k = min(self.k, xyz.shape[1])
        neighbours = torch.cdist(centroids, xyz).topk(k, dim=-1, largest=False).indices  # (B, S, k)
        rel = _gather(xyz, neighbours) - centroids.unsqueeze(2)  # (B, S, k, 3)
        grouped = torch.cat([rel, _gather(features, neighbours)], dim=-1)  # (B, S, k, 3 + F)
        return self.mlp(grouped).amax(dim=2)


class LidarEncoder(nn.Module):
    """Two-level PointNet++ on (B, 512, 3) person-frame points: 128 then 32 FPS centroids -> 32 tokens."""

    num_tokens = 32

    def __init__(self, feature_dim: int, width: int) -> None:
        super().__init__()
        w = width
        self.num_level1 = 128
        self.point_mlp = PointMLP([3, w, 2 * w])
        self.sa1 = SetAbstraction(2 * w, [2 * w, 4 * w], k=16)
        self.sa2 = SetAbstraction(4 * w, [4 * w, 8 * w], k=16)
        # Centroid positions are appended: where a part is, relative to the person, matters.
        self.out = PointMLP([8 * w + 3, feature_dim])

    def forward(self, points: Tensor) -> Tensor:
        xyz = points
        per_point = self.point_mlp(xyz)  # (B, N, 2w)
        idx1 = farthest_point_sample(xyz, self.num_level1)
        c1 = _gather(xyz, idx1)  # (B, 128, 3)
        f1 = self.sa1(xyz, per_point, c1)  # (B, 128, 4w)
        c2 = c1[:, : self.num_tokens]  # FPS prefix = FPS of the level-1 centroids
        f2 = self.sa2(c1, f1, c2)  # (B, 32, 8w)
        return self.out(torch.cat([f2, c2], dim=-1)).transpose(1, 2)  # (B, C, 32)


class CsiEncoder(nn.Module):
    """CNN over (B, 6, 114, 10) CSI (channels = amplitude/phase x antennas, H = subcarriers, W = packets).

    Strides shrink subcarriers faster than packets: 114 x 10 -> 8 x 5 = 40 tokens.
    """

    num_tokens = 40

    def __init__(self, feature_dim: int, width: int) -> None:
        super().__init__()
        w = width
        self.body = nn.Sequential(
            _conv_bn_relu(6, w, 3, (2, 1)),
            _conv_bn_relu(w, 2 * w, 3, (2, 1)),
            _conv_bn_relu(2 * w, 4 * w, 3, (2, 2)),
            _conv_bn_relu(4 * w, 8 * w, 3, (2, 1)),
            _conv_bn_relu(8 * w, feature_dim, 1, 1),
        )

    def forward(self, csi: Tensor) -> Tensor:
        return self.body(csi).flatten(2)  # (B, C, 40)


ENCODER_CLASSES: dict[str, type[nn.Module]] = {
    "depth": DepthEncoder,
    "lidar": LidarEncoder,
    "csi": CsiEncoder,
}


def build_encoders(feature_dim: int, width: int) -> nn.ModuleDict:
    """One encoder per modality, in MODALITIES order."""
    return nn.ModuleDict({m: ENCODER_CLASSES[m](feature_dim, width) for m in MODALITIES})
