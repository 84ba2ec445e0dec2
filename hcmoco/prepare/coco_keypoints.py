"""COCO 2014 person keypoints -> processed splits of person crops (rgb + kp2d, coco17 layout).

    python -m hcmoco.prepare.coco_keypoints --raw data/raw/coco2014 --out data/real/coco_keypoints --resolution 320

Raw layout (the archives of cocodataset.org, unpacked)::

    RAW/annotations/person_keypoints_train2014.json   -> split train
    RAW/annotations/person_keypoints_val2014.json     -> split test
    RAW/train2014/<file_name>, RAW/val2014/<file_name> (file_name as in the json)

One sample per person annotation that is not a crowd, has at least `min_keypoints` (default 8
of 17) labelled keypoints and a box whose longer side is at least `min_box` (default 32) image
pixels: fewer joints leave the keypoint encoder little structure, and smaller people would be
upsampled ten-fold into mush. Crop: the annotation's bbox, squared about its centre and
enlarged 1.2x (hcmoco.prepare.crops). COCO keypoints are integer pixel indices, so +0.5 puts
them at pixel centres (the processed format's continuous coordinates); joints outside the crop
get v = 0. `subject` and `image_id` are the COCO image id (COCO has no person identities);
`crop` is (left, top, side) in image pixels. No intrinsics are known, so there is no `cam`.
"""
from __future__ import annotations

import contextlib
import io
import json
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np

from hcmoco.atomic import atomic_directory
from hcmoco.processed.keypoints import LAYOUTS
from hcmoco.prepare.crops import ENLARGE, CropBox, crop_rgb, keypoints_to_crop, read_rgb
from hcmoco.prepare.writer import (SHARD_SIZE, check_resolution, prepare_parser, require_file,
                                    run_prepare_cli, write_split)
from hcmoco.errors import HcmocoError

SPLITS = {"train": "train2014", "test": "val2014"}
MIN_KEYPOINTS = 8
MIN_BOX = 32.0
NUM_JOINTS = 17


def load_coco(path: Path):
    """pycocotools COCO of a json file; a broken file is one error naming it."""
    from pycocotools.coco import COCO

    require_file(path, "COCO annotation json")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints progress lines
            return COCO(str(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise HcmocoError(f"{path}: not valid JSON ({err})") from None
    except (KeyError, TypeError, AssertionError) as err:
        raise HcmocoError(f"{path}: not a COCO annotation file ({type(err).__name__}: {err})") from None


def person_category(coco, path: Path) -> int:
    ids = coco.getCatIds(catNms=["person"])
    if not ids:
        raise HcmocoError(f"{path}: no 'person' category")
    return ids[0]


def usable(ann: dict, path: Path, min_keypoints: int, min_box: float) -> bool:
    try:
        kp, (_, _, w, h) = ann["keypoints"], ann["bbox"]
    except (KeyError, ValueError) as err:
        raise HcmocoError(f"{path}: annotation {ann.get('id')} lacks keypoints/bbox ({err})") from None
    if len(kp) != 3 * NUM_JOINTS:
        raise HcmocoError(f"{path}: annotation {ann.get('id')} has {len(kp)} keypoint values, expected 51")
    labelled = int(np.count_nonzero(np.asarray(kp[2::3]) > 0))
    return not ann.get("iscrowd", 0) and labelled >= min_keypoints and max(w, h) >= min_box


def person_samples(job: tuple, resolution: int) -> list[dict]:
    """The samples of one image: job = (image path, image id, [(bbox, keypoints), ...])."""
    path, image_id, people = job
    image = read_rgb(Path(path))
    out = []
    for (x, y, w, h), keypoints in people:
        box = CropBox.around(x, y, x + w, y + h, ENLARGE)
        kp = np.asarray(keypoints, np.float64).reshape(NUM_JOINTS, 3)
        kp[:, :2] += 0.5  # pixel index -> pixel centre
        out.append({"rgb": crop_rgb(image, box, resolution), "kp2d": keypoints_to_crop(kp, box, resolution),
                    "subject": np.int32(image_id), "image_id": np.int64(image_id), "crop": box.as_array()})
    return out


def image_jobs(coco, annotation_file: Path, image_dir: Path, min_keypoints: int, min_box: float) -> list[tuple]:
    """One job per image with at least one usable person, in image id order."""
    person = person_category(coco, annotation_file)
    jobs = []
    for image_id in sorted(coco.getImgIds()):
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id], catIds=[person], iscrowd=None))
        people = [(tuple(a["bbox"]), list(a["keypoints"])) for a in sorted(anns, key=lambda a: a["id"])
                  if usable(a, annotation_file, min_keypoints, min_box)]
        if people:
            jobs.append((str(image_dir / coco.imgs[image_id]["file_name"]), int(image_id), people))
    return jobs


def prepare(raw_root: Path, out_root: Path, resolution: int, min_keypoints: int = MIN_KEYPOINTS,
            min_box: float = MIN_BOX, shard_size: int = SHARD_SIZE, workers: int = 1) -> dict[str, int]:
    """Write out_root/train (train2014) and out_root/test (val2014); returns sample counts."""
    check_resolution(resolution)
    raw_root, counts = Path(raw_root), {}
    with atomic_directory(out_root) as tmp:
        for split, raw_split in SPLITS.items():
            ann_file = raw_root / "annotations" / f"person_keypoints_{raw_split}.json"
            jobs = image_jobs(load_coco(ann_file), ann_file, raw_root / raw_split, min_keypoints, min_box)
            meta = {"domain": "coco_keypoints", "split": split, "source": f"COCO 2014 person keypoints ({raw_split})",
                    "layout": "coco17", "joints": LAYOUTS["coco17"], "depth_kind": None, "resolution": resolution,
                    "preprocessor": {"name": "coco_keypoints", "raw_split": raw_split, "enlarge": ENLARGE,
                                     "min_keypoints": min_keypoints, "min_box": min_box}}
            counts[split] = write_split(tmp / split, meta, jobs, partial(person_samples, resolution=resolution),
                                        str(ann_file), shard_size, workers)
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = prepare_parser(__doc__.splitlines()[0])
    parser.add_argument("--min-keypoints", type=int, default=MIN_KEYPOINTS,
                        help="labelled keypoints a person needs (default: %(default)s of 17)")
    parser.add_argument("--min-box", type=float, default=MIN_BOX,
                        help="smallest longer box side, image pixels (default: %(default)s)")

    def body(args, workers):
        return prepare(Path(args.raw), Path(args.out), args.resolution, args.min_keypoints, args.min_box,
                       args.shard_size, workers)

    return run_prepare_cli(parser, body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
