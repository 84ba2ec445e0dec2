"""HRNetV2 segmentation head and its (class-weighted) cross-entropy: RGB and depth human parsing.

The head is the one of the HRNet semantic-segmentation code: upsample branches 2-4 to branch 1
(bilinear), concatenate (270 channels for W18), 1x1 conv + BN + ReLU, 1x1 conv to the classes,
then bilinear upsampling of the logits to the input size.

Class weights for depth parsing (docs/METHOD.md 5: "class-weighted CE") use the ENet rule
(Paszke et al. 2016): w_c = 1 / ln(1.02 + p_c), p_c the frequency of class c among the labelled
training pixels. It bounds the weights to [1 / ln(2.02), 1 / ln(1.02)] = [1.42, 50.5], so rare
parts (hands, feet) count up to ~35 times a background pixel without the blow-up of 1 / p_c.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hcmoco.eval.segmentation import IGNORE_INDEX
from hcmoco.models.hrnet import BN_MOMENTUM

ENET_C = 1.02


def concat_branches(feats: Sequence[Tensor]) -> Tensor:
    """4 HRNet branch maps -> branches 2-4 upsampled (bilinear) to branch 1, concatenated:
    (B, sum(widths), H/4, W/4)."""
    size = feats[0].shape[-2:]
    return torch.cat([feats[0]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=False)
                                   for f in feats[1:]], dim=1)


class SegmentationHead(nn.Module):
    """forward(feats, out_size=None) -> (B, num_classes, *out_size) logits (branch-1 size if
    out_size is None)."""

    def __init__(self, in_channels: Sequence[int], num_classes: int = 25):
        super().__init__()
        c = sum(in_channels)
        self.fuse = nn.Sequential(nn.Conv2d(c, c, 1), nn.BatchNorm2d(c, momentum=BN_MOMENTUM),
                                  nn.ReLU(inplace=True))
        self.classifier = nn.Conv2d(c, num_classes, 1)
        self.num_classes = num_classes

    def forward(self, feats: Sequence[Tensor], out_size: tuple[int, int] | None = None) -> Tensor:
        logits = self.classifier(self.fuse(concat_branches(feats)))
        if out_size is not None and tuple(logits.shape[-2:]) != tuple(out_size):
            logits = F.interpolate(logits, size=tuple(out_size), mode="bilinear", align_corners=False)
        return logits


def segmentation_loss(logits: Tensor, target: Tensor, class_weights: Tensor | None = None,
                      ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Pixel-wise cross-entropy, optionally class-weighted:
        L = sum_i w_{y_i} (-log softmax(z_i)_{y_i}) / sum_i w_{y_i}   over pixels i with y_i != ignore.
    logits: (B, K, h, w), bilinearly resized to the target if smaller; target: (B, H, W) long;
    class_weights: (K,) or None (all 1). A batch with no labelled pixel gives 0 (with a graph)."""
    if logits.shape[-2:] != target.shape[-2:]:
        logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
    target = target.long()
    if not (target != ignore_index).any():
        return logits.sum() * 0.0
    weight = None if class_weights is None else class_weights.to(logits.device, torch.float32)
    return F.cross_entropy(logits.float(), target, weight=weight, ignore_index=ignore_index)


def label_counts(labels, num_classes: int, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """(K,) int64 pixel count per class of a label array (numpy or torch), ignoring ignore_index;
    sum it over training batches (or shards) and pass it to enet_class_weights."""
    labels = labels.detach().cpu().numpy() if isinstance(labels, Tensor) else np.asarray(labels)
    labels = labels[labels != ignore_index].astype(np.int64).ravel()
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got {labels.min()}..{labels.max()}")
    return np.bincount(labels, minlength=num_classes).astype(np.int64)


def enet_class_weights(counts, c: float = ENET_C) -> Tensor:
    """(K,) float32 w_k = 1 / ln(c + p_k), p_k = counts_k / sum(counts) (ENet; c = 1.02)."""
    counts = np.asarray(counts, np.float64)
    if counts.sum() <= 0:
        raise ValueError("class weights need at least one labelled pixel")
    return torch.as_tensor(1.0 / np.log(c + counts / counts.sum()), dtype=torch.float32)
