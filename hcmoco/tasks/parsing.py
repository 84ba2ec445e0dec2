"""RGB human parsing (docs/METHOD.md 5): 25-class part segmentation of person crops (domain synth_h36m
by default), the HRNet segmentation head, cross-entropy (optionally ENet class weights) and mIoU
with pixel accuracy as the tiebreak (hcmoco.eval.segmentation; `finetune.miou` convention).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from hcmoco.eval import SegmentationMeter
from hcmoco.processed.transforms import normalise_rgb
from hcmoco.synth import PART_NAMES
from hcmoco.tasks.base import Task, outputs
from hcmoco.tasks.segmentation import SegmentationHead, segmentation_loss

NUM_CLASSES = 25  # background + the 24 body parts of the parsing labels


class Parsing(Task):
    name, title, modality = "parsing", "RGB human parsing", "rgb"
    fields = ("rgb", "parsing")
    metrics = (("miou", "mIoU"),)
    prediction_keys = ("parsing",)
    references = tuple({"dataset": "h36m", "init": "hcmoco", "metric": "miou", "fraction": f, "value": v,
                        "source": "leaderboard"} for f, v in ((1.0, 62.5), (0.2, 60.85), (0.1, 58.28), (0.01, 20.78)))

    def input(self, arrays: dict[str, np.ndarray]) -> torch.Tensor:
        return normalise_rgb(arrays["rgb"])

    def batch(self, arrays, with_input=True):
        return {"parsing": torch.from_numpy(arrays["parsing"].astype(np.int64)),
                **({"input": self.input(arrays)} if with_input else {})}

    def head(self, widths: Sequence[int], cfg: dict, resolution: int, num_joints: int) -> nn.Module:
        return SegmentationHead(widths, NUM_CLASSES)

    def loss(self, head, out, batch, cfg, class_weights):
        return segmentation_loss(out, batch["parsing"], class_weights)

    def evaluate(self, model, data, indices, *, device, batch_size, precision, full, miou, densepose_box_ignore):
        meter = SegmentationMeter(NUM_CLASSES, convention=miou)
        for _, batch, out in outputs(model, data, indices, batch_size, device, precision):
            meter.update(out.argmax(1).cpu(), batch["parsing"])
        seg = meter.compute()
        return {"value": seg["miou"], "tiebreak": seg["pixel_accuracy"], "pixel_accuracy": seg["pixel_accuracy"],
                "per_class_iou": dict(zip(PART_NAMES, seg["per_class_iou"])), "miou_convention": miou}

    def drawable(self, out, batch):
        return {"parsing": out.argmax(1).to(torch.uint8).cpu().numpy()}

    def draw(self, ax, sample, shown, palette, edges):
        ax.imshow(palette[sample["parsing"] if shown is None else shown["parsing"]], interpolation="nearest")


TASK = Parsing()
