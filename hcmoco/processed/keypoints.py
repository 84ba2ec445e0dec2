"""The joint layout shared by the pre-training sources.

The keypoint encoder and the sparse losses need one joint indexing across the paired source
(NTU-like, ITOP-15 layout) and the keypoint-only source (MPII-16), as the public code reduces
COCO-17 to 13 joints. The 14 joints below exist in both layouts (MPII's head top stands in for
the head, its thorax for the neck).
"""
from __future__ import annotations

import numpy as np

from hcmoco.errors import HcmocoError

COMMON_JOINTS = ("head", "neck", "r_shoulder", "l_shoulder", "r_elbow", "l_elbow", "r_wrist", "l_wrist",
                 "r_hip", "l_hip", "r_knee", "l_knee", "r_ankle", "l_ankle")
COMMON_EDGES = [(0, 1), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7), (2, 8), (3, 9), (8, 9),
                (8, 10), (9, 11), (10, 12), (11, 13)]
_SOURCES = {
    "itop15": ("head", "neck", "r_shoulder", "l_shoulder", "r_elbow", "l_elbow", "r_hand", "l_hand",
               "r_hip", "l_hip", "r_knee", "l_knee", "r_foot", "l_foot"),
    "mpii16": ("head_top", "thorax", "r_shoulder", "l_shoulder", "r_elbow", "l_elbow", "r_wrist", "l_wrist",
               "r_hip", "l_hip", "r_knee", "l_knee", "r_ankle", "l_ankle"),
    "coco17": ("nose", None, "r_shoulder", "l_shoulder", "r_elbow", "l_elbow", "r_wrist", "l_wrist",
               "r_hip", "l_hip", "r_knee", "l_knee", "r_ankle", "l_ankle"),
}
HIPS = (COMMON_JOINTS.index("r_hip"), COMMON_JOINTS.index("l_hip"))


def to_common(kp: np.ndarray, layout: str, joint_names: list[str]) -> np.ndarray:
    """(B, J_layout, 3) keypoints -> (B, 14, 3) in COMMON_JOINTS order (absent joints v = 0)."""
    if layout not in _SOURCES:
        raise HcmocoError(f"keypoint layout {layout!r} has no mapping to the common layout "
                          f"(known: {', '.join(_SOURCES)})")
    out = np.zeros((len(kp), len(COMMON_JOINTS), 3), dtype=np.float32)
    for i, name in enumerate(_SOURCES[layout]):
        if name is not None:
            out[:, i] = kp[:, joint_names.index(name)]
    return out


def root_of(kp: np.ndarray) -> np.ndarray:
    """(B, 14, 3) -> (B, 2): mid-hip where both hips are labelled, else the labelled joints' mean."""
    labelled = kp[..., 2] > 0
    hips_ok = labelled[:, HIPS[0]] & labelled[:, HIPS[1]]
    mid_hip = kp[:, list(HIPS), :2].mean(axis=1)
    count = np.maximum(labelled.sum(axis=1, keepdims=True), 1)
    mean = (kp[..., :2] * labelled[..., None]).sum(axis=1) / count
    return np.where(hips_ok[:, None], mid_hip, mean).astype(np.float32)
