"""Downstream tasks of HCMoCo (docs/METHOD.md 5) and their registry.

Each task is one object defined in one module, `hcmoco/tasks/<name>.py` (`TASK`): the backbone
modality, the processed fields and how they become a batch, the head and loss, the evaluation
(metrics and the tiebreak of model selection), the predictions kept and how they are drawn,
and the title and metrics the tables, plots and summary show (interface: hcmoco.tasks.base.Task).
Fine-tuning, the frozen protocol, the data reader and the results use the task object alone;
this registry is the one place that lists the tasks. Helpers shared by tasks stay in their own
modules (segmentation.py, a2j.py, densepose_rcnn.py).

Adding a task: write `hcmoco/tasks/<name>.py` with a Task subclass and `TASK = <it>()`, add it
to TASKS below, and give it a domain and split settings in the params (splits.tasks.<name>,
finetune.tasks.<name>; the params schema lists the task names). Nothing else changes: the
grid, the frozen protocol and the results iterate over the params and this registry.

A task may take another form for some data: `Task.variant(fields)` picks it from the fields of
the processed split, so the params choose it through the task's domain (DensePose R-CNN on
whole images is the DensePose task's variant for a split with person boxes).
"""
from . import densepose, depth_parsing, parsing, pose3d
from .a2j import (A2JHead, a2j_decode, a2j_loss, a2j_loss_terms, anchor_grid,
                  depth_pixel_ratio, person_depth_window, uvd_to_xyz_mm,
                  xyz_mm_to_uvd)
from .base import Task, TaskModel, unknown
from .densepose import (NUM_PARTS, DensePoseHead, decode_iuv, densepose_loss,
                        densepose_loss_terms, iuv_to_uint8, split_iuv, point_targets)
from .segmentation import (IGNORE_INDEX, SegmentationHead, concat_branches, enet_class_weights,
                           label_counts, segmentation_loss)

# the order of the tables, summary and figures
TASKS: dict[str, Task] = {t.name: t for t in (parsing.TASK, depth_parsing.TASK, pose3d.TASK, densepose.TASK)}
# the parsing task of the versatility experiments (hcmoco.train.versatility): its domain holds RGB,
# depth and labels
VERSATILITY: Task = depth_parsing.TASK


def get(task: "str | Task") -> Task:
    """The task named `task` (a Task passes through); an unknown name is one error naming it."""
    if isinstance(task, Task):
        return task
    if task not in TASKS:
        raise unknown(task, TASKS)
    return TASKS[task]


__all__ = [
    "TASKS", "VERSATILITY", "Task", "TaskModel", "get",
    "A2JHead", "a2j_decode", "a2j_loss", "a2j_loss_terms", "anchor_grid",
    "depth_pixel_ratio", "person_depth_window", "uvd_to_xyz_mm", "xyz_mm_to_uvd",
    "NUM_PARTS", "DensePoseHead", "decode_iuv", "densepose_loss", "densepose_loss_terms",
    "iuv_to_uint8", "point_targets", "split_iuv",
    "IGNORE_INDEX", "SegmentationHead", "concat_branches", "enet_class_weights", "label_counts",
    "segmentation_loss",
]
