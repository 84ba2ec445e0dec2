"""Frozen backbone features, computed once per (init, split) and cached on disk.

The backbone (scratch = random weights drawn with SCRATCH_SEED, or the init's backbone file,
loaded strictly) runs in eval mode under torch.no_grad on the task's network input of each
sample needed (the training split's samples of every planned fraction file and of val.json;
the test split's samples of test.json). A sample's four branch maps are flattened and
concatenated into one float16 row (narrow HRNet at 64 px: 8x16x16 + 16x8x8 + 32x4x4 + 64x2x2 =
3,840 values) of `<cache>/features/<split>.npy`, read back memory-mapped; the folder appears
complete or not at all (hcmoco.atomic). `FeatureData` serves these rows as a TaskData's batch
input, so training and hcmoco.train.task_eval.evaluate run unchanged on the cache.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from hcmoco import tasks
from hcmoco.atomic import atomic_directory
from hcmoco.errors import HcmocoError
from hcmoco.models import HRNet
from hcmoco.train.finetune import build_backbone
from hcmoco.train.task_data import TaskData

SCRATCH_SEED = 0  # one random backbone per job: the seeds vary the subset and the head


def flatten(feats: Sequence[torch.Tensor]) -> torch.Tensor:
    """4 branch maps (B, C_k, H_k, W_k) -> (B, sum C_k H_k W_k) rows."""
    return torch.cat([f.flatten(1) for f in feats], 1)


def unflatten(rows: torch.Tensor, shapes: Sequence[Sequence[int]]) -> list[torch.Tensor]:
    """Inverse of `flatten` for per-sample branch shapes [(C, H, W), ...]."""
    sizes = [int(np.prod(s)) for s in shapes]
    return [part.reshape(len(rows), *s) for part, s in zip(rows.split(sizes, 1), shapes)]


class FeatureData:
    """A TaskData whose `batch(indices)` carries the cached feature rows of those samples as
    `input` (float32) beside the task's targets; every other attribute is the TaskData's."""

    def __init__(self, data: TaskData, rows: np.ndarray, indices: np.ndarray, shapes: list):
        self.data, self.rows, self.indices, self.shapes = data, rows, np.asarray(indices), shapes

    def __getattr__(self, name):
        return getattr(self.data, name)

    def features(self, indices: np.ndarray) -> torch.Tensor:
        indices = np.asarray(indices, np.int64)
        at = np.searchsorted(self.indices, indices).clip(max=len(self.indices) - 1)
        if len(indices) and not np.array_equal(self.indices[at], indices):
            missing = sorted(set(indices.tolist()) - set(self.indices.tolist()))[:3]
            raise HcmocoError(f"{self.data.split.path}: samples {missing} have no cached features")
        return torch.from_numpy(np.asarray(self.rows[at], np.float32))

    def batch(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        batch = self.data.batch(indices, with_input=False)  # the targets (pose3d's z_ref comes with its input)
        batch["input"] = self.features(indices)
        return batch


def _compute(backbone: HRNet, data: TaskData, indices: np.ndarray, folder: Path, name: str,
             batch_size: int, device: torch.device) -> list:
    """Write `<folder>/<name>.npy` (float16 rows) and `<name>_indices.npy`; the branch shapes."""
    shapes, out = None, None
    with torch.no_grad():
        for lo in range(0, len(indices), batch_size):
            x = data.batch(indices[lo:lo + batch_size])["input"].to(device, memory_format=torch.channels_last)
            feats = backbone(x)
            if out is None:
                shapes = [list(f.shape[1:]) for f in feats]
                # written in place: at the paper's sizes the rows do not fit in memory
                out = np.lib.format.open_memmap(folder / f"{name}.npy", "w+", np.float16,
                                                (len(indices), sum(int(np.prod(s)) for s in shapes)))
            rows = flatten(feats).float()
            if not torch.isfinite(rows).all() or rows.abs().max() > np.finfo(np.float16).max:
                raise HcmocoError(f"{data.split.path}: backbone features outside the float16 range "
                                  f"(samples {indices[lo]}..{indices[min(lo + batch_size, len(indices)) - 1]})")
            out[lo:lo + len(rows)] = rows.cpu().numpy().astype(np.float16)
    out.flush()
    np.save(folder / f"{name}_indices.npy", np.asarray(indices, np.int64))
    return shapes


class FeatureCache:
    """The features of one (task, init, backbone) job in `directory` (a resume.checkpoint_dir
    keyed by the inputs and this module's code): computed on first use, reused after a kill."""

    def __init__(self, directory: Path, init: str, backbone_file: Path | None, preset: str, task: str,
                 sources: dict[str, tuple[TaskData, np.ndarray]], batch_size: int, device: torch.device, log=None):
        self.directory, self.init, self.file, self.preset, self.task = directory, init, backbone_file, preset, task
        self.sources, self.batch_size, self.device, self.log = sources, batch_size, device, log
        self._data: dict[str, FeatureData] | None = None

    @property
    def folder(self) -> Path:
        return self.directory / "features"

    def _build(self) -> None:
        started = time.perf_counter()
        torch.manual_seed(SCRATCH_SEED)
        backbone = build_backbone(self.init, self.file, self.preset, tasks.get(self.task).modality)
        backbone.to(self.device, memory_format=torch.channels_last).eval()
        with atomic_directory(self.folder) as tmp:
            shapes = {name: _compute(backbone, data, np.asarray(idx), tmp, name, self.batch_size, self.device)
                      for name, (data, idx) in self.sources.items()}
            (tmp / "meta.json").write_text(json.dumps({"shapes": shapes["train"], "init": self.init,
                                                       "backbone_file": str(self.file)}))
        if self.log:
            self.log.event("features", folder=str(self.folder), seconds=round(time.perf_counter() - started, 2),
                           samples={name: len(idx) for name, (_, idx) in self.sources.items()})

    def get(self) -> dict[str, FeatureData]:
        """{split name: FeatureData}, computing the features unless a complete cache is there."""
        if self._data is None:
            if not (self.folder / "meta.json").is_file():
                self._build()
            elif self.log:
                self.log.event("features_reused", folder=str(self.folder))
            shapes = json.loads((self.folder / "meta.json").read_text())["shapes"]
            self._data = {name: FeatureData(data, np.load(self.folder / f"{name}.npy", mmap_mode="r"),
                                            np.load(self.folder / f"{name}_indices.npy"), shapes)
                          for name, (data, _) in self.sources.items()}
        return self._data
