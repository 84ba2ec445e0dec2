"""Evaluate a fine-tuned model on a list of samples of a processed split (docs/METHOD.md 5 metrics).

`evaluate` returns {"metric": <the task's main metric>, "num_samples", "value": <its value>,
"tiebreak", ...details}; the task computes them (`Task.evaluate`, hcmoco.tasks.<task>):
| task | main metric | tiebreak | details |
|---|---|---|---|
| parsing, depth_parsing | miou (25 classes, one confusion matrix) | pixel accuracy | per_class_iou |
| pose3d | map_10cm (mean of per-joint accuracies) | -mean_error_mm | per_joint, per_joint_error_mm |
| densepose | gps_ap (COCOeval-style AP over GPS) | mean_gps | gps / gpsm summaries (full=True) |
`tiebreak` (higher is better) orders states whose main metric ties, e.g. a GPS AP still 0 early in
training, where the per-person mean GPS already moves. Values are fractions (0..1), as the metric
functions return them; undefined values are None.

Metric conventions (params `finetune.miou`, `finetune.densepose_box_ignore`; `eval_conventions`
reads them, default = the default profile's): mIoU "present" (mean over classes occurring in
the prediction or ground truth) or "all_classes" (HRNet-Seg / HCMoCo: absent classes IoU 0,
mean over all 25), hcmoco.eval.segmentation; DensePose AP box-IoU ignore rule "per_threshold"
or "last_threshold" (the official detectron2 evaluator's), hcmoco.eval.densepose. The result
records the convention used ("miou_convention", "densepose_box_ignore").

`predict` gives the predictions of a few samples in a drawable form (the report's qualitative
sheets, hcmoco.results.qualitative).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from hcmoco.errors import HcmocoError

CONVENTION_DEFAULTS = {"miou": "present", "densepose_box_ignore": "per_threshold"}
# test samples whose predictions a run keeps (the first ones of test.json): one small batch
PREDICTION_SAMPLES = 4


def eval_conventions(cfg: dict) -> dict:
    """The metric conventions of the `finetune` params section as `evaluate` keywords (a key
    absent there keeps the default profile's convention)."""
    return {k: cfg.get(k, v) for k, v in CONVENTION_DEFAULTS.items()}


def finite(x):
    """NaN / inf -> None, recursively, numpy -> Python: metrics JSON stays strict JSON."""
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [finite(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x.item() if isinstance(x, np.generic) else x


def _task(task, data):
    """The task object of `data` (its variant for the split); `task` must name the same task."""
    if getattr(task, "name", task) != data.task.name:
        raise HcmocoError(f"{data.split.path}: read for task {data.task.name!r}, not {getattr(task, 'name', task)!r}")
    return data.task


def evaluate(task, model: nn.Module, data, indices, *, device: torch.device, batch_size: int = 64,
             precision: str = "fp32", full: bool = True, miou: str = "present",
             densepose_box_ignore: str = "per_threshold") -> dict:
    """Metrics of `model` (input -> head output) on samples `indices` of `data` (a TaskData of
    task `task`); model is left in eval mode. full=False computes the main metric only (cheaper,
    for model selection). miou, densepose_box_ignore: the metric conventions (module docstring)."""
    task = _task(task, data)
    indices = np.asarray(indices, np.int64)
    model.eval()
    result = {"metric": task.metric, "num_samples": int(len(indices))}
    result.update(task.evaluate(model, data, indices, device=device, batch_size=batch_size, precision=precision,
                                full=full, miou=miou, densepose_box_ignore=densepose_box_ignore))
    return finite(result)


def predict(task, model: nn.Module, data, indices, *, device: torch.device,
            precision: str = "fp32") -> dict[str, np.ndarray]:
    """The predictions of `model` on samples `indices` of `data`, in one batch, drawable:
    `index` (the indices) and the task's `prediction_keys`: parsing / depth_parsing `parsing`
    uint8 (K, H, W) argmax labels; densepose (the dense head) `iuv` uint8 (K, H, W, 3) = (part,
    U*255, V*255); pose3d `kp3d` float32 (K, J, 3) camera mm and `kp2d` float32 (K, J, 2) image
    pixels (pixel i spans [i, i+1))."""
    task = _task(task, data)
    indices = np.asarray(indices, np.int64)
    if not task.keeps_predictions:
        raise HcmocoError(f"{data.split.path}: predictions are drawn for the dense head, not {type(task).__name__}")
    model.eval()
    return {"index": indices, **task.predict(model, data, indices, device=device, precision=precision)}
