"""NTU RGB+D 60/120 -> the processed format: RGB warped onto the masked depth, Kinect joints as ITOP-15.

    python -m hcmoco.prepare.ntu --raw data/raw/ntu --out data/paper/ntu --resolution 320 --frame-step 5

Raw layout: the official release, plus RGB frames the user extracts from the .avi videos
(e.g. `ffmpeg -i S001C001P001R001A001_rgb.avi -q:v 2 <raw>/nturgb+d_rgb_frames/S001C001P001R001A001/%06d.jpg`):

    <raw>/nturgb+d_skeletons/SsssCcccPpppRrrrAaaa.skeleton
    <raw>/nturgb+d_depth_masked/SsssCcccPpppRrrrAaaa/MDepth-00000001.png   uint16 mm, 512x424
    <raw>/nturgb+d_rgb_frames/SsssCcccPpppRrrrAaaa/000001.jpg              1920x1080 or a 16:9 reduction

Frame f (counted from 1) is the f-th frame block of the skeleton file, MDepth-f and RGB frame f.
The skeleton files drive the run: a video without one (NTU lists 302 such samples) is skipped.

Colour-to-depth alignment: for every (setup S, camera C) one homography colour pixel -> depth
pixel is fitted by RANSAC on the joint correspondences (colorX, colorY) -> (depthX, depthY) of
all tracked joints of all videos of that (S, C), and each video is warped with the homography of
the S and C parsed from its own name (the public code attached homographies to the wrong videos
by an index bug and warped only one video per (S, C)). The depth intrinsics are fitted per
(S, C) the same way from (x/z, y/z) -> (depthX, depthY), so `kp3d` and `cam` agree.

Samples: every `frame_step`-th frame (frames 1, 1 + k, 1 + 2k, ...) that has a body; in frames
with several bodies the one with most tracked joints (ties: the first). The crop is a square of
1.2x the person box (tracked joints, grown to the masked-depth foreground around them) in the
depth frame; the RGB is warped straight from the colour frame into that crop (one resampling).
Fields: rgb, depth (masked, mm), kp2d (ITOP-15, crop pixels, COCO visibility: Kinect tracked -> 2,
inferred -> 1, not tracked or outside the crop -> 0), kp3d (ITOP-15, mm, crop camera frame:
x along columns, y along rows, z depth; zeros for joints not tracked), cam (fx, fy, cx, cy of the
crop), subject (P). Split: cross-subject (TRAIN_SUBJECTS -> train, the others -> test).
"""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from hcmoco.processed.keypoints import LAYOUTS
from hcmoco.prepare.crops import (MIN_SIDE, CropBox, crop_intrinsics, crop_nearest, keypoint_visibility, mask_box,
                                   points_box, read_depth_png, read_rgb, resample_rgb, union_box)
from hcmoco.prepare.writer import SplitsWriter, parallel_map, prepare_parser, run_prepare_cli
from hcmoco.prepare.homography import ransac_homography
from hcmoco.errors import HcmocoError

SKELETONS, DEPTH, RGB = "nturgb+d_skeletons", "nturgb+d_depth_masked", "nturgb+d_rgb_frames"
VIDEO_NAME = re.compile(r"^S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})$")
# Official cross-subject training performers: NTU-60 (first 20) and the NTU-120 additions
# (Shahroudy et al. 2016; Liu et al. 2019). Every other performer is a test subject.
TRAIN_SUBJECTS = (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38,
                  45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84,
                  85, 86, 89, 91, 92, 93, 94, 95, 97, 98, 100, 103)
KINECT_JOINTS = ("spine_base", "spine_mid", "neck", "head", "l_shoulder", "l_elbow", "l_wrist", "l_hand",
                 "r_shoulder", "r_elbow", "r_wrist", "r_hand", "l_hip", "l_knee", "l_ankle", "l_foot",
                 "r_hip", "r_knee", "r_ankle", "r_foot", "spine_shoulder", "l_hand_tip", "l_thumb",
                 "r_hand_tip", "r_thumb")
# Kinect v2 (25) -> ITOP-15, matching how SynthHuman defines the ITOP joints: neck = the
# shoulder-line spine point (spine_shoulder), torso = spine_mid, hand = hand centre, foot = ankle.
# Kinect's left/right are the person's own, as ITOP's.
KINECT_TO_ITOP15 = {"head": "head", "neck": "spine_shoulder", "r_shoulder": "r_shoulder",
                    "l_shoulder": "l_shoulder", "r_elbow": "r_elbow", "l_elbow": "l_elbow", "r_hand": "r_hand",
                    "l_hand": "l_hand", "torso": "spine_mid", "r_hip": "r_hip", "l_hip": "l_hip",
                    "r_knee": "r_knee", "l_knee": "l_knee", "r_foot": "r_ankle", "l_foot": "l_ankle"}
ITOP15_FROM_KINECT = np.array([KINECT_JOINTS.index(KINECT_TO_ITOP15[j]) for j in LAYOUTS["itop15"]])
NUM_JOINTS, JOINT_VALUES, BODY_VALUES = 25, 12, 10
TRACKED = 2
KINECT_COLOUR = (1920, 1080)  # the colour frame colorX/colorY refer to
POINTS_PER_VIDEO = 1000  # correspondences kept per video for the (S, C) fits


@dataclass(frozen=True)
class VideoKey:
    setup: int
    camera: int
    performer: int
    replication: int
    action: int

    @property
    def group(self) -> str:
        return f"S{self.setup:03d}C{self.camera:03d}"


def parse_video_name(name: str) -> VideoKey:
    match = VIDEO_NAME.match(name)
    if not match:
        raise HcmocoError(f"{name}: not an NTU video name (SsssCcccPpppRrrrAaaa)")
    return VideoKey(*map(int, match.groups()))


# ---- skeleton files -------------------------------------------------------------------------
def read_skeleton(path: str | Path) -> list[list[np.ndarray]]:
    """Bodies per frame: frames[f] is a list of (25, 12) float arrays (x y z depthX depthY colorX
    colorY orientationW X Y Z trackingState). Malformed files fail naming the file and line."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise HcmocoError(f"{path}: cannot read ({err})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    pos = 0

    def count(what: str) -> int:
        nonlocal pos
        if pos >= len(lines):
            raise HcmocoError(f"{path}:{pos + 1}: file ends where the {what} was expected")
        text = lines[pos].strip()
        if not text.isdigit():
            raise HcmocoError(f"{path}:{pos + 1}: expected the {what} (an integer), got {text[:40]!r}")
        pos += 1
        return int(text)

    frames = []
    for f in range(count("frame count")):
        bodies = []
        for b in range(count(f"body count of frame {f + 1}")):
            if pos >= len(lines) or len(lines[pos].split()) != BODY_VALUES:
                got = "end of file" if pos >= len(lines) else f"{len(lines[pos].split())} values"
                raise HcmocoError(f"{path}:{pos + 1}: expected {BODY_VALUES} body values (frame {f + 1}, "
                                  f"body {b + 1}), got {got}")
            pos += 1
            joints = count(f"joint count of frame {f + 1} body {b + 1}")
            if joints != NUM_JOINTS:
                raise HcmocoError(f"{path}:{pos}: expected {NUM_JOINTS} joints, got {joints}")
            bodies.append(_joint_block(path, lines, pos, f))
            pos += NUM_JOINTS
        frames.append(bodies)
    if pos != len(lines):
        raise HcmocoError(f"{path}:{pos + 1}: unexpected content after the last frame")
    return frames


def _joint_block(path: Path, lines: list[str], start: int, frame: int) -> np.ndarray:
    block = lines[start:start + NUM_JOINTS]
    try:
        values = np.array(" ".join(block).split(), dtype=np.float64)
        if values.size == NUM_JOINTS * JOINT_VALUES and len(block) == NUM_JOINTS:
            return values.reshape(NUM_JOINTS, JOINT_VALUES)
    except ValueError:
        pass
    for j in range(NUM_JOINTS):  # slow path: find the offending line
        if start + j >= len(lines):
            raise HcmocoError(f"{path}:{start + j + 1}: file ends inside the joints of frame {frame + 1}")
        fields = lines[start + j].split()
        if len(fields) != JOINT_VALUES:
            raise HcmocoError(f"{path}:{start + j + 1}: expected {JOINT_VALUES} joint values, got {len(fields)}")
        try:
            [float(v) for v in fields]
        except ValueError:
            raise HcmocoError(f"{path}:{start + j + 1}: joint values must be numbers") from None
    raise AssertionError("unreachable")


def choose_body(bodies: list[np.ndarray]) -> np.ndarray:
    """The body with most tracked joints (the first among equals)."""
    return bodies[int(np.argmax([(b[:, 11] == TRACKED).sum() for b in bodies]))]


# ---- per-(setup, camera) calibration -----------------------------------------------------------
@dataclass(frozen=True)
class VideoScan:
    name: str
    key: VideoKey
    colour: np.ndarray  # (N, 2) colorX, colorY of tracked joints
    depth: np.ndarray  # (N, 2) depthX, depthY
    xyz: np.ndarray  # (N, 3) metres, Kinect camera space
    frames: list[tuple[int, np.ndarray]]  # (frame number from 1, chosen body (25, 12)) of the sampled frames


@dataclass(frozen=True)
class Calibration:
    homography: np.ndarray  # (3, 3) colour pixel -> depth pixel (pixel-index coordinates)
    intrinsics: np.ndarray  # (4,) signed fx, fy, cx, cy: depthX = fx x/z + cx, depthY = fy y/z + cy
    points: int
    inliers: int
    rmse: float

    def summary(self) -> dict:
        return {"colour_to_depth": np.round(self.homography, 10).tolist(),
                "depth_intrinsics": np.round(self.intrinsics, 6).tolist(),
                "points": self.points, "inliers": self.inliers, "rmse_px": round(self.rmse, 4)}


def scan_video(job: tuple[Path, int]) -> VideoScan:
    path, frame_step = job
    frames = read_skeleton(path)
    key = parse_video_name(path.stem)
    joints = [b for bodies in frames for b in bodies]
    stacked = np.concatenate(joints) if joints else np.zeros((0, JOINT_VALUES))
    ok = (stacked[:, 11] == TRACKED) & np.isfinite(stacked[:, :7]).all(axis=1) & (stacked[:, 2] > 0)
    stacked = stacked[ok]
    if len(stacked) > POINTS_PER_VIDEO:
        rng = np.random.default_rng(zlib.crc32(path.stem.encode()))
        stacked = stacked[np.sort(rng.choice(len(stacked), POINTS_PER_VIDEO, replace=False))]
    sampled = [(f + 1, choose_body(frames[f])) for f in range(0, len(frames), frame_step) if frames[f]]
    return VideoScan(path.stem, key, stacked[:, 5:7], stacked[:, 3:5], stacked[:, 0:3], sampled)


def fit_intrinsics(xyz: np.ndarray, depth_uv: np.ndarray) -> np.ndarray:
    """Least squares depthX = fx x/z + cx, depthY = fy y/z + cy (signed fx, fy)."""
    out = []
    for axis in (0, 1):
        a = np.stack([xyz[:, axis] / xyz[:, 2], np.ones(len(xyz))], axis=1)
        out.extend(np.linalg.lstsq(a, depth_uv[:, axis], rcond=None)[0])
    fx, cx, fy, cy = out
    return np.array([fx, fy, cx, cy])


def calibrate(group: str, scans: list[VideoScan], threshold: float, max_points: int, seed: int) -> Calibration:
    colour = np.concatenate([s.colour for s in scans])
    depth = np.concatenate([s.depth for s in scans])
    xyz = np.concatenate([s.xyz for s in scans])
    if len(colour) > max_points:
        rng = np.random.default_rng([seed, zlib.crc32(group.encode())])
        keep = np.sort(rng.choice(len(colour), max_points, replace=False))
        colour, depth, xyz = colour[keep], depth[keep], xyz[keep]
    if len(colour) < 8:
        raise HcmocoError(f"{group}: only {len(colour)} tracked joint correspondences in its skeleton files; "
                          f"cannot fit the colour-to-depth homography")
    try:
        fit = ransac_homography(colour, depth, threshold=threshold, seed=seed)
    except HcmocoError as err:
        raise HcmocoError(f"{group}: {err}") from None
    return Calibration(fit.matrix, fit_intrinsics(xyz, depth), len(colour), int(fit.inliers.sum()), fit.rmse)


def homography_for(video: str, calibrations: dict[str, Calibration]) -> Calibration:
    """The calibration of the (setup, camera) named in the video's own file name."""
    group = parse_video_name(video).group
    if group not in calibrations:
        raise HcmocoError(f"{video}: no calibration for {group}")
    return calibrations[group]


# ---- samples ---------------------------------------------------------------------------------
def _person_box(depth: np.ndarray, joints_xy: np.ndarray) -> tuple[float, float, float, float] | None:
    jbox = points_box(joints_xy)
    if jbox is None:
        return None
    margin = 0.25 * max(jbox[2] - jbox[0], jbox[3] - jbox[1]) + 4.0
    c0, r0 = max(int(jbox[0] - margin), 0), max(int(jbox[1] - margin), 0)
    c1, r1 = int(np.ceil(jbox[2] + margin)), int(np.ceil(jbox[3] + margin))
    window = mask_box(depth[r0:r1, c0:c1] > 0)
    if window is not None:
        window = (window[0] + c0, window[1] + r0, window[2] + c0, window[3] + r0)
    return union_box(jbox, window)


def colour_frame_scale(shape: tuple[int, ...], path: Path) -> np.ndarray:
    """(3, 3) pixel-index map from an extracted colour frame to Kinect's 1920x1080 colour frame, in
    which the skeletons give colorX/colorY (frames may be extracted at a reduced size)."""
    rows, cols = shape[:2]
    sx, sy = KINECT_COLOUR[0] / cols, KINECT_COLOUR[1] / rows
    if abs(sx - sy) > 0.01 * sx:
        raise HcmocoError(f"{path}: frame {cols}x{rows} is not a 16:9 scaling of the Kinect colour frame "
                          f"{KINECT_COLOUR[0]}x{KINECT_COLOUR[1]}")
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])


def make_sample(body: np.ndarray, depth: np.ndarray, colour: np.ndarray, colour_scale: np.ndarray,
                calib: Calibration, size: int) -> dict[str, np.ndarray] | None:
    """One processed sample from the chosen body, the masked depth and the colour frame."""
    state = body[:, 11]
    xy = body[:, 3:5] + 0.5  # pixel-index -> continuous coordinates
    known = (state > 0) & np.isfinite(xy).all(axis=1)
    box = _person_box(depth, xy[known])
    if box is None:
        return None
    crop = CropBox.around(*box, min_side=MIN_SIDE)
    rgb = resample_rgb(colour, crop.index_matrix(size) @ calib.homography @ colour_scale, size)
    joints = body[ITOP15_FROM_KINECT]
    kp_xy = crop.to_crop(joints[:, 3:5] + 0.5, size)
    kp_xy = np.where(np.isfinite(kp_xy), kp_xy, 0.0)
    vis = np.select([joints[:, 11] == TRACKED, joints[:, 11] > 0], [2.0, 1.0], 0.0)
    kp2d = np.concatenate([kp_xy, keypoint_visibility(kp_xy, vis, size)[:, None]], axis=1)
    fx, fy, cx, cy = calib.intrinsics
    xyz = joints[:, 0:3] * (np.sign(fx), np.sign(fy), 1.0) * 1000.0
    kp3d = np.where((joints[:, 11] > 0)[:, None] & np.isfinite(xyz), xyz, 0.0)
    return {"rgb": rgb, "depth": crop_nearest(depth, crop, size), "kp2d": kp2d.astype(np.float32),
            "kp3d": kp3d.astype(np.float32), "cam": crop_intrinsics((abs(fx), abs(fy), cx + 0.5, cy + 0.5), crop, size)}


def video_samples(job: tuple) -> list[tuple[str, str, dict]]:
    """(split, sample id, sample) of every sampled frame of one video."""
    raw, name, frames, calib, size, rgb_ext = job
    key = parse_video_name(name)
    split = "train" if key.performer in TRAIN_SUBJECTS else "test"
    out = []
    for frame, body in frames:
        depth = read_depth_png(raw / DEPTH / name / f"MDepth-{frame:08d}.png")
        colour_path = raw / RGB / name / f"{frame:06d}.{rgb_ext}"
        colour = read_rgb(colour_path)
        sample = make_sample(body, depth, colour, colour_frame_scale(colour.shape, colour_path), calib, size)
        if sample is not None:
            sample["subject"] = np.int32(key.performer)
            out.append((split, f"{name} {frame}", sample))
    return out


def prepare(raw_root: str | Path, out_root: str | Path, resolution: int, frame_step: int = 1,
            workers: int = 1, shard_size: int = 256, ransac_threshold: float = 3.0,
            fit_points: int = 20000, seed: int = 0, rgb_ext: str = "jpg") -> dict[str, int]:
    """Write `out_root/{train,test}`; returns the sample count per split."""
    raw = Path(raw_root)
    if frame_step < 1:
        raise HcmocoError(f"--frame-step must be >= 1, got {frame_step}")
    for sub in (SKELETONS, DEPTH, RGB):
        if not (raw / sub).is_dir():
            raise HcmocoError(f"{raw / sub}: missing (expected the NTU RGB+D layout described in "
                              f"hcmoco/prepare/ntu.py)")
    files = sorted(p for p in (raw / SKELETONS).glob("*.skeleton") if VIDEO_NAME.match(p.stem))
    if not files:
        raise HcmocoError(f"{raw / SKELETONS}: no SsssCcccPpppRrrrAaaa.skeleton files")
    groups: dict[str, list[Path]] = {}
    for path in files:  # the name says the (setup, camera): one group in memory at a time
        groups.setdefault(parse_video_name(path.stem).group, []).append(path)

    meta = {"domain": "ntu", "source": "NTU RGB+D 60/120", "layout": "itop15", "joints": LAYOUTS["itop15"],
            "resolution": resolution, "depth_kind": "masked", "frame_step": frame_step,
            "joint_map": {"from": "kinect25", "names": list(KINECT_JOINTS), "itop15": ITOP15_FROM_KINECT.tolist()},
            "train_subjects": list(TRAIN_SUBJECTS)}
    calibrations: dict[str, Calibration] = {}
    with SplitsWriter(out_root, meta, shard_size) as writer:
        for group, paths in sorted(groups.items()):
            scans = list(parallel_map(scan_video, [(p, frame_step) for p in paths], workers))
            calibrations[group] = calibrate(group, scans, ransac_threshold, fit_points, seed)
            jobs = [(raw, s.name, s.frames, homography_for(s.name, calibrations), resolution, rgb_ext)
                    for s in scans]
            for samples in parallel_map(video_samples, jobs, workers):
                for split, sample_id, sample in samples:
                    writer.add(split, sample_id, sample)
        writer.update_meta(calibration={g: c.summary() for g, c in calibrations.items()})
    return dict(writer.counts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = prepare_parser(__doc__.splitlines()[0])
    parser.add_argument("--frame-step", type=int, default=1, help="keep every k-th frame (default: %(default)s)")
    parser.add_argument("--ransac-threshold", type=float, default=3.0, help="inlier distance, depth px")
    parser.add_argument("--fit-points", type=int, default=20000, help="correspondences per (setup, camera) fit")
    parser.add_argument("--rgb-ext", default="jpg", help="extension of the extracted RGB frames")
    parser.add_argument("--seed", type=int, default=0, help="RANSAC and subsampling seed")

    def body(args, workers):
        return prepare(args.raw, args.out, args.resolution, args.frame_step, workers, args.shard_size,
                       args.ransac_threshold, args.fit_points, args.seed, args.rgb_ext)

    return run_prepare_cli(parser, body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
