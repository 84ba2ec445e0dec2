"""Dense DensePose head on top-down person crops (the crop is the whole image on SynthHuman).

From the fused HRNet features (branches upsampled to stride 4 and concatenated, as the
segmentation head) a 1x1 conv + BN + ReLU, then three 1x1 convs predict per pixel
    part logits (25: 0 background, 1..24 the DensePose parts), U (24) and V (24),
one U, V chart per part as in DensePose R-CNN; all are bilinearly upsampled to the crop size.
Only the U, V channel of a pixel's part is used: the ground-truth part in the loss, the
predicted part (argmax) when decoding.

The DensePose task (`TASK`, its variants `SPARSE` and `RCNN`) is defined at the end.
"""
from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hcmoco.models.hrnet import BN_MOMENTUM
from hcmoco.eval import best_gps_per_person, evaluate_densepose, surface_distance
from hcmoco.eval.densepose import DENSEPOSE_KAPPA
from hcmoco.errors import HcmocoError
from hcmoco.processed.sampling import step_seed
from hcmoco.processed.transforms import normalise_rgb
from hcmoco.tasks.base import Task, outputs
from hcmoco.processed.shards import NUM_PARTS
from hcmoco.tasks.segmentation import IGNORE_INDEX, concat_branches


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


# the task (docs/METHOD.md 5) ---------------------------------------------------------------------------
# DensePose estimation: this dense head on person crops (domain synth_densepose by default; the
# sparse points of DensePose-COCO crops, hcmoco.prepare.densepose_coco_real), or DensePose R-CNN
# on whole images (a split with boxes: hcmoco.prepare.densepose_coco_detection, trained and scored
# by hcmoco.tasks.detection). Both are scored by GPS AP (COCOeval-style AP over GPS; GPSm AP
# and the per-person mean GPS beside it, the tiebreak) against the split's COCO-format ground truth.

# DensePose-COCO crops carry sparse points instead of a dense IUV map
SPARSE_FIELDS = ("rgb", "parsing", "dp_points", "dp_part", "dp_count")


def is_detection_split(fields: dict) -> bool:
    """Whole images with person boxes (DensePose R-CNN's data)."""
    return "boxes" in fields and "dp_xy" in fields


@functools.lru_cache(maxsize=4)
def _annotations(path: Path, stamp: tuple[int, int]) -> dict:
    return json.loads(path.read_text())


def ground_truth(data, indices) -> dict:
    """The split's COCO-format DensePose annotations restricted to images `indices` (image id =
    sample index, so a validation carve of train reads train's file). The file is read once per
    process while it is unchanged: every evaluation of a run reads the same one."""
    path = data.split.path / "densepose_coco.json"
    if not path.is_file():
        raise HcmocoError(f"{path}: missing (DensePose evaluation needs the split's annotations)")
    stat = path.stat()
    coco = _annotations(path, (stat.st_mtime_ns, stat.st_size))
    keep = {int(i) for i in indices}
    return {**coco, "images": [im for im in coco["images"] if im["id"] in keep],
            "annotations": [a for a in coco["annotations"] if a["image_id"] in keep]}


def surface_distance_for(data):
    """(distance function, kappa): rest-pose surface points on SynthHuman; on DensePose-COCO the
    geodesic distances on the SMPL surface of the official evaluator, with its per-part kappa,
    from the evaluation files the split's index names (`eval_data`)."""
    if data.split.index.get("generator", {}).get("name") == "synthhuman":
        from hcmoco.synth import iuv_to_surface

        return surface_distance(iuv_to_surface), DENSEPOSE_KAPPA
    if "eval_data" in data.split.index:
        from hcmoco.eval.densepose_geodesic import GeodesicGPS

        geo = GeodesicGPS(data.split.index["eval_data"])
        return geo, geo.kappa
    raise HcmocoError(f"{data.split.path / 'index.json'}: eval_data: the DensePose evaluation files "
                      f"(SMPL geodesics) are not named; re-run the preprocessor")


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


class DensePose(Task):
    """The dense head on person crops."""

    name, title, modality = "densepose", "DensePose estimation", "rgb"
    fields = ("rgb", "iuv")
    metrics = (("gps_ap", "GPS AP"), ("gpsm_ap", "GPSm AP"), ("mean_gps", "mean GPS"))
    prediction_keys = ("iuv",)
    setting = "dense"
    # detections on whole images (DensePose R-CNN); the crops of dataset densepose_coco use
    # ground-truth boxes, a different setting, so this number only applies to a detector run
    references = ({"dataset": "densepose_coco_detection", "init": "hcmoco", "metric": "gps_ap", "fraction": 1.0,
                   "value": 67.77, "source": "leaderboard"},)

    def variant(self, fields):
        if is_detection_split(fields):
            return RCNN
        if "iuv" not in fields and "dp_points" in fields:
            return SPARSE
        return self

    def batch(self, arrays, with_input=True):
        if "iuv" in arrays:
            part, u, v = split_iuv(torch.from_numpy(arrays["iuv"]))
        else:
            part, u, v = point_targets(arrays["parsing"], arrays["dp_points"], arrays["dp_part"], arrays["dp_count"])
        return {"part": part, "u": u, "v": v, **({"input": normalise_rgb(arrays["rgb"])} if with_input else {})}

    def head(self, widths, cfg, resolution, num_joints):
        return DensePoseHead(widths)

    def loss(self, head, out, batch, cfg, class_weights):
        return densepose_loss(out, batch["part"], batch["u"], batch["v"], cfg["part_weight"], cfg["uv_weight"])

    def detections(self, model, data, indices, *, device, batch_size, precision) -> list[dict]:
        """The dense head's output as one detection per image (see `_detection`)."""
        dets = []
        for ids, _, out in outputs(model, data, indices, batch_size, device, precision):
            iuv = decode_iuv({k: v.float() for k, v in out.items()}).cpu().numpy()
            prob = torch.softmax(out["part"].float(), 1).amax(1).cpu().numpy()
            dets += [d for d in map(_detection, ids, iuv, prob) if d is not None]
        return dets

    def evaluate(self, model, data, indices, *, device, batch_size, precision, full, miou, densepose_box_ignore):
        dets = self.detections(model, data, indices, device=device, batch_size=batch_size, precision=precision)
        gt, (distance, kappa) = ground_truth(data, indices), surface_distance_for(data)
        result = {}
        for mode in ("gps", "gpsm") if full else ("gps",):
            stats = evaluate_densepose(gt, dets, distance, kappa=kappa, mode=mode, box_ignore=densepose_box_ignore)
            result[mode] = {k: v for k, v in stats.items() if k not in ("mode", "box_ignore", "num_images")}
        per_person = best_gps_per_person(gt, dets, distance, kappa)
        mean_gps = float(np.mean(per_person)) if per_person else float("nan")
        result.update(value=result["gps"]["AP"], tiebreak=mean_gps, mean_gps=mean_gps, num_detections=len(dets),
                      setting=self.setting, densepose_box_ignore=densepose_box_ignore)
        if full:
            result["gpsm_ap"] = result["gpsm"]["AP"]
        return result

    def drawable(self, out, batch):
        return {"iuv": iuv_to_uint8(decode_iuv({k: v.float() for k, v in out.items()})).cpu().numpy()}

    def draw(self, ax, sample, shown, palette, edges):
        from hcmoco.processed.preview import iuv_image

        if shown is not None:
            ax.imshow(iuv_image(shown["iuv"]), interpolation="nearest")
        elif "iuv" in sample:
            ax.imshow(iuv_image(sample["iuv"]), interpolation="nearest")
        else:  # DensePose-COCO crops: sparse points only, drawn over the image
            self.draw_input(ax, sample)
            n = int(sample["dp_count"])
            pts = np.asarray(sample["dp_points"])[:n]
            ax.scatter(pts[:, 0] - 0.5, pts[:, 1] - 0.5, s=4, c=palette[np.asarray(sample["dp_part"])[:n]])


class SparseDensePose(DensePose):
    """The dense head on DensePose-COCO crops: sparse points and a coarse mask as targets."""

    fields = SPARSE_FIELDS


class RCNNDensePose(DensePose):
    """DensePose R-CNN on whole images (hcmoco.tasks.detection), settings finetune.tasks.densepose.rcnn;
    per-box outputs: no predictions are kept, and no frozen protocol (no person crops)."""

    setting, keeps_predictions, crops, dense = "detection", False, False, False

    @property
    def fields(self):
        from hcmoco.tasks.detection import DETECTION_FIELDS

        return DETECTION_FIELDS

    def batch(self, arrays, with_input=True):
        raise HcmocoError("whole-image DensePose samples feed a detector (hcmoco.tasks.detection), not a dense batch")

    def model(self, backbone, cfg, data):
        from hcmoco.tasks.detection import build_detector

        return build_detector(backbone, cfg["rcnn"], data.resolution)

    def batch_size(self, finetune, cfg):
        return cfg["rcnn"]["batch_size"]

    def train_loss(self, model, data, picked, device, cfg, class_weights, seed, step):
        from hcmoco.tasks.detection import detection_loss

        torch.manual_seed(step_seed(seed, step))  # RPN / RoI sampling draws from torch's RNG: a function of the step
        return detection_loss(model, data.arrays(picked), device)

    def detections(self, model, data, indices, *, device, batch_size, precision):
        from hcmoco.tasks.detection import detect

        return detect(model, data, indices, device=device, batch_size=batch_size, precision=precision)

    def predict(self, model, data, indices, *, device, precision):
        raise HcmocoError(f"{data.split.path}: predictions are drawn for the dense head, not DensePose R-CNN")


TASK = DensePose()
SPARSE = SparseDensePose()
RCNN = RCNNDensePose()
