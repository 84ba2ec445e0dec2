"""Semantic-segmentation metrics: confusion matrix and mean IoU (human parsing, depth parsing).

Per class IoU_c = TP_c / (TP_c + FP_c + FN_c) over all evaluated pixels of a split, accumulated
in one confusion matrix (not averaged per image); pixels labelled `ignore_index` are excluded.
Two conventions differ only in classes absent from both the prediction and the ground truth
(TP + FP + FN = 0); a class predicted but never present always counts with IoU 0:
- "present" (this pipeline's default, as mmsegmentation's `nanmean`): such a class has no IoU
  (NaN) and is left out of the mean, mIoU = mean of IoU_c over classes with TP + FP + FN > 0;
- "all_classes" (the HRNet semantic-segmentation code and HCMoCo's released code:
  `IoU_array = tp / np.maximum(1.0, pos + res - tp); mean_IoU = IoU_array.mean()`): such a class
  has IoU 0 and the mean runs over all K classes, mIoU = (1/K) sum_c TP_c / max(1, union_c).
"all_classes" is never above "present"; they agree when every class occurs in the split.
"""
from __future__ import annotations

import numpy as np
import torch

IGNORE_INDEX = 255
MIOU_CONVENTIONS = ("present", "all_classes")


def _as_numpy(a) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def confusion_matrix(pred, target, num_classes: int, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """(K, K) int64 counts, rows = ground-truth class, columns = predicted class.

    pred, target: integer label maps of the same shape (numpy or torch, any shape);
    pixels with target == ignore_index are skipped. A target or prediction outside
    0..K-1 (other than an ignored target) is an error, never silently dropped.
    """
    pred, target = _as_numpy(pred).ravel(), _as_numpy(target).ravel()
    if pred.shape != target.shape:
        raise ValueError(f"prediction and target differ in size: {pred.size} vs {target.size}")
    keep = target != ignore_index
    pred, target = pred[keep].astype(np.int64), target[keep].astype(np.int64)
    for name, labels in (("target", target), ("prediction", pred)):
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"{name} labels must lie in 0..{num_classes - 1} "
                             f"(or be {ignore_index} in the target); got {labels.min()}..{labels.max()}")
    return np.bincount(target * num_classes + pred, minlength=num_classes ** 2) \
        .reshape(num_classes, num_classes).astype(np.int64)


def per_class_iou(conf: np.ndarray) -> np.ndarray:
    """(K,) IoU_c = TP / (TP + FP + FN) from a confusion matrix; NaN where TP + FP + FN = 0."""
    conf = np.asarray(conf, dtype=np.float64)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def mean_iou(conf: np.ndarray, convention: str = "present") -> tuple[float, np.ndarray]:
    """(mIoU, per-class IoU (K,)) under `convention` (see the module docstring):
    "present": the mean over classes present in the prediction or the ground truth, absent
    classes NaN (excluded); mIoU is NaN only if nothing was evaluated.
    "all_classes": absent classes IoU 0, the mean over all K classes (HRNet-Seg, HCMoCo)."""
    if convention not in MIOU_CONVENTIONS:
        raise ValueError(f"mIoU convention must be one of {MIOU_CONVENTIONS}, got {convention!r}")
    iou = per_class_iou(conf)
    if convention == "all_classes":
        iou = np.nan_to_num(iou, nan=0.0)
        return float(iou.mean()) if iou.size else float("nan"), iou
    valid = ~np.isnan(iou)
    return (float(iou[valid].mean()) if valid.any() else float("nan")), iou


def pixel_accuracy(conf: np.ndarray) -> float:
    """Fraction of evaluated (non-ignored) pixels labelled correctly."""
    conf = np.asarray(conf)
    total = conf.sum()
    return float(np.trace(conf) / total) if total else float("nan")


class SegmentationMeter:
    """Running confusion matrix over many batches:
        meter = SegmentationMeter(25); meter.update(logits.argmax(1), labels); meter.compute()
    `convention`: the mIoU convention of `compute` ("present" or "all_classes", see mean_iou).
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, convention: str = "present"):
        if convention not in MIOU_CONVENTIONS:
            raise ValueError(f"mIoU convention must be one of {MIOU_CONVENTIONS}, got {convention!r}")
        self.num_classes, self.ignore_index, self.convention = num_classes, ignore_index, convention
        self.conf = np.zeros((num_classes, num_classes), np.int64)

    def update(self, pred, target) -> None:
        self.conf += confusion_matrix(pred, target, self.num_classes, self.ignore_index)

    def compute(self) -> dict:
        """{"miou", "per_class_iou" (list, None where undefined: absent classes under "present"),
        "pixel_accuracy", "miou_convention"}."""
        miou, iou = mean_iou(self.conf, self.convention)
        return {"miou": miou, "pixel_accuracy": pixel_accuracy(self.conf),
                "per_class_iou": [None if np.isnan(v) else float(v) for v in iou],
                "miou_convention": self.convention}
