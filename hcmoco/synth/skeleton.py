"""SynthHuman skeleton: internal joints, the joints each keypoint layout reads, body shape and forward kinematics.

Body frame: metres, x = the person's left, y = up, z = the direction the person faces; the
pelvis is the origin. Every keypoint layout is a selection of the internal joints by index.
Small 3x3 products are written with einsum (no BLAS) so results never depend on array shapes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hcmoco.processed.keypoints import LAYOUTS

# (joint, parent, rotation key of the bone parent->joint or None for a rigid offset).
# A rotation key names one joint angle of the pose; two bones may share one (the hand centre
# and the hand tip both hang from the wrist).
_TREE: tuple[tuple[str, str | None, str | None], ...] = (
    ("pelvis", None, None),
    ("torso", "pelvis", "lumbar"), ("neck", "torso", "thoracic"),
    ("upper_neck", "neck", "neck"), ("head_centre", "upper_neck", "head"),
    ("head_top", "head_centre", None), ("nose", "head_centre", None),
    ("l_eye", "head_centre", None), ("r_eye", "head_centre", None),
    ("l_ear", "head_centre", None), ("r_ear", "head_centre", None),
    ("r_shoulder", "neck", None), ("l_shoulder", "neck", None),
    ("r_elbow", "r_shoulder", "r_shoulder"), ("l_elbow", "l_shoulder", "l_shoulder"),
    ("r_wrist", "r_elbow", "r_elbow"), ("l_wrist", "l_elbow", "l_elbow"),
    ("r_hand", "r_wrist", "r_wrist"), ("l_hand", "l_wrist", "l_wrist"),
    ("r_hand_tip", "r_wrist", "r_wrist"), ("l_hand_tip", "l_wrist", "l_wrist"),
    ("r_hip", "pelvis", None), ("l_hip", "pelvis", None),
    ("r_knee", "r_hip", "r_hip"), ("l_knee", "l_hip", "l_hip"),
    ("r_ankle", "r_knee", "r_knee"), ("l_ankle", "l_knee", "l_knee"),
    ("r_toe", "r_ankle", "r_ankle"), ("l_toe", "l_ankle", "l_ankle"),
)
JOINT_NAMES: tuple[str, ...] = tuple(name for name, _, _ in _TREE)
JOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(JOINT_NAMES)}
PARENT_INDEX: tuple[int, ...] = tuple(-1 if p is None else JOINT_INDEX[p] for _, p, _ in _TREE)
ROTATION_KEYS: tuple[str, ...] = ("root", "lumbar", "thoracic", "neck", "head",
                                  "r_shoulder", "l_shoulder", "r_elbow", "l_elbow", "r_wrist", "l_wrist",
                                  "r_hip", "l_hip", "r_knee", "l_knee", "r_ankle", "l_ankle")
_BONE_KEY: tuple[int, ...] = tuple(-1 if k is None else ROTATION_KEYS.index(k) for _, _, k in _TREE)

# The internal joint each public joint of a layout (hcmoco.processed.keypoints.LAYOUTS) reads.
_LAYOUT_SOURCES: dict[str, tuple[str, ...]] = {
    "itop15": ("head_centre", "neck", "r_shoulder", "l_shoulder", "r_elbow", "l_elbow", "r_hand",
               "l_hand", "torso", "r_hip", "l_hip", "r_knee", "l_knee", "r_ankle", "l_ankle"),
    "mpii16": ("r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "neck",
               "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow",
               "l_wrist"),
    "coco17": ("nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow",
               "r_elbow", "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle",
               "r_ankle"),
}
if {k: len(v) for k, v in _LAYOUT_SOURCES.items()} != {k: len(v) for k, v in LAYOUTS.items()}:
    raise AssertionError("_LAYOUT_SOURCES does not match hcmoco.processed.keypoints.LAYOUTS")
LAYOUT_JOINT_INDEX: dict[str, np.ndarray] = {
    k: np.array([JOINT_INDEX[src] for src in v]) for k, v in _LAYOUT_SOURCES.items()}

MEAN_HEIGHT = 1.75
# Bone lengths as fractions of standing height (rounded from Drillis & Contini's proportions).
LENGTH_RATIOS: dict[str, float] = {
    "lumbar": 0.130, "thoracic": 0.135, "neck": 0.055, "head": 0.058, "skull": 0.064,
    "shoulder_half_width": 0.106, "shoulder_drop": 0.018, "hip_half_width": 0.052, "hip_drop": 0.030,
    "upper_arm": 0.172, "forearm": 0.150, "hand": 0.085, "thigh": 0.245, "shank": 0.240, "foot": 0.085,
}
SKULL_SHAPE = (0.76, 1.0, 0.90)  # skull half-axes (x, y, z) relative to the "skull" length
FACE_INSET = 0.96  # face points sit just inside the skull so that a seen point lies on the body


@dataclass(frozen=True)
class BodyShape:
    """One person's build: height (m), bone lengths (m), overall girth and a male-female axis."""
    height: float
    lengths: dict[str, float]
    girth: float  # multiplies limb and torso thickness, ~0.8 (slim) .. 1.35 (heavy)
    build: float  # -1 (narrow shoulders, wide hips) .. 1 (broad shoulders, narrow hips)

    def as_vector(self) -> np.ndarray:
        """(2 + len(LENGTH_RATIOS),) all shape parameters, for comparing people."""
        return np.array([self.height, self.girth, self.build] + [self.lengths[k] for k in LENGTH_RATIOS])


def mean_shape() -> BodyShape:
    """The canonical template build: mean height, mean proportions."""
    return BodyShape(MEAN_HEIGHT, {k: r * MEAN_HEIGHT for k, r in LENGTH_RATIOS.items()}, 1.0, 0.0)


def sample_shape(rng: np.random.Generator) -> BodyShape:
    """A random adult: height 1.50-1.95 m, proportions jittered ~3 %, girth and build."""
    height = float(rng.uniform(1.50, 1.95))
    build = float(rng.uniform(-1.0, 1.0))
    jitter = 1.0 + 0.03 * rng.standard_normal(len(LENGTH_RATIOS))
    lengths = {k: r * height * float(j) for (k, r), j in zip(LENGTH_RATIOS.items(), jitter)}
    lengths["shoulder_half_width"] *= 1.0 + 0.06 * build
    lengths["hip_half_width"] *= 1.0 - 0.06 * build
    return BodyShape(height, lengths, float(rng.uniform(0.8, 1.35)), build)


def skull_half_axes(shape: BodyShape) -> np.ndarray:
    return shape.lengths["skull"] * np.array(SKULL_SHAPE)


def rest_offsets(shape: BodyShape) -> np.ndarray:
    """(J, 3) offset of each joint from its parent, in the parent bone's rest frame."""
    n = shape.lengths
    kx, ky, kz = skull_half_axes(shape) * FACE_INSET

    def on_skull(x: float, y: float) -> tuple[float, float, float]:  # front surface point
        return (kx * x, ky * y, kz * math.sqrt(max(0.0, 1.0 - x * x - y * y)))

    eye_y = 0.12
    off = {
        "torso": (0, n["lumbar"], 0), "neck": (0, n["thoracic"], 0), "upper_neck": (0, n["neck"], 0),
        "head_centre": (0, n["head"], 0.01 * shape.height), "head_top": (0, ky, 0),
        "nose": on_skull(0.0, -0.30), "l_eye": on_skull(0.33, eye_y), "r_eye": on_skull(-0.33, eye_y),
        "l_ear": (0.98 * kx, 0.0, -0.1 * kz), "r_ear": (-0.98 * kx, 0.0, -0.1 * kz),
        "r_shoulder": (-n["shoulder_half_width"], -n["shoulder_drop"], -0.01 * shape.height),
        "l_shoulder": (n["shoulder_half_width"], -n["shoulder_drop"], -0.01 * shape.height),
        "r_hip": (-n["hip_half_width"], -n["hip_drop"], 0), "l_hip": (n["hip_half_width"], -n["hip_drop"], 0),
    }
    for side in "rl":
        off.update({f"{side}_elbow": (0, -n["upper_arm"], 0), f"{side}_wrist": (0, -n["forearm"], 0),
                    f"{side}_hand": (0, -0.45 * n["hand"], 0), f"{side}_hand_tip": (0, -n["hand"], 0),
                    f"{side}_knee": (0, -n["thigh"], 0), f"{side}_ankle": (0, -n["shank"], 0),
                    f"{side}_toe": (0, 0, n["foot"])})
    return np.array([off.get(name, (0, 0, 0)) for name in JOINT_NAMES], dtype=np.float64)


# ---- rotations (degrees in, 3x3 out) -------------------------------------------------------
def rot_x(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def compose(*mats: np.ndarray) -> np.ndarray:
    """Product of 3x3 matrices, left to right."""
    out = mats[0]
    for m in mats[1:]:
        out = np.einsum("ij,jk->ik", out, m)
    return out


def limb_rotation(flex: float, abduct: float, twist: float, side: str) -> np.ndarray:
    """Rotation of a hanging limb: flex swings it forward, abduct away from the midline,
    twist about its own axis (mirrored for the two sides so the angles mean the same motion)."""
    sign = 1.0 if side == "l" else -1.0
    return compose(rot_x(-flex), rot_z(sign * abduct), rot_y(sign * twist))


def spine_rotation(flex: float, lateral: float = 0.0, twist: float = 0.0) -> np.ndarray:
    """Rotation of an upward bone: flex bends it forward, lateral to the person's right."""
    return compose(rot_x(flex), rot_z(lateral), rot_y(twist))


def forward_kinematics(shape: BodyShape, pose: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Joint positions (J, 3) and bone frames (J, 3, 3) in the body frame.

    pose maps every ROTATION_KEYS entry to a 3x3 rotation relative to the parent bone; the frame
    of joint j is the orientation of the bone parent->j (the root: the pelvis orientation)."""
    offsets = rest_offsets(shape)
    rotations = [pose[k] for k in ROTATION_KEYS]
    count = len(JOINT_NAMES)
    positions, frames = np.zeros((count, 3)), np.zeros((count, 3, 3))
    for j in range(count):
        parent = PARENT_INDEX[j]
        if parent < 0:
            frames[j] = rotations[0]
            continue
        key = _BONE_KEY[j]
        frames[j] = frames[parent] if key < 0 else compose(frames[parent], rotations[key])
        positions[j] = positions[parent] + np.einsum("ij,j->i", frames[j], offsets[j])
    return positions, frames


# ---- poses ---------------------------------------------------------------------------------
POSE_FAMILIES: tuple[str, ...] = ("standing", "walking", "reaching", "bending", "sitting")
_FAMILY_WEIGHTS = np.array([0.30, 0.20, 0.20, 0.15, 0.15])
_ARM_GESTURES = {  # (flex, abduct, external twist, elbow flex) ranges in degrees
    "hang": ((-15, 30), (3, 25), (-30, 30), (0, 35)),
    "bent": ((-10, 60), (0, 40), (-40, 60), (60, 140)),
    "raise": ((60, 175), (-10, 60), (-30, 30), (0, 40)),
    "side": ((-10, 30), (50, 120), (-40, 40), (0, 90)),
    "cross": ((20, 70), (-30, -5), (-70, -20), (70, 130)),
}


def rest_pose() -> dict[str, np.ndarray]:
    """The template's rest pose: arms out to the sides (near a T-pose), legs slightly apart."""
    pose = {k: np.eye(3) for k in ROTATION_KEYS}
    for side in "rl":
        pose[f"{side}_shoulder"] = limb_rotation(0.0, 80.0, 0.0, side)
        pose[f"{side}_hip"] = limb_rotation(0.0, 6.0, 0.0, side)
    return pose


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _arm_angles(rng: np.random.Generator, gesture: str) -> tuple[float, float, float, float]:
    flex, abduct, twist, elbow = (_uniform(rng, b) for b in _ARM_GESTURES[gesture])
    return flex, abduct, twist, elbow


def sample_pose(rng: np.random.Generator) -> tuple[str, dict[str, np.ndarray]]:
    """A random plausible pose: (family name, rotation per ROTATION_KEYS entry)."""
    family = POSE_FAMILIES[int(rng.choice(len(POSE_FAMILIES), p=_FAMILY_WEIGHTS))]

    def u(lo: float, hi: float) -> float:
        return float(rng.uniform(lo, hi))

    spine = {"lumbar": [u(-5, 10), u(-6, 6), u(-12, 12)], "thoracic": [u(-5, 10), u(-5, 5), u(-10, 10)],
             "neck": [u(-15, 25), u(-10, 10), u(-25, 25)], "head": [u(-15, 15), u(-10, 10), u(-35, 35)]}
    root_pitch = 0.0
    gestures = list(rng.choice(["hang", "hang", "bent", "raise", "side", "cross"], size=2))
    legs = {s: [u(-8, 12), u(0, 12), u(-15, 25), u(0, 12), u(-8, 8)] for s in "rl"}  # hip f/a/t, knee, ankle
    arm_flex_offset = {"r": 0.0, "l": 0.0}
    if family == "walking":
        stride, phase = u(15, 35), u(0, 2 * math.pi)
        for side, sign in (("r", 1.0), ("l", -1.0)):
            swing = sign * stride * math.sin(phase)
            legs[side][0] = swing
            legs[side][3] = u(10, 45) if swing < 0 else u(0, 15)
            arm_flex_offset[side] = -0.6 * swing
        gestures = ["hang", "hang"]
    elif family == "reaching":
        gestures[int(rng.integers(2))] = str(rng.choice(["raise", "raise", "side"]))
        spine["lumbar"][1:] = [u(-15, 15), u(-25, 25)]
        if rng.random() < 0.3:
            legs[str(rng.choice(["r", "l"]))][0] = u(10, 35)
    elif family == "bending":
        root_pitch, spine["lumbar"][0] = u(20, 70), u(5, 35)
        spine["neck"][0] = u(-35, 0)
        for side in "rl":
            legs[side][0], legs[side][3] = root_pitch + u(-10, 15), u(0, 35)
            arm_flex_offset[side] = root_pitch + spine["lumbar"][0] + spine["thoracic"][0] + u(-25, 25)
        gestures = ["hang", "hang"]
    elif family == "sitting":
        spine["lumbar"][0] = u(-10, 20)
        for side in "rl":
            hip = u(70, 100)
            legs[side][:4] = [hip, u(3, 25), u(-15, 15), hip + u(-15, 20)]
        gestures = [str(g) for g in rng.choice(["hang", "bent", "bent", "cross", "raise"], size=2)]

    pose = {"root": rot_x(root_pitch)}
    pose.update({k: spine_rotation(*v) for k, v in spine.items()})
    for side, gesture in zip("rl", gestures):
        flex, abduct, twist, elbow = _arm_angles(rng, gesture)
        if gesture == "hang":
            flex += arm_flex_offset[side]
        pose[f"{side}_shoulder"] = limb_rotation(flex, abduct, twist, side)
        pose[f"{side}_elbow"] = rot_x(-elbow)
        pose[f"{side}_wrist"] = rot_x(u(-30, 30))
        hip_flex, hip_abduct, hip_twist, knee, ankle = legs[side]
        pose[f"{side}_hip"] = limb_rotation(hip_flex, hip_abduct, hip_twist, side)
        pose[f"{side}_knee"] = rot_x(knee)
        pose[f"{side}_ankle"] = rot_x(-ankle)
    return family, pose
