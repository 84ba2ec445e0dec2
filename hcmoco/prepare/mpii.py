"""MPII Human Pose -> processed splits of person crops (rgb + kp2d, mpii16 layout).

    python -m hcmoco.prepare.mpii --raw data/raw/mpii --out data/real/mpii --resolution 320

Raw layout (the archives of human-pose.mpi-inf.mpg.de, unpacked)::

    RAW/mpii_human_pose_v1_u12_1.mat   (or RAW/mpii_human_pose_v1_u12_2/mpii_human_pose_v1_u12_1.mat)
    RAW/images/<annolist(i).image.name>

The annotation is the MATLAB struct RELEASE: annolist(i).image.name, annolist(i).annorect(p)
with annopoints.point(k).{id, x, y, is_visible}, objpos.{x, y} and scale (person height / 200
px), annolist(i).vididx; img_train(i). Only images with img_train == 1 carry labels (the
official test set has none), so both splits come from them: whole videos (`vididx`, so the same
people never sit on both sides) are ordered by a hash of their id and the first
ceil(test_fraction * #videos) go to test (default 10 %). Images without a video id form
their own group.
A person is used when it has objpos, scale and at least `min_keypoints` (default 8 of 16)
labelled points. Crop (the convention of the stacked-hourglass / HRNet MPII code): centre =
objpos moved down by 15 * scale px, side = 1.25 * 200 * scale. MATLAB coordinates are 1-based
pixel indices: x - 1 + 0.5 is the processed format's continuous coordinate. Visibility: 2 when
is_visible is 1 or empty (some labelled points carry no flag), 1 when it is 0, and 0 for
joints not annotated or outside the crop. `subject` is the video id (else 1_000_000 + image
number), `image_id` the 0-based annolist index, `crop` (left, top, side) in image pixels.
"""
from __future__ import annotations

import math
import zlib
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np

from hcmoco.atomic import atomic_directory
from hcmoco.processed.keypoints import LAYOUTS
from hcmoco.prepare.crops import CropBox, crop_rgb, keypoints_to_crop, read_rgb
from hcmoco.prepare.writer import SHARD_SIZE, check_resolution, prepare_parser, run_prepare_cli, write_split
from hcmoco.errors import HcmocoError

MAT_NAME = "mpii_human_pose_v1_u12_1.mat"
NUM_JOINTS = 16
MIN_KEYPOINTS = 8
TEST_FRACTION = 0.1
BOX_ENLARGE = 1.25  # side = 1.25 * 200 * scale
CENTRE_SHIFT = 15.0  # px per unit of scale: objpos sits high on the body (hourglass convention)
NO_VIDEO = 1_000_000


def find_annotation(raw_root: Path) -> Path:
    for path in (raw_root / MAT_NAME, raw_root / "mpii_human_pose_v1_u12_2" / MAT_NAME):
        if path.is_file():
            return path
    raise HcmocoError(f"{raw_root / MAT_NAME}: missing (the MPII annotation struct)")


def _items(value) -> list:
    """A MATLAB struct array as read by loadmat(squeeze_me=True): [] / one struct / array -> list."""
    if isinstance(value, np.ndarray):
        return list(value.reshape(-1))
    return [value]


def _number(value) -> float | None:
    """A scalar field: None when empty (MATLAB []), else float (numbers or numeric strings)."""
    if isinstance(value, np.ndarray):
        if value.size == 0:
            return None
        value = value.reshape(-1)[0]
    if isinstance(value, str):
        return float(value) if value.strip() else None
    return float(value)


def person_of(rect) -> dict | None:
    """{'centre', 'scale', 'kp' (16, 3) 0-based continuous} of an annorect entry, None if unlabelled."""
    points, objpos, scale = (getattr(rect, k, None) for k in ("annopoints", "objpos", "scale"))
    if points is None or isinstance(points, np.ndarray) or isinstance(objpos, np.ndarray) or objpos is None:
        return None  # MATLAB [] in place of a struct: no annotation for this person
    scale = _number(scale) if scale is not None else None
    if not scale or scale <= 0:
        return None
    kp = np.zeros((NUM_JOINTS, 3), np.float64)
    for p in _items(getattr(points, "point", np.zeros(0))):
        joint, x, y = _number(p.id), _number(p.x), _number(p.y)
        if joint is None or x is None or y is None or not 0 <= joint < NUM_JOINTS:
            continue
        flag = _number(getattr(p, "is_visible", None)) if getattr(p, "is_visible", None) is not None else None
        kp[int(joint)] = (x - 0.5, y - 0.5, 1.0 if flag == 0 else 2.0)
    centre = (_number(objpos.x) - 0.5, _number(objpos.y) - 0.5)
    return {"centre": centre, "scale": scale, "kp": kp}


def load_release(path: Path):
    from scipy.io import loadmat

    try:
        content = loadmat(str(path), struct_as_record=False, squeeze_me=True)
    except Exception as err:  # scipy raises many types on a foreign or truncated file
        raise HcmocoError(f"{path}: not a readable MATLAB file ({type(err).__name__}: {err})") from None
    if "RELEASE" not in content:
        raise HcmocoError(f"{path}: no RELEASE struct (not the MPII annotation file)")
    try:
        release = content["RELEASE"]
        annolist, img_train = _items(release.annolist), np.atleast_1d(release.img_train).astype(int)
    except (AttributeError, TypeError, ValueError) as err:
        raise HcmocoError(f"{path}: RELEASE lacks annolist/img_train ({err})") from None
    if len(annolist) != len(img_train):
        raise HcmocoError(f"{path}: annolist has {len(annolist)} entries, img_train {len(img_train)}")
    return annolist, img_train


def image_jobs(annotation: Path, image_dir: Path, min_keypoints: int) -> list[tuple]:
    """(image path, image index, group, [person, ...]) of labelled training images with usable people."""
    annolist, img_train = load_release(annotation)
    jobs = []
    for i, (entry, train) in enumerate(zip(annolist, img_train)):
        if train != 1:
            continue
        try:
            name = str(entry.image.name)
            people = [person_of(r) for r in _items(getattr(entry, "annorect", np.zeros(0)))]
        except (AttributeError, TypeError, ValueError) as err:
            raise HcmocoError(f"{annotation}: annolist({i + 1}) is malformed ({err})") from None
        people = [p for p in people if p is not None and np.count_nonzero(p["kp"][:, 2]) >= min_keypoints]
        video = _number(getattr(entry, "vididx", None)) if getattr(entry, "vididx", None) is not None else None
        group = int(video) if video is not None else NO_VIDEO + i
        if people:
            jobs.append((str(image_dir / name), i, group, people))
    return jobs


def held_out_groups(groups: list[int], fraction: float) -> set[int]:
    """The first ceil(fraction * n) groups in crc32 order (at least one when there are two)."""
    unique = sorted(set(groups), key=lambda g: (zlib.crc32(str(g).encode()), g))
    n = min(max(math.ceil(fraction * len(unique)), 1 if len(unique) > 1 else 0), len(unique) - 1)
    return set(unique[:max(n, 0)])


def person_samples(job: tuple, resolution: int) -> list[dict]:
    path, index, group, people = job
    image = read_rgb(Path(path))
    out = []
    for p in people:
        cx, cy = p["centre"]
        box = CropBox.centred(cx, cy + CENTRE_SHIFT * p["scale"], BOX_ENLARGE * 200.0 * p["scale"])
        out.append({"rgb": crop_rgb(image, box, resolution), "kp2d": keypoints_to_crop(p["kp"], box, resolution),
                    "subject": np.int32(group), "image_id": np.int64(index), "crop": box.as_array()})
    return out


def prepare(raw_root: Path, out_root: Path, resolution: int, min_keypoints: int = MIN_KEYPOINTS,
            test_fraction: float = TEST_FRACTION, shard_size: int = SHARD_SIZE, workers: int = 1) -> dict[str, int]:
    """Write out_root/train and out_root/test (held-out videos); returns sample counts."""
    check_resolution(resolution)
    if not 0 < test_fraction < 1:
        raise HcmocoError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    raw_root = Path(raw_root)
    annotation = find_annotation(raw_root)
    jobs = image_jobs(annotation, raw_root / "images", min_keypoints)
    held_out = held_out_groups([j[2] for j in jobs], test_fraction)
    counts = {}
    with atomic_directory(out_root) as tmp:
        for split in ("train", "test"):
            chosen = [j for j in jobs if (j[2] in held_out) == (split == "test")]
            meta = {"domain": "mpii", "split": split, "source": "MPII Human Pose (img_train == 1)",
                    "layout": "mpii16", "joints": LAYOUTS["mpii16"], "depth_kind": None, "resolution": resolution,
                    "preprocessor": {"name": "mpii", "test_fraction": test_fraction, "min_keypoints": min_keypoints,
                                     "box": f"centre objpos + (0, {CENTRE_SHIFT} scale), "
                                            f"side {BOX_ENLARGE} * 200 scale"}}
            counts[split] = write_split(tmp / split, meta, chosen, partial(person_samples, resolution=resolution),
                                        str(annotation), shard_size, workers)
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = prepare_parser(__doc__.splitlines()[0])
    parser.add_argument("--min-keypoints", type=int, default=MIN_KEYPOINTS,
                        help="labelled joints a person needs (default: %(default)s of 16)")
    parser.add_argument("--test-fraction", type=float, default=TEST_FRACTION,
                        help="share of videos held out as the test split (default: %(default)s)")

    def body(args, workers):
        return prepare(Path(args.raw), Path(args.out), args.resolution, args.min_keypoints, args.test_fraction,
                       args.shard_size, workers)

    return run_prepare_cli(parser, body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
