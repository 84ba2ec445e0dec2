"""Human3.6M human parsing -> the processed format: RGB person crops with 25-class part labels.

    python -m hcmoco.prepare.h36m --raw data/raw/h36m --out data/paper/h36m --resolution 320

Raw layout: what HCMoCo's preparation script (HRNet-Semantic-Segmentation/data/human3.6m/
mp_parsedata.py) writes from the official videos and part-label .mat files, one image per
video frame, frames counted from 0:

    <raw>/protocol_1/rgb/<subject>/<video>/<frame:08d>.png    (.jpg accepted)
    <raw>/protocol_1/seg/<subject>/<video>/<frame:08d>.png    part labels: palette or greyscale PNG
                                                              of Human3.6M's label values (PART_LABELS)
    <raw>/protocol_1/pose2d/<subject>/<video>.npy             optional: (frames, 32 or 17, 2) float
                                                              pixel coordinates (Poses_D2_Positions)

`<video>` is the official video name without extension, e.g. "Directions 1.54138969" (action,
sub-action, camera id); names starting with "_" (the official "_ALL" files) are skipped. Only
frames already extracted are used, so a tree holding every 25th frame works as well.

Samples: every 25th frame (frame % 25 == 0: the paper's 2 Hz lists of the 50 Hz videos).
Split: S1, S5, S6, S7, S8 -> train; S9, S11 -> test (other subjects have no part labels).
Labels: Human3.6M's 24 part values map to classes 1..24 in ascending order of value, 0 is the
background (the public code's mapping); an unknown value fails naming the file. The crop is a
square of 1.2x the labelled person's box (the whole frame when nothing is labelled). Fields:
rgb, parsing, subject, and kp2d (layout h36m17, visibility 2 inside the crop, else 0) when
pose2d is present for every video.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from hcmoco.prepare.crops import (MIN_SIDE, CropBox, crop_nearest, keypoint_visibility, mask_box, read_label_png,
                                   read_rgb, resample_rgb)
from hcmoco.prepare.writer import SplitsWriter, parallel_map, prepare_parser, run_prepare_cli
from hcmoco.errors import HcmocoError

TRAIN_SUBJECTS, TEST_SUBJECTS = (1, 5, 6, 7, 8), (9, 11)
FRAME_STEP = 25
PART_LABELS = ((0, "background"), (1, "right hip"), (2, "right knee"), (3, "right foot"), (6, "left hip"),
               (7, "left knee"), (8, "left foot"), (17, "left shoulder"), (18, "left elbow"), (19, "left hand"),
               (25, "right shoulder"), (26, "right elbow"), (27, "right hand"), (32, "crotch"),
               (33, "right thigh"), (34, "right calf"), (38, "left thigh"), (39, "left calf"),
               (43, "lower spine"), (44, "upper spine"), (46, "head"), (49, "left arm"), (50, "left forearm"),
               (56, "right arm"), (58, "right forearm"))
CLASS_NAMES = [name for _, name in PART_LABELS]
_UNKNOWN = 255
_LABEL_TABLE = np.full(256, _UNKNOWN, np.uint8)
_LABEL_TABLE[[value for value, _ in PART_LABELS]] = np.arange(len(PART_LABELS))
# the usual 17 of the 32 motion-capture joints
H36M17 = ("pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "spine", "thorax", "neck",
          "head", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist")
H36M17_FROM_32 = np.array([0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27])
_SUBJECT = re.compile(r"^S(\d+)$")
_IMAGE_EXT = (".png", ".jpg")


def map_part_labels(values: np.ndarray, path: str | Path) -> np.ndarray:
    """Human3.6M label values -> class indices 0..24 (fails on any other value, naming `path`)."""
    classes = _LABEL_TABLE[values]
    if (classes == _UNKNOWN).any():
        bad = sorted(set(np.unique(values[classes == _UNKNOWN]).tolist()))
        raise HcmocoError(f"{path}: label values {bad[:8]} are not Human3.6M part labels "
                          f"(expected {[v for v, _ in PART_LABELS]})")
    return classes


def split_of(subject: int) -> str | None:
    return "train" if subject in TRAIN_SUBJECTS else "test" if subject in TEST_SUBJECTS else None


def find_videos(root: Path, frame_step: int) -> list[tuple[str, int, str, list[tuple[int, Path]]]]:
    """(split, subject, video, [(frame, rgb path)]) in subject, video, frame order."""
    rgb_root = root / "rgb"
    if not rgb_root.is_dir() or not (root / "seg").is_dir():
        raise HcmocoError(f"{root}: expected rgb/ and seg/ (the Human3.6M layout described in "
                          f"hcmoco/prepare/h36m.py)")
    videos = []
    subjects = [(int(m.group(1)), d) for d in rgb_root.iterdir() if d.is_dir() and (m := _SUBJECT.match(d.name))]
    for subject, sdir in sorted(subjects):
        split = split_of(subject)
        if split is None:
            continue
        for vdir in sorted(d for d in sdir.iterdir() if d.is_dir() and not d.name.startswith("_")):
            frames = sorted((int(p.stem), p) for p in vdir.iterdir()
                            if p.suffix.lower() in _IMAGE_EXT and p.stem.isdigit() and int(p.stem) % frame_step == 0)
            if frames:
                videos.append((split, subject, vdir.name, frames))
    return videos


def _read_pose(path: Path) -> np.ndarray:
    try:
        pose = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise HcmocoError(f"{path}: not a readable .npy array ({err})") from None
    if pose.ndim != 3 or pose.shape[1] not in (17, 32) or pose.shape[2] != 2:
        raise HcmocoError(f"{path}: expected (frames, 32 or 17, 2) pixel coordinates, got {list(pose.shape)}")
    return pose[:, H36M17_FROM_32] if pose.shape[1] == 32 else pose


def video_samples(job: tuple) -> list[tuple[str, str, dict]]:
    root, split, subject, video, frames, size, with_pose = job
    pose = _read_pose(root / "pose2d" / f"S{subject}" / f"{video}.npy") if with_pose else None
    out = []
    for frame, rgb_path in frames:
        seg_path = root / "seg" / f"S{subject}" / video / f"{rgb_path.stem}.png"
        image, labels = read_rgb(rgb_path), read_label_png(seg_path)
        if labels.shape != image.shape[:2]:
            raise HcmocoError(f"{seg_path}: labels {list(labels.shape)} do not match the image "
                              f"{list(image.shape[:2])} of {rgb_path}")
        labels = map_part_labels(labels, seg_path)
        box = mask_box(labels > 0)
        crop = CropBox.around(*box, min_side=MIN_SIDE) if box is not None else CropBox.frame(*labels.shape)
        sample = {"rgb": resample_rgb(image, crop.index_matrix(size), size),
                  "parsing": crop_nearest(labels, crop, size), "subject": np.int32(subject)}
        if pose is not None:
            if frame >= len(pose):
                raise HcmocoError(f"{root / 'pose2d' / f'S{subject}' / f'{video}.npy'}: no pose for frame {frame} "
                                  f"({len(pose)} frames)")
            xy = crop.to_crop(pose[frame] + 0.5, size)
            sample["kp2d"] = np.concatenate([xy, keypoint_visibility(xy, np.full(len(xy), 2.0), size)[:, None]],
                                            axis=1).astype(np.float32)
        out.append((split, f"S{subject}/{video}/{rgb_path.stem}", sample))
    return out


def prepare(raw_root: str | Path, out_root: str | Path, resolution: int, frame_step: int = FRAME_STEP,
            workers: int = 1, shard_size: int = 256) -> dict[str, int]:
    """Write `out_root/{train,test}`; returns the sample count per split."""
    root = Path(raw_root) / "protocol_1"
    if frame_step < 1:
        raise HcmocoError(f"--frame-step must be >= 1, got {frame_step}")
    videos = find_videos(root, frame_step)
    if not videos:
        raise HcmocoError(f"{root / 'rgb'}: no frames of subjects S1, S5-S9, S11 found")
    poses = [(root / "pose2d" / f"S{s}" / f"{v}.npy").is_file() for _, s, v, _ in videos]
    with_pose = all(poses)
    if any(poses) and not with_pose:
        missing = next(v for v, ok in zip(videos, poses) if not ok)
        raise HcmocoError(f"{root / 'pose2d' / f'S{missing[1]}' / f'{missing[2]}.npy'}: missing "
                          f"(pose2d is used only when every video has it)")
    meta = {"domain": "h36m", "source": "Human3.6M (part labels)", "resolution": resolution,
            "layout": "h36m17" if with_pose else None, "joints": list(H36M17) if with_pose else [],
            "depth_kind": None, "frame_step": frame_step, "classes": CLASS_NAMES,
            "label_values": [v for v, _ in PART_LABELS],
            "subjects": {"train": list(TRAIN_SUBJECTS), "test": list(TEST_SUBJECTS)}}
    jobs = [(root, split, subject, video, frames, resolution, with_pose) for split, subject, video, frames in videos]
    with SplitsWriter(out_root, meta, shard_size) as writer:
        for samples in parallel_map(video_samples, jobs, workers):
            for split, sample_id, sample in samples:
                writer.add(split, sample_id, sample)
    return dict(writer.counts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = prepare_parser(__doc__.splitlines()[0])
    parser.add_argument("--frame-step", type=int, default=FRAME_STEP, help="keep frames with index %% k == 0 "
                        "(default: %(default)s)")

    def body(args, workers):
        return prepare(args.raw, args.out, args.resolution, args.frame_step, workers, args.shard_size)

    return run_prepare_cli(parser, body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
