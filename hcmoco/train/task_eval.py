"""Evaluate a fine-tuned model on a list of samples of a processed split (METHOD.md 5 metrics).

`evaluate` returns {"metric": <main metric name>, "value": <its value>, "tiebreak", "num_samples",
...details}:
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

from hcmoco.synth import PART_NAMES, iuv_to_surface
from hcmoco.eval import SegmentationMeter, best_gps_per_person, evaluate_densepose, map_at_10cm, surface_distance
from hcmoco.eval.densepose import DENSEPOSE_KAPPA
from hcmoco.eval.densepose_geodesic import GeodesicGPS
from hcmoco.errors import HcmocoError
from hcmoco.tasks import a2j_decode, decode_iuv, iuv_to_uint8, uvd_to_xyz_mm
from hcmoco.train.detection import detect
from hcmoco.train.runtime import autocast
from hcmoco.train.task_data import NUM_CLASSES, TaskData

MAIN_METRIC = {"parsing": "miou", "depth_parsing": "miou", "pose3d": "map_10cm", "densepose": "gps_ap"}
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


def _outputs(model: nn.Module, data: TaskData, indices: np.ndarray, batch_size: int, device: torch.device,
             precision: str):
    for lo in range(0, len(indices), batch_size):
        batch = data.batch(indices[lo:lo + batch_size])
        with torch.no_grad(), autocast(precision, device):
            out = model(batch["input"].to(device))
        yield indices[lo:lo + batch_size], batch, out


def _pose3d(out: dict, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """A2J output -> (joints (B, J, 2) image pixels, (B, J, 3) camera mm); the crop is the image."""
    xy, d = a2j_decode(out)
    xy = xy.cpu()
    return xy, uvd_to_xyz_mm(xy, batch["z_ref"][:, None] + d.cpu(), batch["cam"])


def _detection(image_id: int, iuv: np.ndarray, prob: np.ndarray) -> dict | None:
    """One person detection from a whole-image IUV: box = the predicted foreground's tight box,
    score = mean confidence of the predicted part there (ranks images for the AP)."""
    fg = iuv[..., 0] > 0
    if not fg.any():
        return None  # nothing predicted: a miss
    ys, xs = np.nonzero(fg)
    box = [float(xs.min()), float(ys.min()), float(xs.max() + 1 - xs.min()), float(ys.max() + 1 - ys.min())]
    return {"image_id": int(image_id), "bbox": box, "score": float(prob[fg].mean()), "iuv": iuv,
            "iuv_frame": "image"}


def _dense_detections(model: nn.Module, data: TaskData, indices: np.ndarray, batch_size: int,
                      device: torch.device, precision: str) -> list[dict]:
    """The dense head's output as one detection per image (see `_detection`)."""
    dets = []
    for ids, _, out in _outputs(model, data, indices, batch_size, device, precision):
        iuv = decode_iuv({k: v.float() for k, v in out.items()}).cpu().numpy()
        prob = torch.softmax(out["part"].float(), 1).amax(1).cpu().numpy()
        dets += [d for d in map(_detection, ids, iuv, prob) if d is not None]
    return dets


def surface_distance_for(data: TaskData):
    """(distance function, kappa): rest-pose surface points on SynthHuman; on DensePose-COCO the
    geodesic distances on the SMPL surface of the official evaluator, with its per-part kappa,
    from the evaluation files the split's index names (`eval_data`)."""
    if data.split.index.get("generator", {}).get("name") == "synthhuman":
        return surface_distance(iuv_to_surface), DENSEPOSE_KAPPA
    if "eval_data" in data.split.index:
        geo = GeodesicGPS(data.split.index["eval_data"])
        return geo, geo.kappa
    raise HcmocoError(f"{data.split.path / 'index.json'}: eval_data: the DensePose evaluation files "
                      f"(SMPL geodesics) are not named; re-run the preprocessor")


def evaluate(task: str, model: nn.Module, data: TaskData, indices, *, device: torch.device,
             batch_size: int = 64, precision: str = "fp32", full: bool = True, miou: str = "present",
             densepose_box_ignore: str = "per_threshold") -> dict:
    """Metrics of `model` (input -> head output) on samples `indices` of `data`; model is left
    in eval mode. full=False computes the main metric only (cheaper, for model selection).
    miou, densepose_box_ignore: the metric conventions (module docstring; `eval_conventions`)."""
    indices = np.asarray(indices, np.int64)
    model.eval()
    result: dict = {"metric": MAIN_METRIC[task], "num_samples": int(len(indices))}
    if task in ("parsing", "depth_parsing"):
        meter = SegmentationMeter(NUM_CLASSES, convention=miou)
        for _, batch, out in _outputs(model, data, indices, batch_size, device, precision):
            meter.update(out.argmax(1).cpu(), batch["parsing"])
        seg = meter.compute()
        result.update(value=seg["miou"], tiebreak=seg["pixel_accuracy"], pixel_accuracy=seg["pixel_accuracy"],
                      per_class_iou=dict(zip(PART_NAMES, seg["per_class_iou"])), miou_convention=miou)
    elif task == "pose3d":
        pred, gt, vis = [], [], []
        for _, batch, out in _outputs(model, data, indices, batch_size, device, precision):
            pred.append(_pose3d(out, batch)[1])
            gt.append(batch["kp3d"])
            vis.append(batch["visible"])
        m = map_at_10cm(torch.cat(pred), torch.cat(gt), visible=torch.cat(vis))
        joints = data.split.index.get("joints") or [str(j) for j in range(len(m["per_joint"]))]
        result.update(value=m["map"], tiebreak=-m["mean_error_mm"], mean_error_mm=m["mean_error_mm"],
                      per_joint=dict(zip(joints, m["per_joint"].tolist())),
                      per_joint_error_mm=dict(zip(joints, m["per_joint_error_mm"].tolist())))
    elif task == "densepose":
        dets = (detect(model, data, indices, device=device, batch_size=batch_size, precision=precision)
                if data.detection else _dense_detections(model, data, indices, batch_size, device, precision))
        gt, (distance, kappa) = data.densepose_gt(indices), surface_distance_for(data)
        for mode in ("gps", "gpsm") if full else ("gps",):
            stats = evaluate_densepose(gt, dets, distance, kappa=kappa, mode=mode, box_ignore=densepose_box_ignore)
            result[mode] = {k: v for k, v in stats.items() if k not in ("mode", "box_ignore", "num_images")}
        per_person = best_gps_per_person(gt, dets, distance, kappa)
        mean_gps = float(np.mean(per_person)) if per_person else float("nan")
        result.update(value=result["gps"]["AP"], tiebreak=mean_gps, mean_gps=mean_gps, num_detections=len(dets),
                      setting="detection" if data.detection else "dense", densepose_box_ignore=densepose_box_ignore)
        if full:
            result["gpsm_ap"] = result["gpsm"]["AP"]
    else:
        raise HcmocoError(f"unknown task {task!r} (known: {', '.join(MAIN_METRIC)})")
    return finite(result)


def predict(task: str, model: nn.Module, data: TaskData, indices, *, device: torch.device,
            precision: str = "fp32") -> dict[str, np.ndarray]:
    """The predictions of `model` on samples `indices` of `data`, in one batch, drawable:
    `index` (the indices), and parsing / depth_parsing: `parsing` uint8 (K, H, W) argmax labels;
    densepose (the dense head): `iuv` uint8 (K, H, W, 3) = (part, U*255, V*255); pose3d: `kp3d`
    float32 (K, J, 3) camera mm and `kp2d` float32 (K, J, 2) image pixels (pixel i spans [i, i+1))."""
    indices = np.asarray(indices, np.int64)
    if data.detection:
        raise HcmocoError(f"{data.split.path}: predictions are drawn for the dense head, not DensePose R-CNN")
    model.eval()
    _, batch, out = next(_outputs(model, data, indices, max(len(indices), 1), device, precision))
    result = {"index": indices}
    if task in ("parsing", "depth_parsing"):
        result["parsing"] = out.argmax(1).to(torch.uint8).cpu().numpy()
    elif task == "pose3d":
        xy, xyz = _pose3d(out, batch)
        result.update(kp3d=xyz.numpy().astype(np.float32), kp2d=xy.numpy().astype(np.float32))
    elif task == "densepose":
        result["iuv"] = iuv_to_uint8(decode_iuv({k: v.float() for k, v in out.items()})).cpu().numpy()
    else:
        raise HcmocoError(f"unknown task {task!r} (known: {', '.join(MAIN_METRIC)})")
    return result
