"""Projection heads of HCMoCo (docs/METHOD.md section 2): global, keypoint-global and dense.

All heads return L2-normalised embeddings, computed in float32 even under autocast (the
contrastive logits divide by tau = 0.07, where bf16 rounding would dominate).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hcmoco.precision import at_least_float32


class GlobalHead(nn.Module):
    """4 branch maps -> GAP each, concat (sum(widths) = 270 for W18), Linear -> dim, L2."""

    def __init__(self, in_channels: Sequence[int], dim: int = 128):
        super().__init__()
        self.fc = nn.Linear(sum(in_channels), dim)

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        pooled = torch.cat([at_least_float32(f).mean(dim=(2, 3)) for f in feats], dim=1)
        with torch.autocast(pooled.device.type, enabled=False):
            return F.normalize(self.fc(pooled), dim=1)


class KeypointGlobalHead(nn.Module):
    """(B, J, C) per-joint features, (B, J) visibility -> mean over visible joints, Linear, L2.
    A sample with no visible joint pools to zeros (its embedding is then the normalised bias)."""

    def __init__(self, in_dim: int = 128, dim: int = 128):
        super().__init__()
        self.fc = nn.Linear(in_dim, dim)

    def forward(self, joints: Tensor, visible: Tensor) -> Tensor:
        w = visible.to(torch.float32).unsqueeze(-1)
        pooled = (at_least_float32(joints) * w).sum(1) / w.sum(1).clamp(min=1.0)
        with torch.autocast(pooled.device.type, enabled=False):
            return F.normalize(self.fc(pooled), dim=1)


class DenseHead(nn.Module):
    """4 branch maps -> upsample branches 2-4 to branch 1 (bilinear), concat, 1x1 conv -> dim,
    L2 per pixel. Output (B, dim, H/4, W/4)."""

    def __init__(self, in_channels: Sequence[int], dim: int = 128):
        super().__init__()
        self.proj = nn.Conv2d(sum(in_channels), dim, kernel_size=1)

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        size = feats[0].shape[-2:]
        ups = [feats[0]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=False)
                            for f in feats[1:]]
        return F.normalize(at_least_float32(self.proj(torch.cat(ups, dim=1))), dim=1)


def gather_joint_features(dense: Tensor, cells: Tensor) -> Tensor:
    """Feature vector at each joint's grid cell.

    dense: (B, C, H, W); cells: (B, J, 2) integer (x, y) on that grid (clamped to it).
    Returns (B, J, C).
    """
    b, c, h, w = dense.shape
    x = cells[..., 0].long().clamp(0, w - 1)
    y = cells[..., 1].long().clamp(0, h - 1)
    flat = (y * w + x).unsqueeze(1).expand(b, c, -1)  # (B, C, J)
    return dense.flatten(2).gather(2, flat).transpose(1, 2)
