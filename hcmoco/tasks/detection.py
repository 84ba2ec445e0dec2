"""DensePose R-CNN: fine-tuning and evaluation of the DensePose task's whole-image variant (the paper's setting).

A DensePose split of whole images (hcmoco.prepare.densepose_coco_detection: fields `boxes`,
`dp_xy`, ...) selects the variant hcmoco.tasks.densepose.DensePoseRCNN, which uses these
pieces: `build_detector` puts hcmoco.tasks.densepose_rcnn's Faster R-CNN + DensePose RoI head on
the task's HRNet backbone, with the settings of `finetune.tasks.densepose.rcnn`;
`detection_batch` turns samples into the detector's images and targets; `detect` gives the
detections that the task scores like the dense head's (GPS / GPSm AP against the split's
COCO-format ground truth).
"""
from __future__ import annotations

import inspect

import numpy as np
import torch
from torch import nn
from torchvision.models.detection import FasterRCNN

from hcmoco.config import ParamsError
from hcmoco.processed.transforms import normalise_rgb
from hcmoco.models import HRNet
from hcmoco.tasks.densepose_rcnn import DensePoseRCNN, build_densepose_rcnn, densepose_results
from hcmoco.precision import autocast

DETECTION_FIELDS = ("rgb", "image_size", "boxes", "box_count", "dp_xy", "dp_uv", "dp_part", "dp_count")
RCNN_KEY = "finetune.tasks.densepose.rcnn"
# the images are normalised here and already at their final size (longer side = resolution)
_FIXED = ("min_size", "max_size", "image_mean", "image_std", "num_classes")


def detector_options(cfg: dict) -> dict:
    """`rcnn.detector`: extra keyword arguments of torchvision's FasterRCNN (rpn_*, box_*),
    checked by name before any work starts."""
    options = dict(cfg.get("detector") or {})
    known = set(inspect.signature(FasterRCNN.__init__).parameters) - {"self", "backbone", "kwargs", *_FIXED}
    for key in options:
        if key not in known:
            raise ParamsError(f"{RCNN_KEY}.detector.{key}: not an option of torchvision's FasterRCNN "
                              f"(known: {', '.join(sorted(known))})")
    return options


def build_detector(backbone: HRNet, cfg: dict, resolution: int) -> DensePoseRCNN:
    """DensePose R-CNN on `backbone` with the `rcnn` settings; inputs are used at their size."""
    return build_densepose_rcnn(
        backbone, neck=cfg["neck"], fpn_channels=cfg["fpn_channels"], roi_resolution=cfg["roi_resolution"],
        head_convs=cfg["head_convs"], head_channels=cfg["head_channels"],
        representation_size=cfg["representation_size"], part_weight=cfg["part_weight"],
        point_weight=cfg["point_weight"], min_size=resolution, max_size=resolution,
        image_mean=[0.0, 0.0, 0.0], image_std=[1.0, 1.0, 1.0], **detector_options(cfg))


def detection_batch(arrays: dict[str, np.ndarray], device: torch.device) -> tuple[list, list]:
    """Samples -> (images: normalised (3, h, w) tensors cut to each image's size, targets:
    boxes, labels and per-box DensePose points as hcmoco.tasks.densepose_rcnn documents)."""
    x = normalise_rgb(arrays["rgb"]).to(device)
    images, targets = [], []
    for b, (h, w) in enumerate(np.asarray(arrays["image_size"], np.int64)):
        images.append(x[b, :, :h, :w])
        n = int(arrays["box_count"][b])
        counts = arrays["dp_count"][b, :n]
        xy, uv, part = arrays["dp_xy"][b], arrays["dp_uv"][b], arrays["dp_part"][b]
        t = {"boxes": torch.from_numpy(np.asarray(arrays["boxes"][b, :n], np.float32)).to(device),
             "labels": torch.ones(n, dtype=torch.int64, device=device)}
        for key, column in (("dp_x", xy[..., 0]), ("dp_y", xy[..., 1]), ("dp_I", part.astype(np.float32)),
                            ("dp_U", uv[..., 0]), ("dp_V", uv[..., 1])):
            t[key] = [torch.from_numpy(np.ascontiguousarray(column[m, :c], np.float32)) for m, c in enumerate(counts)]
        targets.append(t)
    return images, targets


def detection_loss(model: DensePoseRCNN, arrays: dict[str, np.ndarray], device: torch.device) -> torch.Tensor:
    """Sum of the RPN, box and DensePose losses of one training batch."""
    images, targets = detection_batch(arrays, device)
    return sum(model(images, targets).values())


def detect(model: nn.Module, data, indices: np.ndarray, *, device: torch.device, batch_size: int,
           precision: str) -> list[dict]:
    """Detections (hcmoco.eval.densepose format, IUV over the box) on samples `indices`, whose
    sample index is the ground truth's image id."""
    model.eval()
    dets = []
    for lo in range(0, len(indices), batch_size):
        ids = indices[lo:lo + batch_size]
        images, _ = detection_batch(data.arrays(ids), device)
        with torch.no_grad(), autocast(precision, device):
            outputs = model(images)
        for i, out in zip(ids, outputs):
            dets += densepose_results({k: v.float() if v.is_floating_point() else v for k, v in out.items()},
                                      image_id=int(i))
    return dets
