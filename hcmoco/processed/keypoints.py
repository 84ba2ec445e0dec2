"""Keypoint layouts: the public layouts of the processed format and the one shared by pre-training.

`LAYOUTS` names the joints of every layout a processed split can carry (its index's `layout` and
`joints`); the renderer and the real-data preprocessors both write them, in this order.

The keypoint encoder and the sparse losses need one joint indexing across the paired source
(NTU-like, ITOP-15 layout) and the keypoint-only source (MPII-16), as the public code reduces
COCO-17 to 13 joints. The 14 joints below exist in both layouts (MPII's head top stands in for
the head, its thorax for the neck).
"""
from __future__ import annotations

import numpy as np

from hcmoco.errors import HcmocoError

# The public keypoint layouts of the processed format (index.json `layout`, `joints`) and their
# skeleton edges (pairs of joint indices) for drawing.
LAYOUTS: dict[str, list[str]] = {
    "itop15": ["head", "neck", "r_shoulder", "l_shoulder", "r_elbow", "l_elbow", "r_hand", "l_hand",
               "torso", "r_hip", "l_hip", "r_knee", "l_knee", "r_foot", "l_foot"],
    "mpii16": ["r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax",
               "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow",
               "l_wrist"],
    "coco17": ["nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow",
               "r_elbow", "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle",
               "r_ankle"],
}
LAYOUT_EDGES: dict[str, list[tuple[int, int]]] = {
    "itop15": [(0, 1), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7), (1, 8), (8, 9), (8, 10),
               (9, 11), (10, 12), (11, 13), (12, 14)],
    "mpii16": [(0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9), (10, 11),
               (11, 12), (12, 7), (7, 13), (13, 14), (14, 15)],
    "coco17": [(15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
               (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6)],
}

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
