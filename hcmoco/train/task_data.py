"""Downstream-task batches from the processed format (METHOD.md 5): network input + targets.

| task | domain | input | targets |
|---|---|---|---|
| parsing | synth_h36m | RGB | 25-class parsing |
| depth_parsing | synth_parsing4k | masked depth | 25-class parsing |
| pose3d | synth_itop | depth with background, cleared by `person_depth_window` | A2J targets from kp3d |
| densepose | synth_densepose | RGB (the crop is the whole image) | I, U, V (dense; sparse points + coarse mask on DensePose-COCO) |

A DensePose split of whole images (fields `boxes`, `dp_xy`, ...) feeds DensePose R-CNN instead:
`TaskData.detection` is set and `arrays` gives the samples to hcmoco.train.detection.

Pose3d input is built from the depth map alone (`pose3d_inputs`); the joints only enter the
targets (`pose3d_targets`): the public ITOP code cleared the background with ground-truth
joint depths, which leaks the answer into the test input.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from hcmoco.processed.shards import ProcessedSplit
from hcmoco.processed.transforms import normalise_depth, normalise_rgb
from hcmoco.errors import HcmocoError
from hcmoco.train.detection import DETECTION_FIELDS, is_detection_split
from hcmoco.tasks import label_counts, person_depth_window, point_targets, split_iuv, xyz_mm_to_uvd

NUM_CLASSES = 25
TASK_MODALITY = {"parsing": "rgb", "depth_parsing": "depth", "pose3d": "depth", "densepose": "rgb"}
TASK_FIELDS = {"parsing": ("rgb", "parsing"), "depth_parsing": ("depth", "parsing"),
               "pose3d": ("depth", "cam", "kp3d"), "densepose": ("rgb", "iuv")}
# DensePose-COCO crops carry sparse points instead of a dense IUV map (hcmoco.prepare.densepose_coco_real)
SPARSE_DENSEPOSE_FIELDS = ("rgb", "parsing", "dp_points", "dp_part", "dp_count")
# person_depth_window's window [z_ref - 0.6 m, z_ref + 0.8 m]: half of it sets A2J's depth scale
DEPTH_HALF_WINDOW_M = 0.7


def _labels(parsing: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(parsing.astype(np.int64))


def pose3d_inputs(depth_mm: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """(B, H, W) uint16 depth with background -> ((B, 3, H, W) input, (B,) z_ref metres).

    Per sample the background is cleared by `person_depth_window` (from the image alone) and the
    remaining depths are given in metres relative to the person's reference depth z_ref (the
    depth targets' origin too), 0 where there is no reading; replicated to 3 channels.
    """
    cleared, z_ref = zip(*(person_depth_window(d) for d in np.asarray(depth_mm)))
    metres = np.stack(cleared).astype(np.float32) / 1000.0
    z_ref = np.asarray(z_ref, np.float32)
    centred = np.where(metres > 0, metres - z_ref[:, None, None], 0.0).astype(np.float32)
    return torch.from_numpy(np.repeat(centred[:, None], 3, axis=1)), z_ref


def pose3d_targets(kp3d_mm: np.ndarray, cam: np.ndarray, z_ref: np.ndarray) -> dict[str, torch.Tensor]:
    """A2J targets: joints projected to crop pixels (the crop is the image), depth in metres
    relative to z_ref; plus what evaluation needs (kp3d mm, intrinsics, z_ref)."""
    kp3d = np.asarray(kp3d_mm, np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        uv, z = xyz_mm_to_uvd(kp3d, np.asarray(cam, np.float32))
    valid = kp3d[..., 2] > 0  # ITOP's is_valid; SynthHuman knows every joint
    return {"target_xy": torch.from_numpy(np.where(valid[..., None], uv, 0.0).astype(np.float32)),
            "target_depth": torch.from_numpy(np.where(valid, z - z_ref[:, None], 0.0).astype(np.float32)),
            "visible": torch.from_numpy(valid), "kp3d": torch.from_numpy(kp3d),
            "cam": torch.from_numpy(np.asarray(cam, np.float32)), "z_ref": torch.from_numpy(z_ref)}


def build_batch(task: str, arrays: dict[str, np.ndarray], with_input: bool = True) -> dict[str, torch.Tensor]:
    """Tensors of one batch from the arrays of TASK_FIELDS[task] (see the module table);
    `with_input=False` leaves out the network input where the targets do not need it (a head
    trained on cached features)."""
    if task == "parsing":
        return {"parsing": _labels(arrays["parsing"]), **({"input": normalise_rgb(arrays["rgb"])} if with_input else {})}
    if task == "depth_parsing":
        return {"parsing": _labels(arrays["parsing"]),
                **({"input": normalise_depth(arrays["depth"])} if with_input else {})}
    if task == "pose3d":
        x, z_ref = pose3d_inputs(arrays["depth"])
        return {"input": x, **pose3d_targets(arrays["kp3d"], arrays["cam"], z_ref)}
    if task == "densepose":
        if "iuv" in arrays:
            part, u, v = split_iuv(torch.from_numpy(arrays["iuv"]))
        else:
            part, u, v = point_targets(arrays["parsing"], arrays["dp_points"], arrays["dp_part"], arrays["dp_count"])
        return {"part": part, "u": u, "v": v, **({"input": normalise_rgb(arrays["rgb"])} if with_input else {})}
    raise HcmocoError(f"unknown task {task!r} (known: {', '.join(TASK_FIELDS)})")


class TaskData:
    """One processed split read for one task: `batch(indices)` -> tensors (build_batch)."""

    def __init__(self, task: str, split_dir: str | Path):
        if task not in TASK_FIELDS:
            raise HcmocoError(f"unknown task {task!r} (known: {', '.join(TASK_FIELDS)})")
        self.task, self.split = task, ProcessedSplit(split_dir)
        self.fields = TASK_FIELDS[task]
        # whole images with boxes: DensePose R-CNN (hcmoco.train.detection)
        self.detection = task == "densepose" and is_detection_split(self.split.fields)
        if self.detection:
            self.fields = DETECTION_FIELDS
        elif task == "densepose" and "iuv" not in self.split.fields and "dp_points" in self.split.fields:
            self.fields = SPARSE_DENSEPOSE_FIELDS
        missing = [f for f in self.fields if f not in self.split.fields]
        if missing:
            raise HcmocoError(f"{self.split.path / 'index.json'}: task {task} needs field(s) "
                              f"{', '.join(missing)} (has {', '.join(sorted(self.split.fields))})")
        self.resolution = int(self.split.index["resolution"])
        self.domain = self.split.index["domain"]

    def __len__(self) -> int:
        return len(self.split)

    @property
    def num_joints(self) -> int:
        return int(self.split.fields["kp3d"]["shape"][0]) if "kp3d" in self.split.fields else 0

    def arrays(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The task's fields of samples `indices`, as stored."""
        return self.split.take(np.asarray(indices), self.fields)

    def batch(self, indices: np.ndarray, with_input: bool = True) -> dict[str, torch.Tensor]:
        if self.detection:
            raise HcmocoError(f"{self.split.path}: whole-image DensePose samples feed a detector "
                              f"(hcmoco.train.detection.detection_batch), not a dense batch")
        return build_batch(self.task, self.arrays(indices), with_input)

    def class_counts(self, indices: np.ndarray, chunk: int = 256) -> np.ndarray:
        """(25,) parsing pixel counts over `indices` (for the ENet class weights)."""
        counts = np.zeros(NUM_CLASSES, np.int64)
        for lo in range(0, len(indices), chunk):
            counts += label_counts(self.split.take(indices[lo:lo + chunk], ["parsing"])["parsing"], NUM_CLASSES)
        return counts

    def densepose_gt(self, indices: np.ndarray) -> dict:
        """The split's COCO-format DensePose annotations restricted to images `indices`
        (image id = sample index, so a validation carve of train reads train's file)."""
        path = self.split.path / "densepose_coco.json"
        if not path.is_file():
            raise HcmocoError(f"{path}: missing (DensePose evaluation needs the split's annotations)")
        coco = json.loads(path.read_text())
        keep = {int(i) for i in indices}
        return {**coco, "images": [im for im in coco["images"] if im["id"] in keep],
                "annotations": [a for a in coco["annotations"] if a["image_id"] in keep]}
