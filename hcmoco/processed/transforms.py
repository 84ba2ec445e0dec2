"""Batch-level input normalisation (docs/METHOD.md section 1), numpy in, torch out.

All functions work on whole batches taken from the processed format, so a training step
converts one contiguous block instead of looping over samples.
"""
from __future__ import annotations

import numpy as np
import torch

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def normalise_rgb(rgb: np.ndarray) -> torch.Tensor:
    """uint8 (B,H,W,3) -> float32 (B,3,H,W) with ImageNet mean/std."""
    x = (np.asarray(rgb, dtype=np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def normalise_depth(depth: np.ndarray) -> torch.Tensor:
    """uint16 mm (B,H,W) -> float32 (B,3,H,W): metres minus the mean over valid pixels (depth>0),
    invalid pixels 0, replicated to 3 channels (the image backbones take 3 channels)."""
    metres = np.asarray(depth, dtype=np.float32) / 1000.0
    valid = metres > 0
    count = valid.sum(axis=(1, 2))
    mean = np.where(count > 0, metres.sum(axis=(1, 2)) / np.maximum(count, 1), 0.0).astype(np.float32)
    centred = np.where(valid, metres - mean[:, None, None], 0.0).astype(np.float32)
    return torch.from_numpy(np.repeat(centred[:, None], 3, axis=1))


def normalise_keypoints(kp2d: np.ndarray, root: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,J,3) pixel keypoints + (B,2) root -> ((B,J,2) in [-1,1], (B,J) visible).

    Root-relative coordinates scaled by the largest |coordinate| of the sample's labelled
    joints; unlabelled joints (v = 0) are set to 0 (docs/METHOD.md section 1).
    """
    kp2d = np.asarray(kp2d, dtype=np.float32)
    labelled = kp2d[..., 2] > 0
    rel = np.where(labelled[..., None], kp2d[..., :2] - root[:, None, :], 0.0)
    scale = np.abs(rel).reshape(len(rel), -1).max(axis=1)
    rel = rel / np.maximum(scale, 1e-6)[:, None, None]
    return torch.from_numpy(rel.astype(np.float32)), torch.from_numpy(labelled)


def joint_cells(kp2d: np.ndarray, stride: int, grid: int) -> torch.Tensor:
    """(B,J,3) pixel keypoints -> (B,J,2) integer (x, y) cells of the stride-`stride` feature map."""
    cells = np.floor(np.asarray(kp2d)[..., :2] / stride).astype(np.int64)
    return torch.from_numpy(np.clip(cells, 0, grid - 1))


def downsample_mask(mask: np.ndarray, stride: int) -> torch.Tensor:
    """(B,H,W) bool -> (B,H/stride,W/stride) bool: a cell is foreground when most of it is."""
    b, h, w = mask.shape
    blocks = np.asarray(mask, dtype=np.float32).reshape(b, h // stride, stride, w // stride, stride)
    return torch.from_numpy(blocks.mean(axis=(2, 4)) >= 0.5)
