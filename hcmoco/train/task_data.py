"""A processed split read for one downstream task: its samples' fields and batches.

The task (hcmoco.tasks; a name or the object) says which fields it needs and how they become
network input and targets (`Task.batch`); the split's fields pick the task's variant
(`Task.variant`, e.g. DensePose R-CNN on whole images), which is `TaskData.task` from then on.
A split lacking a field the task needs is one error naming its index.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hcmoco import tasks
from hcmoco.errors import HcmocoError
from hcmoco.processed.shards import ProcessedSplit
from hcmoco.tasks import Task, label_counts
from hcmoco.tasks.parsing import NUM_CLASSES


class TaskData:
    """One processed split read for one task: `batch(indices)` -> tensors (Task.batch)."""

    def __init__(self, task: str | Task, split_dir: str | Path):
        task = tasks.get(task)
        self.split = ProcessedSplit(split_dir)
        self.task = task.variant(self.split.fields)
        self.fields = self.task.fields
        missing = [f for f in self.fields if f not in self.split.fields]
        if missing:
            raise HcmocoError(f"{self.split.path / 'index.json'}: task {task.name} needs field(s) "
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
        try:
            return self.task.batch(self.arrays(indices), with_input)
        except HcmocoError as err:
            raise HcmocoError(f"{self.split.path}: {err}") from None

    def class_counts(self, indices: np.ndarray, chunk: int = 256) -> np.ndarray:
        """(25,) parsing pixel counts over `indices` (for the ENet class weights)."""
        counts = np.zeros(NUM_CLASSES, np.int64)
        for lo in range(0, len(indices), chunk):
            counts += label_counts(self.split.take(indices[lo:lo + chunk], ["parsing"])["parsing"], NUM_CLASSES)
        return counts

