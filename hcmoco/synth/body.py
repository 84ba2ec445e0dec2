"""SynthHuman body surface: segments, the 24 DensePose parts, (I, U, V) and the canonical template.

Every segment is a "scaled capsule" rigidly attached to a bone: in the segment's local frame
(origin at its start joint, y along the bone, z towards the body's front) it is the set of
points q * half_axes with |q - (0, clamp(q_y, 0, h), 0)| <= 1, h = length / half_axes_y, i.e.
an elliptical-section capsule; length 0 gives an ellipsoid. Local x completes a right-handed frame.

Surface parametrisation (the same for every person and pose, so a body location keeps its IUV):
- V = position along the segment over its full extent (both end caps included), measured as
  arc length along the meridian in the scaled frame; 0 at the start joint's pole (proximal;
  the pelvis end of the torso, the neck end of the head), 1 at the far pole; a part made of
  two segments (head = neck + skull) splits V between them.
- Front/back parts (torso, arms, legs) split at local z = 0: front is z >= 0, the side the
  person faces in the rest pose (chest, knee caps, palms-forward side of a hanging arm); U is
  the angle around the axis within the half / pi, 0 at local +x (the person's right for limbs,
  left for the torso), 1 at -x.
- Head right/left split at local x = 0 (x < 0 is the person's right); U = angle from the face
  round to the back of the head / pi. Hands and feet are whole: U = angle / 2 pi with a seam.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from hcmoco.processed.shards import NUM_PARTS
from hcmoco.synth.skeleton import (JOINT_INDEX, JOINT_NAMES, MEAN_HEIGHT, BodyShape, forward_kinematics,
                                        mean_shape, rest_pose, skull_half_axes)

PART_NAMES: tuple[str, ...] = (
    "background", "torso_back", "torso_front", "right_hand", "left_hand", "left_foot", "right_foot",
    "upper_leg_right_back", "upper_leg_left_back", "upper_leg_right_front", "upper_leg_left_front",
    "lower_leg_right_back", "lower_leg_left_back", "lower_leg_right_front", "lower_leg_left_front",
    "upper_arm_left_back", "upper_arm_right_back", "upper_arm_left_front", "upper_arm_right_front",
    "lower_arm_left_back", "lower_arm_right_back", "lower_arm_left_front", "lower_arm_right_front",
    "head_right", "head_left")
SPLIT_FRONT_BACK, SPLIT_RIGHT_LEFT, SPLIT_WHOLE = 0, 1, 2


@dataclass(frozen=True)
class Segment:
    name: str
    start: str
    end: str  # == start for an ellipsoid
    frame: str  # joint whose bone frame orients the segment
    axes_map: str  # how local (x, y, z) sit in that bone frame: "up", "down" or "forward"
    split: int
    parts: tuple[int, ...]  # (back, front), (right, left) or (whole,)
    v_range: tuple[float, float]
    half_axes: tuple[float, float, float] | None  # mean (x, y-cap, z) metres; None: the skull
    girth_weight: float  # how strongly the person's girth scales the thickness


def _limbs() -> list[Segment]:
    idx = {p: i for i, p in enumerate(PART_NAMES)}
    out = []
    for side, s in (("r", "right"), ("l", "left")):
        out += [
            Segment(f"{side}_upper_arm", f"{side}_shoulder", f"{side}_elbow", f"{side}_elbow", "down",
                    SPLIT_FRONT_BACK, (idx[f"upper_arm_{s}_back"], idx[f"upper_arm_{s}_front"]), (0, 1),
                    (0.046, 0.046, 0.048), 0.8),
            Segment(f"{side}_lower_arm", f"{side}_elbow", f"{side}_wrist", f"{side}_wrist", "down",
                    SPLIT_FRONT_BACK, (idx[f"lower_arm_{s}_back"], idx[f"lower_arm_{s}_front"]), (0, 1),
                    (0.037, 0.037, 0.038), 0.6),
            Segment(f"{side}_hand", f"{side}_wrist", f"{side}_hand_tip", f"{side}_hand_tip", "down",
                    SPLIT_WHOLE, (idx[f"{s}_hand"],), (0, 1), (0.018, 0.025, 0.042), 0.2),
            Segment(f"{side}_upper_leg", f"{side}_hip", f"{side}_knee", f"{side}_knee", "down",
                    SPLIT_FRONT_BACK, (idx[f"upper_leg_{s}_back"], idx[f"upper_leg_{s}_front"]), (0, 1),
                    (0.075, 0.070, 0.078), 1.0),
            Segment(f"{side}_lower_leg", f"{side}_knee", f"{side}_ankle", f"{side}_ankle", "down",
                    SPLIT_FRONT_BACK, (idx[f"lower_leg_{s}_back"], idx[f"lower_leg_{s}_front"]), (0, 1),
                    (0.052, 0.050, 0.055), 0.6),
            Segment(f"{side}_foot", f"{side}_ankle", f"{side}_toe", f"{side}_toe", "forward",
                    SPLIT_WHOLE, (idx[f"{s}_foot"],), (0, 1), (0.042, 0.045, 0.034), 0.2),
        ]
    return out


SEGMENTS: tuple[Segment, ...] = (
    Segment("torso", "pelvis", "neck", "torso", "up", SPLIT_FRONT_BACK, (1, 2), (0, 1), (0.155, 0.10, 0.105), 1.0),
    Segment("neck", "neck", "upper_neck", "upper_neck", "up", SPLIT_RIGHT_LEFT, (23, 24), (0, 0.22),
            (0.052, 0.05, 0.052), 0.5),
    Segment("skull", "head_centre", "head_centre", "head_centre", "up", SPLIT_RIGHT_LEFT, (23, 24), (0.22, 1),
            None, 0.15),
    *_limbs(),
)
SEGMENT_INDEX = {s.name: i for i, s in enumerate(SEGMENTS)}
_AXES_MAPS = {"up": np.eye(3), "down": np.diag([-1.0, -1.0, 1.0]),
              "forward": np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])}
# per-segment lookup tables for vectorised surface coordinates
SEGMENT_SPLIT = np.array([s.split for s in SEGMENTS])
SEGMENT_PARTS = np.array([(s.parts * 2)[:2] for s in SEGMENTS])  # (S, 2); whole parts repeated
SEGMENT_V_RANGE = np.array([s.v_range for s in SEGMENTS], dtype=np.float64)


@dataclass(frozen=True)
class Primitives:
    """The body's segments in some frame. origin (S,3) start joint; rotation (S,3,3) columns =
    local x, y, z axes; half_axes (S,3) metres; length (S,) metres between the end joints."""
    origin: np.ndarray
    rotation: np.ndarray
    half_axes: np.ndarray
    length: np.ndarray

    def transformed(self, rotation: np.ndarray, translation: np.ndarray) -> "Primitives":
        """The same primitives after p -> rotation @ p + translation."""
        return Primitives(np.einsum("ij,sj->si", rotation, self.origin) + translation,
                          np.einsum("ij,sjk->sik", rotation, self.rotation), self.half_axes, self.length)

    def axis_aligned_half_extent(self) -> np.ndarray:
        """(S,3) half size of each capsule's bounding box around its axis (exact support)."""
        scaled = self.rotation * self.half_axes[:, None, :]
        return np.sqrt(np.einsum("sij,sij->si", scaled, scaled))


def segment_half_axes(shape: BodyShape) -> np.ndarray:
    """(S,3) half axes (x, y-cap, z) of every segment for this person, metres."""
    scale = shape.height / MEAN_HEIGHT
    out = np.zeros((len(SEGMENTS), 3))
    for i, seg in enumerate(SEGMENTS):
        if seg.half_axes is None:
            out[i] = skull_half_axes(shape) * (1.0 + seg.girth_weight * (shape.girth - 1.0))
            continue
        thick = scale * (1.0 + seg.girth_weight * (shape.girth - 1.0))
        out[i] = np.array(seg.half_axes) * np.array([thick, scale, thick])
        if seg.name == "torso":
            out[i, 0] *= 1.0 + 0.04 * shape.build
    return out


_SEGMENT_START = np.array([JOINT_INDEX[s.start] for s in SEGMENTS])
_SEGMENT_END = np.array([JOINT_INDEX[s.end] for s in SEGMENTS])
_SEGMENT_FRAME = np.array([JOINT_INDEX[s.frame] for s in SEGMENTS])
_SEGMENT_AXES_MAP = np.stack([_AXES_MAPS[s.axes_map] for s in SEGMENTS])


def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product of (..., 3) arrays (elementwise, cheaper than np.cross for small arrays)."""
    return np.stack([a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1], a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
                     a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]], axis=-1)


def build_primitives(joints: np.ndarray, frames: np.ndarray, shape: BodyShape) -> Primitives:
    """Segments placed on a posed skeleton (joints (J,3), bone frames (J,3,3), same frame)."""
    start, end = joints[_SEGMENT_START], joints[_SEGMENT_END]
    ref = np.einsum("sij,sjk->sik", frames[_SEGMENT_FRAME], _SEGMENT_AXES_MAP)
    axis = end - start
    length = np.sqrt(np.sum(axis * axis, axis=1))
    y = np.where(length[:, None] > 1e-9, axis / np.maximum(length, 1e-12)[:, None], ref[:, :, 1])
    z = ref[:, :, 2] - np.sum(ref[:, :, 2] * y, axis=1, keepdims=True) * y  # bone forward, made orthogonal
    z /= np.sqrt(np.sum(z * z, axis=1, keepdims=True))
    return Primitives(start, np.stack([cross(y, z), y, z], axis=2), segment_half_axes(shape), length)


def meridian_position(qy: np.ndarray, radial: np.ndarray, top: np.ndarray) -> np.ndarray:
    """Arc length from the start pole along a meridian of the unit capsule with axis 0..top
    (scaled frame): 0..pi/2 over the start cap, then the cylinder, then the end cap; total
    top + pi. Arc length rather than height keeps the map even near the poles."""
    start_cap = np.arctan2(radial, -qy)
    end_cap = 0.5 * np.pi + top + np.arctan2(qy - top, radial)
    return np.where(qy < 0.0, start_cap, np.where(qy > top, end_cap, 0.5 * np.pi + qy))


def meridian_point(m: np.ndarray, top: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of meridian_position: (q_y, distance from the axis) at arc length m."""
    in_start, in_end = m < 0.5 * np.pi, m > 0.5 * np.pi + top
    beyond = m - 0.5 * np.pi - top  # angle past the end cap's equator
    qy = np.where(in_start, -np.cos(m), np.where(in_end, top + np.sin(beyond), m - 0.5 * np.pi))
    radial = np.where(in_start, np.sin(m), np.where(in_end, np.cos(beyond), 1.0))
    return qy, radial


def surface_coordinates(segment: np.ndarray, q: np.ndarray, half_axes: np.ndarray,
                        length: np.ndarray) -> tuple[np.ndarray, ...]:
    """Part I, U, V and the within-segment position v_seg of surface points.

    segment (N,) segment index; q (N,3) point in the segment's scaled local frame (see module
    docstring); half_axes (S,3), length (S,) of the person's segments. Returns I (N,) uint8,
    U (N,), V (N,), v_seg (N,) floats in [0, 1]."""
    top = length[segment] / half_axes[segment, 1]
    v_seg = np.clip(meridian_position(q[:, 1], np.sqrt(q[:, 0] ** 2 + q[:, 2] ** 2), top) / (top + np.pi), 0.0, 1.0)
    v0, v1 = SEGMENT_V_RANGE[segment, 0], SEGMENT_V_RANGE[segment, 1]
    split = SEGMENT_SPLIT[segment]
    around = np.arctan2(q[:, 2], q[:, 0])  # angle from local +x towards +z
    from_face = np.arctan2(q[:, 0], q[:, 2])  # angle from local +z (face) towards +x (left)
    u = np.where(split == SPLIT_FRONT_BACK, np.abs(around) / np.pi,
                 np.where(split == SPLIT_RIGHT_LEFT, np.abs(from_face) / np.pi, (around + np.pi) / (2 * np.pi)))
    second = np.where(split == SPLIT_FRONT_BACK, q[:, 2] >= 0.0, q[:, 0] >= 0.0)
    part = SEGMENT_PARTS[segment, second.astype(np.intp)].astype(np.uint8)
    return part, np.clip(u, 0.0, 1.0), v0 + (v1 - v0) * v_seg, v_seg


# ---- canonical template ----------------------------------------------------------------------
@lru_cache(maxsize=1)
def template_primitives() -> Primitives:
    """The mean-shape body in its rest pose (body frame, metres): the reference of `surface`."""
    shape = mean_shape()
    joints, frames = forward_kinematics(shape, rest_pose())
    return build_primitives(joints, frames, shape)


@lru_cache(maxsize=1)
def _part_segments() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per part: first segment, second segment (= first when single), V where the second starts."""
    first, second, v_split = np.zeros(NUM_PARTS + 1, np.intp), np.zeros(NUM_PARTS + 1, np.intp), np.ones(NUM_PARTS + 1)
    for part in range(1, NUM_PARTS + 1):
        segs = sorted((i for i, s in enumerate(SEGMENTS) if part in s.parts), key=lambda i: SEGMENTS[i].v_range)
        first[part], second[part] = segs[0], segs[-1]
        v_split[part] = SEGMENTS[segs[0]].v_range[1] if len(segs) > 1 else 2.0
    return first, second, v_split


def iuv_to_surface(I: np.ndarray, U: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Template surface point (..., 3), metres in the template's body frame, for part I at (U, V).

    I int in 0..24 (0 = background -> zeros), U and V in [0, 1]; any matching shapes. Exact
    inverse of the renderer's parametrisation on the template body, continuous within a part
    (except the seam of hands and feet and the neck/skull boundary of the head)."""
    I, U, V = np.broadcast_arrays(np.asarray(I).astype(np.intp), np.asarray(U, dtype=np.float64),
                                  np.asarray(V, dtype=np.float64))
    tpl = template_primitives()
    first, second, v_split = _part_segments()
    seg = np.where(V < v_split[I], first[I], second[I])
    v0, v1 = SEGMENT_V_RANGE[seg, 0], SEGMENT_V_RANGE[seg, 1]
    axes, length = tpl.half_axes[seg], tpl.length[seg]
    top = length / axes[..., 1]
    qy, radial = meridian_point(np.clip((V - v0) / (v1 - v0), 0.0, 1.0) * (top + np.pi), top)
    split = SEGMENT_SPLIT[seg]
    is_second = I == SEGMENT_PARTS[seg, 1]
    sign = np.where(is_second, 1.0, -1.0)
    angle = np.where(split == SPLIT_WHOLE, 2.0 * np.pi * U - np.pi, sign * U * np.pi)
    cos_a, sin_a = np.cos(angle), np.sin(angle)
    qx = np.where(split == SPLIT_RIGHT_LEFT, sin_a, cos_a) * radial
    qz = np.where(split == SPLIT_RIGHT_LEFT, cos_a, sin_a) * radial
    local = np.stack([qx * axes[..., 0], qy * axes[..., 1], qz * axes[..., 2]], axis=-1)
    rot = tpl.rotation[seg]
    point = tpl.origin[seg] + (rot[..., 0] * local[..., 0:1] + rot[..., 1] * local[..., 1:2]
                               + rot[..., 2] * local[..., 2:3])
    return np.where((I > 0)[..., None], point, 0.0)


def joint_radii(half_axes: np.ndarray) -> np.ndarray:
    """(J,) how deep each internal joint lies under its own body surface (metres), from the
    thickness of the segments it joins; face points and the head top lie just under the skin."""
    radii = np.zeros(len(JOINT_NAMES))
    thickness = np.maximum(half_axes[:, 0], half_axes[:, 2])
    for i, seg in enumerate(SEGMENTS):
        for joint in (seg.start, seg.end):
            radii[JOINT_INDEX[joint]] = max(radii[JOINT_INDEX[joint]], thickness[i])
    radii[radii == 0.0] = 0.02  # nose, eyes, ears, head top: just under the skin
    radii[JOINT_INDEX["torso"]] = thickness[SEGMENT_INDEX["torso"]]
    for side in "rl":
        radii[JOINT_INDEX[f"{side}_hand"]] = thickness[SEGMENT_INDEX[f"{side}_hand"]]
    return radii
