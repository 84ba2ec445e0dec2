"""Pre-training batches: the paired source and the keypoint-only source, 50/50 in every batch.

The two processed splits are concatenated (global index = position in the concatenation, the
memory bank's row). Batch `step` is a pure function of (seed, step): resuming at any step
replays the same batches without storing sampler state.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hcmoco.processed.keypoints import COMMON_JOINTS, root_of, to_common
from hcmoco.processed.sampling import step_generator
from hcmoco.processed.shards import ProcessedSplit
from hcmoco.processed.transforms import downsample_mask, joint_cells, normalise_depth, normalise_keypoints, normalise_rgb
from hcmoco.errors import HcmocoError

FEATURE_STRIDE = 4  # the dense map and the joint cells live at 1/4 resolution


class PretrainingData:
    def __init__(self, splits: list[str | Path]):
        self.splits = [ProcessedSplit(p) for p in splits]
        for s in self.splits:
            if not s.modalities["rgb"] or not s.modalities["kp2d"]:
                raise HcmocoError(f"{s.path}: pre-training needs rgb and kp2d in every source")
        sizes = {s.index["resolution"] for s in self.splits}
        if len(sizes) != 1:
            raise HcmocoError(f"pre-training sources differ in resolution: {sorted(sizes)}")
        self.resolution = sizes.pop()
        self.offsets = np.cumsum([0] + [len(s) for s in self.splits])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def num_joints(self) -> int:
        return len(COMMON_JOINTS)

    def draw(self, seed: int, step: int, batch_size: int) -> np.ndarray:
        """Global indices of batch `step`: an equal share from every source (uniform within it).

        A fixed share, not a weighted draw, keeps the number of depth samples, and so the
        depth encoder's batch shape, constant from step to step.
        """
        gen = step_generator(seed, step)
        shares = np.diff(np.linspace(0, batch_size, len(self.splits) + 1).round().astype(int))
        picks = [torch.randint(len(s), (n,), generator=gen).numpy() + self.offsets[k]
                 for k, (s, n) in enumerate(zip(self.splits, shares))]
        return np.concatenate(picks)

    def batch(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        """Tensors for global `indices`, in that order (see HCMoCo.forward for the names)."""
        res = self.resolution
        rgb = np.zeros((len(indices), res, res, 3), np.uint8)
        depth = np.zeros((len(indices), res, res), np.uint16)
        kp = np.zeros((len(indices), self.num_joints, 3), np.float32)
        has_depth = np.zeros(len(indices), bool)
        source = np.searchsorted(self.offsets, indices, side="right") - 1
        for s, split in enumerate(self.splits):
            where = np.flatnonzero(source == s)
            if not len(where):
                continue
            fields = ["rgb", "kp2d"] + (["depth"] if split.modalities["depth"] else [])
            got = split.take(indices[where] - self.offsets[s], fields)
            rgb[where] = got["rgb"]
            kp[where] = to_common(got["kp2d"], split.index["layout"], split.index["joints"])
            if "depth" in got:
                depth[where] = got["depth"]
                has_depth[where] = True
        keypoints, visible = normalise_keypoints(kp, root_of(kp))
        grid = res // FEATURE_STRIDE
        return {"rgb": normalise_rgb(rgb), "depth": normalise_depth(depth), "keypoints": keypoints,
                "visible": visible & torch.from_numpy(kp[..., 2] == 2), "has_depth": torch.from_numpy(has_depth),
                "joint_cells": joint_cells(kp, FEATURE_STRIDE, grid),
                "foreground": downsample_mask(depth > 0, FEATURE_STRIDE),
                "index": torch.from_numpy(np.asarray(indices, dtype=np.int64))}
