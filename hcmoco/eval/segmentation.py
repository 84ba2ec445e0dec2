"""Semantic-segmentation metrics: confusion matrix and mean IoU (human parsing, depth parsing).

The standard definition (as in the HRNet segmentation code and mmsegmentation): per class
IoU_c = TP_c / (TP_c + FP_c + FN_c) over all evaluated pixels of a split, accumulated in one
confusion matrix (not averaged per image); pixels labelled `ignore_index` are excluded; a
class absent from both the prediction and the ground truth has no IoU (NaN) and is left out
of the mean, while a class predicted but never present counts with IoU 0.
"""
from __future__ import annotations

import numpy as np
import torch

IGNORE_INDEX = 255


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


def mean_iou(conf: np.ndarray) -> tuple[float, np.ndarray]:
    """(mIoU, per-class IoU (K,)): the mean over classes present in the prediction or the
    ground truth (NaN entries excluded); mIoU is NaN only if nothing was evaluated."""
    iou = per_class_iou(conf)
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
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.conf = np.zeros((num_classes, num_classes), np.int64)

    def update(self, pred, target) -> None:
        self.conf += confusion_matrix(pred, target, self.num_classes, self.ignore_index)

    def compute(self) -> dict:
        """{"miou", "per_class_iou" (list, None where undefined), "pixel_accuracy"}."""
        miou, iou = mean_iou(self.conf)
        return {"miou": miou, "pixel_accuracy": pixel_accuracy(self.conf),
                "per_class_iou": [None if np.isnan(v) else float(v) for v in iou]}
