"""DensePose-COCO -> processed splits of person crops (rgb, coarse parsing, sparse IUV points, kp2d).

    python -m hcmoco.prepare.densepose_coco_real --raw RAW --out data/real/densepose_coco --resolution 320

Raw layout (annotations from dl.fbaipublicfiles.com/densepose, images from COCO 2014)::

    RAW/annotations/densepose_coco_2014_{train,valminusminival,minival}.json
    RAW/train2014/<file_name>  (train),  RAW/val2014/<file_name>  (valminusminival, minival)
    (or IMAGES/train2014, IMAGES/val2014 with --images IMAGES, e.g. the COCO 2014 download)

Splits: train + valminusminival -> train (in that order), minival -> test.
Samples: one per non-crowd person annotation with DensePose labels (`dp_masks` and `dp_x`)
and a non-empty box. Crop: the bbox squared about its centre, enlarged 1.2x.

Fields (SynthHuman's `synth_densepose` has a dense `iuv` and `surface`; the real data has
only the 14 coarse masks and sparse points, so these stand in for them):
- `parsing` uint8 (R, R): DensePose's 14 coarse parts, 0 background, 1 torso, 2 right hand,
  3 left hand, 4 left foot, 5 right foot, 6/7 upper leg right/left, 8/9 lower leg right/left,
  10/11 upper arm left/right, 12/13 lower arm left/right, 14 head (the order of dp_masks; a
  later mask wins where two overlap, as in the official loader). Not the 25 fine classes:
  the index key `parsing_classes` names the 15 labels.
- `dp_points` float32 (P, 4): (x, y) in crop pixels (image x = bbox_x + dp_x / 255 * bbox_w),
  U, V in [0, 1]; `dp_part` uint8 (P,): the fine part dp_I (1..24); `dp_count` int32: the
  number of real points, rows past it are 0. P is the most points of any person in the raw
  files, so train and test agree.
- `kp2d` (17, 3) coco17 (+0.5: COCO keypoints are pixel indices), `subject` / `image_id`
  the COCO image id, `crop` (left, top, side) in image pixels.
Each split also gets `densepose_coco.json`, the COCO-format annotations of the crops for the
DensePose evaluator, laid out as hcmoco.processed.densepose_coco writes them for SynthHuman: one
image per sample (id = sample index), its person with bbox and keypoints in crop pixels and
the unchanged box-relative dp_* fields and dp_masks (a crop is a similarity of the image),
plus `source` (raw file, image id, annotation id).
"""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np
from pycocotools import mask as mask_utils

from hcmoco.atomic import atomic_directory, atomic_write_text
from hcmoco.processed.densepose_coco import MASK_SIZE, encode_rle
from hcmoco.processed.shards import ProcessedSplit
from hcmoco.processed.keypoints import LAYOUT_EDGES, LAYOUTS
from hcmoco.prepare.coco_keypoints import load_coco, person_category
from hcmoco.prepare.crops import ENLARGE, CropBox, crop_rgb, keypoints_to_crop, read_rgb
from hcmoco.prepare.writer import SHARD_SIZE, check_resolution, prepare_parser, run_prepare_cli, write_split
from hcmoco.errors import HcmocoError

RAW_SPLITS = {"train": ("train", "valminusminival"), "test": ("minival",)}
IMAGE_DIRS = {"train": "train2014", "valminusminival": "val2014", "minival": "val2014"}
COARSE_PARTS = ("background", "torso", "r_hand", "l_hand", "l_foot", "r_foot", "r_upper_leg", "l_upper_leg",
                "r_lower_leg", "l_lower_leg", "l_upper_arm", "r_upper_arm", "l_lower_arm", "r_lower_arm", "head")
POINT_KEYS = ("dp_I", "dp_U", "dp_V", "dp_x", "dp_y")


def annotation_file(raw_root: Path, raw_split: str) -> Path:
    return raw_root / "annotations" / f"densepose_coco_2014_{raw_split}.json"


def densepose_people(coco, path: Path) -> list[dict]:
    """Usable annotations of one raw file, in (image id, annotation id) order."""
    person = person_category(coco, path)
    people = []
    for image_id in sorted(coco.getImgIds()):
        for ann in sorted(coco.loadAnns(coco.getAnnIds(imgIds=[image_id], catIds=[person])), key=lambda a: a["id"]):
            if ann.get("iscrowd", 0) or "dp_masks" not in ann or "dp_x" not in ann:
                continue
            try:
                _, _, w, h = ann["bbox"]
                lengths = {len(ann[k]) for k in POINT_KEYS}
                valid = len(ann["dp_masks"]) == 14 and len(ann["keypoints"]) == 51 and len(lengths) == 1
            except (KeyError, TypeError, ValueError) as err:
                raise HcmocoError(f"{path}: annotation {ann.get('id')} is malformed ({err})") from None
            if not valid:
                raise HcmocoError(f"{path}: annotation {ann.get('id')} needs 14 dp_masks, 51 keypoint values "
                                  f"and equally long {'/'.join(POINT_KEYS)}")
            if w > 0 and h > 0:
                people.append({**ann, "file_name": coco.imgs[image_id]["file_name"]})
    return people


def coarse_parsing(dp_masks: list, bbox: list[float], box: CropBox, resolution: int) -> np.ndarray:
    """uint8 (R, R) coarse labels: each crop pixel centre looked up in the 256x256 box frame."""
    frame = np.zeros((MASK_SIZE, MASK_SIZE), np.uint8)
    for part, rle in enumerate(dp_masks, start=1):
        if rle:
            frame[mask_utils.decode(rle) > 0] = part
    bx, by, bw, bh = bbox
    centres = (np.arange(resolution) + 0.5) / box.scale(resolution)
    cols = np.floor((box.left + centres - bx) / bw * MASK_SIZE).astype(np.int64)
    rows = np.floor((box.top + centres - by) / bh * MASK_SIZE).astype(np.int64)
    in_c, in_r = (cols >= 0) & (cols < MASK_SIZE), (rows >= 0) & (rows < MASK_SIZE)
    out = np.zeros((resolution, resolution), np.uint8)
    out[np.ix_(in_r, in_c)] = frame[np.ix_(rows[in_r], cols[in_c])]
    return out


def point_arrays(person: dict, box: CropBox, resolution: int, max_points: int) -> dict[str, np.ndarray]:
    bx, by, bw, bh = person["bbox"]
    n = len(person["dp_x"])
    xy = np.stack([bx + np.asarray(person["dp_x"], np.float64) / 255.0 * bw,
                   by + np.asarray(person["dp_y"], np.float64) / 255.0 * bh], axis=1).reshape(n, 2)
    points = np.zeros((max_points, 4), np.float32)
    part = np.zeros(max_points, np.uint8)
    points[:n, :2] = box.to_crop(xy, resolution)
    points[:n, 2], points[:n, 3] = person["dp_U"], person["dp_V"]
    part[:n] = np.asarray(person["dp_I"], np.float64).round()
    return {"dp_points": points, "dp_part": part, "dp_count": np.int32(n)}


def crop_box(person: dict) -> CropBox:
    x, y, w, h = person["bbox"]
    return CropBox.around(x, y, x + w, y + h, ENLARGE)


def person_samples(job: tuple, resolution: int, max_points: int) -> list[dict]:
    """The samples of one image: job = (image path, image id, [person annotation, ...])."""
    path, image_id, people = job
    image = read_rgb(Path(path))
    out = []
    for person in people:
        box = crop_box(person)
        kp = np.asarray(person["keypoints"], np.float64).reshape(17, 3)
        kp[:, :2] += 0.5
        out.append({"rgb": crop_rgb(image, box, resolution),
                    "parsing": coarse_parsing(person["dp_masks"], person["bbox"], box, resolution),
                    **point_arrays(person, box, resolution, max_points),
                    "kp2d": keypoints_to_crop(kp, box, resolution), "subject": np.int32(image_id),
                    "image_id": np.int64(image_id), "crop": box.as_array()})
    return out


def crop_annotations(split_dir: Path, people: list[tuple[str, dict]], domain: str) -> dict:
    """The COCO-format DensePose annotations of the written crops (sample i <-> people[i])."""
    split = ProcessedSplit(split_dir)
    resolution, name = int(split.index["resolution"]), split.index["split"]
    images, annotations = [], []
    for i, (source, person) in enumerate(people):
        box, s = crop_box(person), split[i]
        x, y, w, h = person["bbox"]
        (x0, y0), = box.to_crop([[x, y]], resolution)
        scale = box.scale(resolution)
        kp = s["kp2d"].astype(np.float64)
        foreground = s["parsing"] > 0
        images.append({"id": i, "file_name": f"{domain}/{name}/{i:06d}", "height": resolution, "width": resolution})
        annotations.append({
            "id": i + 1, "image_id": i, "category_id": 1, "iscrowd": 0,
            "bbox": [float(x0), float(y0), float(w * scale), float(h * scale)],
            "area": float(foreground.sum()), "segmentation": encode_rle(foreground),
            "keypoints": [round(float(v), 3) for v in kp.reshape(-1)], "num_keypoints": int((kp[:, 2] > 0).sum()),
            "dp_masks": person["dp_masks"], **{k: list(person[k]) for k in POINT_KEYS},
            "source": {"file": source, "image_id": int(person["image_id"]), "id": int(person["id"])}})
    category = {"id": 1, "name": "person", "supercategory": "person", "keypoints": LAYOUTS["coco17"],
                "skeleton": [[a + 1, b + 1] for a, b in LAYOUT_EDGES["coco17"]]}
    return {"info": {"description": f"DensePose-COCO {name} person crops ({resolution} px)"},
            "images": images, "annotations": annotations, "categories": [category]}


def prepare(raw_root: Path, out_root: Path, resolution: int, shard_size: int = SHARD_SIZE,
            workers: int = 1, images: Path | None = None) -> dict[str, int]:
    """Write out_root/{train,test} with their densepose_coco.json; returns sample counts.
    `images`: the folder holding train2014/ and val2014/ (default: raw_root; the COCO 2014
    download, data/raw/coco2014, in the paper profile)."""
    check_resolution(resolution)
    raw_root = Path(raw_root)
    images = Path(images) if images is not None else raw_root
    people = {raw: densepose_people(load_coco(annotation_file(raw_root, raw)), annotation_file(raw_root, raw))
              for raws in RAW_SPLITS.values() for raw in raws}
    max_points = max([len(p["dp_x"]) for ps in people.values() for p in ps] + [1])
    counts = {}
    with atomic_directory(out_root) as tmp:
        for split, raws in RAW_SPLITS.items():
            jobs, order = [], []
            for raw in raws:
                by_image: dict[int, list] = {}
                for p in people[raw]:
                    by_image.setdefault(int(p["image_id"]), []).append(p)
                for image_id, ps in by_image.items():
                    jobs.append((str(images / IMAGE_DIRS[raw] / ps[0]["file_name"]), image_id, ps))
                    order += [(annotation_file(raw_root, raw).name, p) for p in ps]
            meta = {"domain": "densepose_coco", "split": split, "layout": "coco17", "joints": LAYOUTS["coco17"],
                    "source": f"DensePose-COCO 2014 ({' + '.join(raws)})", "depth_kind": None,
                    "resolution": resolution, "parsing_classes": list(COARSE_PARTS), "dp_max_points": max_points,
                    "eval_data": str(raw_root / "eval_data"),
                    "preprocessor": {"name": "densepose_coco_real", "raw_splits": list(raws), "enlarge": ENLARGE}}
            make = partial(person_samples, resolution=resolution, max_points=max_points)
            counts[split] = write_split(tmp / split, meta, jobs, make, " + ".join(
                str(annotation_file(raw_root, r)) for r in raws), shard_size, workers)
            coco = crop_annotations(tmp / split, order, "densepose_coco")
            atomic_write_text(tmp / split / "densepose_coco.json", json.dumps(coco))
    return counts


def images_cli(prepare_fn, description: str, argv: Sequence[str] | None = None) -> int:
    """The DensePose-COCO preprocessors' CLI: the common options plus --images."""
    parser = prepare_parser(description)
    parser.add_argument("--images", help="folder with train2014/ and val2014/ (default: --raw)")

    def body(args, workers):
        return prepare_fn(Path(args.raw), Path(args.out), args.resolution, args.shard_size, workers,
                          Path(args.images) if args.images else None)

    return run_prepare_cli(parser, body, argv)


def main(argv: Sequence[str] | None = None) -> int:
    return images_cli(prepare, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    raise SystemExit(main())
