"""Dense DensePose head on top-down person crops (the crop is the whole image on SynthHuman).

From the fused HRNet features (branches upsampled to stride 4 and concatenated, as the
segmentation head) a 1x1 conv + BN + ReLU, then three 1x1 convs predict per pixel
    part logits (25: 0 background, 1..24 the DensePose parts), U (24) and V (24),
one U, V chart per part as in DensePose R-CNN; all are bilinearly upsampled to the crop size.
Only the U, V channel of a pixel's part is used: the ground-truth part in the loss, the
predicted part (argmax) when decoding.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hcmoco.models.hrnet import BN_MOMENTUM
from hcmoco.tasks.segmentation import IGNORE_INDEX, concat_branches

NUM_PARTS = 24


class DensePoseHead(nn.Module):
    """forward(feats, out_size=None) -> {"part": (B, 25, H, W), "u": (B, 24, H, W),
    "v": (B, 24, H, W)} (branch-1 size if out_size is None). U, V are unbounded regressions
    of values in [0, 1]; decoding clips them."""

    def __init__(self, in_channels: Sequence[int], channels: int | None = None):
        super().__init__()
        c = sum(in_channels)
        channels = channels or c
        self.fuse = nn.Sequential(nn.Conv2d(c, channels, 1),
                                  nn.BatchNorm2d(channels, momentum=BN_MOMENTUM), nn.ReLU(inplace=True))
        self.part = nn.Conv2d(channels, NUM_PARTS + 1, 1)
        self.u = nn.Conv2d(channels, NUM_PARTS, 1)
        self.v = nn.Conv2d(channels, NUM_PARTS, 1)

    def forward(self, feats: Sequence[Tensor], out_size: tuple[int, int] | None = None) -> dict[str, Tensor]:
        x = self.fuse(concat_branches(feats))
        out = {"part": self.part(x), "u": self.u(x), "v": self.v(x)}
        if out_size is not None and tuple(x.shape[-2:]) != tuple(out_size):
            out = {k: F.interpolate(t, size=tuple(out_size), mode="bilinear", align_corners=False)
                   for k, t in out.items()}
        return out


def _chart_of_part(uv: Tensor, part: Tensor) -> Tensor:
    """(B, 24, H, W) charts, (B, H, W) part 0..24 -> (B, H, W) value of the part's chart
    (part 0 reads chart 0; mask it)."""
    return uv.gather(1, (part.long() - 1).clamp(min=0).unsqueeze(1)).squeeze(1)


def densepose_loss_terms(out: dict[str, Tensor], target_i: Tensor, target_u: Tensor, target_v: Tensor,
                         ignore_index: int = IGNORE_INDEX, uv_beta: float = 1.0) -> dict[str, Tensor]:
    """{"part", "uv"}:
        part = mean over labelled pixels of CE(part logits, I)   (I = ignore_index: unlabelled),
        uv   = mean over pixels with 1 <= I <= 24 of [SmoothL1(U_I - U*) + SmoothL1(V_I - V*)] / 2,
    U_I, V_I the predicted charts of the ground-truth part I. Targets (B, H, W): I long,
    U*, V* float in [0, 1]; logits are resized to the target size if needed. Sparse point
    annotations fit too: set I = ignore_index at unannotated pixels."""
    size = target_i.shape[-2:]
    if out["part"].shape[-2:] != size:
        out = {k: F.interpolate(t, size=size, mode="bilinear", align_corners=False) for k, t in out.items()}
    target_i = target_i.long()
    labelled = target_i != ignore_index
    part = F.cross_entropy(out["part"].float(), target_i, ignore_index=ignore_index) \
        if labelled.any() else out["part"].sum() * 0.0
    fg = labelled & (target_i > 0)
    part_idx = torch.where(fg, target_i, torch.zeros_like(target_i))
    if fg.any():
        uv = 0.5 * sum(F.smooth_l1_loss(_chart_of_part(out[k].float(), part_idx)[fg], t.float()[fg],
                                        beta=uv_beta) for k, t in (("u", target_u), ("v", target_v)))
    else:
        uv = (out["u"].sum() + out["v"].sum()) * 0.0
    return {"part": part, "uv": uv}


def densepose_loss(out: dict[str, Tensor], target_i: Tensor, target_u: Tensor, target_v: Tensor,
                   part_weight: float = 1.0, uv_weight: float = 1.0,
                   ignore_index: int = IGNORE_INDEX) -> Tensor:
    """L = part_weight * CE(parts) + uv_weight * SmoothL1(U, V at foreground) (densepose_loss_terms)."""
    t = densepose_loss_terms(out, target_i, target_u, target_v, ignore_index)
    return part_weight * t["part"] + uv_weight * t["uv"]


def split_iuv(iuv: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Processed-format IUV (B, H, W, 3) uint8 (I, U*255, V*255) -> I long, U, V float in [0, 1]."""
    return iuv[..., 0].long(), iuv[..., 1].float() / 255.0, iuv[..., 2].float() / 255.0


def point_targets(parsing, points, part, count, ignore_index: int = IGNORE_INDEX) -> tuple[Tensor, Tensor, Tensor]:
    """Sparse DensePose-COCO labels -> the (I, U, V) target maps of densepose_loss_terms.

    parsing (B, H, W): coarse parts, 0 = background; points (B, P, 4): x, y (crop pixels), U, V;
    part (B, P): I in 1..24; count (B,): real points per sample. I = 0 where the coarse mask is
    background, the point's part at its pixel, ignore_index elsewhere on the body (unlabelled)."""
    parsing, points = np.asarray(parsing), np.asarray(points, np.float32)
    b, h, w = parsing.shape
    target_i = np.where(parsing == 0, 0, ignore_index).astype(np.int64)
    target_u, target_v = np.zeros((b, h, w), np.float32), np.zeros((b, h, w), np.float32)
    for k in range(b):
        n = int(np.asarray(count)[k])
        xs = np.clip(np.floor(points[k, :n, 0]).astype(np.int64), 0, w - 1)
        ys = np.clip(np.floor(points[k, :n, 1]).astype(np.int64), 0, h - 1)
        target_i[k, ys, xs] = np.asarray(part)[k, :n]
        target_u[k, ys, xs], target_v[k, ys, xs] = points[k, :n, 2], points[k, :n, 3]
    return torch.from_numpy(target_i), torch.from_numpy(target_u), torch.from_numpy(target_v)


@torch.no_grad()
def decode_iuv(out: dict[str, Tensor]) -> Tensor:
    """(B, H, W, 3) float: I = argmax part (0 background), U, V = that part's charts clipped to
    [0, 1] (0 at background)."""
    part = out["part"].argmax(1)
    fg = part > 0
    u = torch.where(fg, _chart_of_part(out["u"], part).clamp(0, 1), 0.0)
    v = torch.where(fg, _chart_of_part(out["v"], part).clamp(0, 1), 0.0)
    return torch.stack([part.float(), u.float(), v.float()], -1)


def iuv_to_uint8(iuv: Tensor) -> Tensor:
    """Decoded float IUV -> the processed / DensePose-result uint8 format (I, U*255, V*255)."""
    return torch.cat([iuv[..., :1].round(), (iuv[..., 1:] * 255.0).round()], -1).clamp(0, 255).to(torch.uint8)
