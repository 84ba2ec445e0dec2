"""SynthHuman domains: which modalities and labels each mirrored dataset carries, the seeding
that makes every sample a pure function of its key, the depth sensor models, and render_batch.

Randomness: a person (shape and look) comes from a generator keyed by (seed, domain, subject
id); a sample's pose, view, appearance and sensor noise from generators keyed by (seed, domain,
split, index, stream). No state is shared between samples, so batches and processes agree.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from hcmoco.synth.appearance import (Look, finish_rgb, person_albedo, procedural_background, sample_light,
                                          sample_look, shade, smooth_noise)
from hcmoco.synth.body import build_primitives, iuv_to_surface, joint_radii, surface_coordinates
from hcmoco.synth.render import (crop_camera, first_hit_depth, hit_geometry, keypoint_visibility,
                                      raycast_capsules, sample_depth_scene, sample_view)
from hcmoco.synth.skeleton import (LAYOUT_JOINT_INDEX, BodyShape, forward_kinematics, sample_pose,
                                        sample_shape)


@dataclass(frozen=True)
class DomainSpec:
    name: str
    fields: tuple[str, ...]  # per-sample arrays besides the always present "subject" and "cam"
    layout: str  # keypoint layout of kp2d / kp3d
    depth_kind: str | None  # "masked" (person only), "background" (whole scene) or None
    source: str  # the real dataset this domain mirrors


DOMAINS: dict[str, DomainSpec] = {d.name: d for d in (
    DomainSpec("synth_ntu", ("rgb", "depth", "kp2d", "kp3d"), "itop15", "masked", "NTU RGB+D"),
    DomainSpec("synth_mpii", ("rgb", "kp2d"), "mpii16", None, "MPII Human Pose"),
    DomainSpec("synth_h36m", ("rgb", "parsing", "kp2d", "kp3d"), "coco17", None, "Human3.6M"),
    DomainSpec("synth_parsing4k", ("rgb", "depth", "parsing", "kp2d"), "itop15", "masked", "NTURGBD-Parsing-4K"),
    DomainSpec("synth_itop", ("depth", "kp2d", "kp3d"), "itop15", "background", "ITOP (side view)"),
    DomainSpec("synth_densepose", ("rgb", "parsing", "iuv", "surface", "kp2d"), "coco17", None, "DensePose-COCO"),
)}
FIELD_DTYPES = {"rgb": np.uint8, "depth": np.uint16, "parsing": np.uint8, "iuv": np.uint8,
                "surface": np.float16, "kp2d": np.float32, "kp3d": np.float32, "cam": np.float32,
                "subject": np.int32}
SPLITS = ("train", "test")
_STREAM_PERSON, _STREAM_SAMPLE = 1, 2
MAX_DEPTH_MM = 8000  # beyond this a Kinect-like sensor returns no reading


def _generator(*key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(k) for k in key])))


def _domain_key(domain: str) -> int:
    return zlib.crc32(domain.encode())  # stable across processes, unlike hash()


def subject_id(split: str, index: int, subjects: dict[str, int]) -> int:
    """Global subject id of sample `index`: train 0..S_train-1, test S_train..S_train+S_test-1."""
    offset = 0 if split == "train" else subjects["train"]
    return offset + index % subjects[split]


@lru_cache(maxsize=4096)
def subject_identity(seed: int, domain: str, subject: int) -> tuple[BodyShape, Look]:
    """The build and appearance of one person of a domain."""
    key = (seed, _domain_key(domain), _STREAM_PERSON, subject)
    return sample_shape(_generator(*key, 0)), sample_look(_generator(*key, 1))


# ---- depth sensor models ---------------------------------------------------------------------
def masked_depth(rng: np.random.Generator, depth_m: np.ndarray, person: np.ndarray) -> np.ndarray:
    """uint16 mm of the person only (body-index mask, as NTU): small Kinect v2-like noise, no holes."""
    z = depth_m[person] * 1000.0
    noisy = z + rng.standard_normal(z.shape) * (1.0 + 0.8 * (z / 1000.0) ** 2)
    out = np.zeros(depth_m.shape, np.uint16)
    out[person] = np.clip(np.round(noisy), 1, 65535).astype(np.uint16)
    return out


def kinect_depth(rng: np.random.Generator, depth_m: np.ndarray) -> np.ndarray:
    """uint16 mm of a whole scene, Kinect v1-like: noise std 1.2 + 1.9 (z - 0.4)^2 mm (z in m,
    after Nguyen et al. 2012), holes at depth edges, random dropout blobs, no reading far away."""
    n = depth_m.shape[0]
    finite = np.isfinite(depth_m)
    z = np.where(finite, depth_m, 0.0)
    noisy = z * 1000.0 + rng.standard_normal(z.shape) * (1.2 + 1.9 * (z - 0.4) ** 2)
    padded = np.pad(np.where(finite, depth_m, 1e3), 1, mode="edge")
    jump = np.zeros(z.shape, bool)
    for dr, dc in ((0, 1), (2, 1), (1, 0), (1, 2)):
        jump |= np.abs(padded[dr:dr + n, dc:dc + n] - padded[1:-1, 1:-1]) > 0.05 + 0.02 * z
    blobs = smooth_noise(rng, n, max(2, n // 5)) < 0.1  # organic dropout patches, ~2 % of pixels
    holes = (jump & (rng.random(z.shape) < 0.6)) | blobs | (rng.random(z.shape) < 0.005)
    valid = finite & ~holes & (noisy > 0) & (noisy < MAX_DEPTH_MM)
    return np.where(valid, np.round(noisy), 0).astype(np.uint16)


# ---- one sample ------------------------------------------------------------------------------
def render_sample(spec: DomainSpec, seed: int, split: str, index: int, size: int,
                  subjects: dict[str, int]) -> dict[str, np.ndarray]:
    """All arrays of one sample (without the batch axis); see render_batch."""
    subject = subject_id(split, index, subjects)
    shape, look = subject_identity(seed, spec.name, subject)
    key = (seed, _domain_key(spec.name), _STREAM_SAMPLE, SPLITS.index(split), index)
    pose_rng, view_rng, look_rng, noise_rng = (_generator(*key, stream) for stream in range(4))

    family, pose = sample_pose(pose_rng)
    joints, frames = forward_kinematics(shape, pose)
    body = build_primitives(joints, frames, shape)
    view = sample_view(view_rng, body)
    rotation, translation = view.body_to_camera
    prims = body.transformed(rotation, translation)
    joints_cam = np.einsum("ij,kj->ki", rotation, joints) + translation
    camera = crop_camera(view_rng, prims, size)
    depth_m, label = raycast_capsules(prims, camera)
    person = label >= 0
    scene = None
    if spec.depth_kind == "background":  # the scene can hide joints too (a stool, never the walls)
        scene = sample_depth_scene(view_rng, view, body, sitting=family == "sitting")

    layout = LAYOUT_JOINT_INDEX[spec.layout]
    points = joints_cam[layout]
    first_hit = first_hit_depth(prims, points)
    if scene is not None:
        first_hit = np.minimum(first_hit, scene.depth_along(points / points[:, 2:3]))
    radii = joint_radii(prims.half_axes)[layout]
    out = {"subject": np.int32(subject), "cam": camera.as_array()}
    if "kp2d" in spec.fields:
        visibility = keypoint_visibility(points, radii, first_hit, camera)
        out["kp2d"] = np.concatenate([camera.project(points), visibility[:, None]], axis=1).astype(np.float32)
    if "kp3d" in spec.fields:
        out["kp3d"] = (points * 1000.0).astype(np.float32)

    hits = hit_geometry(prims, camera, depth_m, label)
    part, u, v, v_seg = surface_coordinates(hits.segment, hits.local, prims.half_axes, prims.length)
    if "parsing" in spec.fields:
        out["parsing"] = np.zeros((size, size), np.uint8)
        out["parsing"][hits.rows, hits.cols] = part
    if "iuv" in spec.fields:
        out["iuv"] = np.zeros((size, size, 3), np.uint8)
        out["iuv"][hits.rows, hits.cols] = np.stack([part, np.round(u * 255), np.round(v * 255)], axis=1)
    if "surface" in spec.fields:
        out["surface"] = np.zeros((size, size, 3), np.float16)
        out["surface"][hits.rows, hits.cols] = iuv_to_surface(part, u, v).astype(np.float16)
    if "depth" in spec.fields:
        if spec.depth_kind == "masked":
            out["depth"] = masked_depth(noise_rng, depth_m, person)
        else:
            out["depth"] = kinect_depth(noise_rng, np.minimum(depth_m, scene.render(camera)))
    if "rgb" in spec.fields:
        image = procedural_background(look_rng, size)
        albedo = person_albedo(look, hits.segment, hits.local, v_seg, prims.half_axes, prims.length)
        image[hits.rows, hits.cols] = shade(albedo, hits.normal, sample_light(look_rng))
        out["rgb"] = finish_rgb(look_rng, image)
    return out


def render_batch(domain: str, seed: int, split: str, indices: np.ndarray, resolution: int,
                 subjects: dict[str, int]) -> dict[str, np.ndarray]:
    """Render samples `indices` of (domain, split); split in {"train", "test"}.

    subjects = {"train": S_train, "test": S_test}: distinct people per split. Sample i is a
    pure function of (seed, domain, split, i, resolution, subjects): byte-identical alone or in
    any batch, in any process. Returns the domain's fields plus "subject" (B,) int32 and
    "cam" (B, 4) float32 (fx, fy, cx, cy), each with leading dimension len(indices)."""
    if domain not in DOMAINS:
        raise KeyError(f"unknown SynthHuman domain {domain!r} (known: {', '.join(DOMAINS)})")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    indices = np.asarray(indices).reshape(-1)
    if seed < 0 or resolution < 8 or min(subjects["train"], subjects["test"]) < 1 or np.any(indices < 0):
        raise ValueError("need seed >= 0, indices >= 0, resolution >= 8 and at least one subject per split")
    spec = DOMAINS[domain]
    samples = [render_sample(spec, seed, split, int(i), resolution, subjects) for i in indices]
    keys = spec.fields + ("subject", "cam")
    return {k: _stack([s[k] for s in samples], k, resolution, spec.layout) for k in keys}


def _stack(items: list[np.ndarray], key: str, size: int, layout: str) -> np.ndarray:
    if items:
        return np.stack(items).astype(FIELD_DTYPES[key], copy=False)
    joints = len(LAYOUT_JOINT_INDEX[layout])
    empty_shapes = {"rgb": (size, size, 3), "iuv": (size, size, 3), "surface": (size, size, 3),
                    "depth": (size, size), "parsing": (size, size), "kp2d": (joints, 3),
                    "kp3d": (joints, 3), "cam": (4,), "subject": ()}
    return np.zeros((0,) + empty_shapes[key], FIELD_DTYPES[key])
