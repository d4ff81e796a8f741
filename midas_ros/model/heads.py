"""The pose head every model shares: 17 joint queries attending over the fused tokens.

Mean-pooling the tokens before an MLP (the papers' head) keeps little spatial layout behind small
encoders; here each joint has a learned query that picks what it needs from the tokens (cross-attention,
DETR-style), the joints then attend to each other (the skeleton's structure), and each query's output is
its joint's position in the person frame.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from midas_ros.skeleton import NUM_JOINTS


class Attention(nn.Module):
    """Multi-head attention written out (softmax(q k^T / sqrt(d)) v): unlike torch's fused kernels it
    has the second derivatives the bi-level outer step takes through the head."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)

    def forward(self, queries: Tensor, keys: Tensor, padding: Tensor | None = None) -> Tensor:
        batch, nq, width = queries.shape
        head_dim = width // self.heads
        q = self.q(queries).view(batch, nq, self.heads, head_dim).transpose(1, 2)
        k, v = self.kv(keys).view(batch, keys.shape[1], 2, self.heads, head_dim).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / head_dim**0.5  # (B, heads, nq, nk)
        if padding is not None:
            scores = scores.masked_fill(padding[:, None, None, :], float("-inf"))
        mixed = torch.softmax(scores, dim=-1) @ v
        return self.out(mixed.transpose(1, 2).reshape(batch, nq, width))


class JointQueryBlock(nn.Module):
    """Cross-attention to the tokens, self-attention among the joints, feed-forward (pre-norm, residual)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.cross_norm = nn.LayerNorm(width)
        self.cross = Attention(width, heads)
        self.self_norm = nn.LayerNorm(width)
        self.self_attn = Attention(width, heads)
        self.ffn = nn.Sequential(
            nn.LayerNorm(width), nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width)
        )

    def forward(self, joints: Tensor, tokens: Tensor, padding: Tensor | None) -> Tensor:
        q = self.cross_norm(joints)
        joints = joints + self.cross(q, tokens, padding)
        q = self.self_norm(joints)
        joints = joints + self.self_attn(q, q)
        return joints + self.ffn(joints)


class JointQueryHead(nn.Module):
    """Tokens (B, C, T) -> (B, 17, 3): joint queries over the tokens (with learned token positions)."""

    def __init__(self, channels: int, width: int, num_tokens: int, blocks: int = 2, heads: int = 4) -> None:
        super().__init__()
        self.tokens_in = nn.Sequential(nn.LayerNorm(channels), nn.Linear(channels, width))
        self.token_position = nn.Parameter(torch.randn(num_tokens, width) * 0.02)
        self.queries = nn.Parameter(torch.randn(NUM_JOINTS, width) * 0.02)
        self.blocks = nn.ModuleList(JointQueryBlock(width, heads) for _ in range(blocks))
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 3))
        # Start at the mean pose (FusionModel adds it): a random first guess would be ~1 m off.
        nn.init.zeros_(self.out[1].weight)
        nn.init.zeros_(self.out[1].bias)

    def forward(self, tokens: Tensor, padding: Tensor | None = None) -> Tensor:
        """padding: (B, T) bool, True for tokens to ignore (an absent modality's)."""
        keys = self.tokens_in(tokens.transpose(1, 2)) + self.token_position
        joints = self.queries.expand(tokens.shape[0], -1, -1)
        for block in self.blocks:
            joints = block(joints, keys, padding)
        return self.out(joints)
