"""3D pose metric of ITOP: mAP@10cm, the fraction of joints predicted within 10 cm.

A joint counts as detected when the Euclidean distance between its predicted and true 3D
position (camera frame, mm) is below the threshold (strictly: an error of exactly 100 mm is a
miss). Per joint: the fraction over the samples where the joint is valid; the reported mean is
the mean of the per-joint fractions (the "mean" row of the ITOP / A2J tables), which equals
the fraction over all joints when every joint is valid. Joints never valid are NaN and left
out of the mean.
"""
from __future__ import annotations

import numpy as np
import torch


def _as_numpy(a) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def joint_errors_mm(pred_mm, gt_mm) -> np.ndarray:
    """(N, J, 3) predicted and true 3D joints (mm) -> (N, J) Euclidean errors (mm)."""
    pred, gt = _as_numpy(pred_mm).astype(np.float64), _as_numpy(gt_mm).astype(np.float64)
    if pred.shape != gt.shape or pred.shape[-1] != 3:
        raise ValueError(f"need matching (N, J, 3) arrays, got {pred.shape} and {gt.shape}")
    return np.linalg.norm(pred - gt, axis=-1)


def map_at_10cm(pred_mm, gt_mm, threshold_mm: float = 100.0, visible=None) -> dict:
    """mAP@10cm and mean per-joint error.

    pred_mm, gt_mm: (N, J, 3) in mm; visible: optional (N, J) bool, joints to evaluate
    (e.g. ITOP's is_valid flags); default all.
    Returns {"map": mean_j acc_j, "per_joint": (J,) acc_j = #{n: valid, e_nj < thr} / #{n: valid},
    "mean_error_mm": mean of e_nj over valid joints, "per_joint_error_mm": (J,),
    "num_joints": number of valid joints}. Per-joint arrays are numpy (NaN for joints never valid).
    """
    err = joint_errors_mm(pred_mm, gt_mm)
    valid = np.ones(err.shape, bool) if visible is None else _as_numpy(visible).astype(bool)
    if valid.shape != err.shape:
        raise ValueError(f"visible must be (N, J) = {err.shape}, got {valid.shape}")
    count = valid.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = np.where(count > 0, ((err < threshold_mm) & valid).sum(0) / count, np.nan)
        per_joint_err = np.where(count > 0, np.where(valid, err, 0.0).sum(0) / count, np.nan)
    has = count > 0
    return {"map": float(per_joint[has].mean()) if has.any() else float("nan"),
            "per_joint": per_joint,
            "mean_error_mm": float(err[valid].mean()) if valid.any() else float("nan"),
            "per_joint_error_mm": per_joint_err,
            "num_joints": int(valid.sum())}
