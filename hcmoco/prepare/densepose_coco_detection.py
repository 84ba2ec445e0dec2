"""DensePose-COCO -> processed splits of whole images, for DensePose R-CNN (detection setting).

    python -m hcmoco.prepare.densepose_coco_detection --raw RAW --out data/real/densepose_coco_detection \\
        --resolution 512 --images data/raw/coco2014

The raw layout and the splits are those of hcmoco.prepare.densepose_coco_real (train +
valminusminival -> train, minival -> test). One sample per image that holds at least one
usable DensePose person; the paper's DensePose numbers come from detections on such images.

Each image is scaled so that its longer side is `resolution` and placed at the top left of a
black square canvas (a similarity, so box-relative DensePose coordinates carry over unchanged).
Fields (M = the most people of any image, P = the most points of any person, over all files):
- `rgb` uint8 (R, R, 3); `image_size` int32 (2,): height, width of the scaled image on the
  canvas (the rest is padding); `scale` float32: canvas pixels per source pixel.
- `boxes` float32 (M, 4): x0, y0, x1, y1 in canvas pixels of every non-crowd person with a box
  (detector targets, DensePose points or not); `box_count` int32: rows used.
- `dp_xy` float32 (M, P, 2): dp_x, dp_y (0..255 over the person's box, the COCO convention);
  `dp_uv` float32 (M, P, 2): U, V in [0, 1]; `dp_part` uint8 (M, P): dp_I (1..24);
  `dp_count` int32 (M,): points per person (0: a person without DensePose labels).
- `subject` int32 / `image_id` int64: the COCO image id (splits group by image).
Each split's `densepose_coco.json` holds the evaluator's ground truth in canvas pixels: one
image per sample (id = sample index, R x R), all of its person annotations, crowds and people
without DensePose labels included (the evaluator ignores them, and the detections on them),
with scaled bbox and area and the unchanged dp_* fields and dp_masks.
"""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np

from hcmoco.atomic import atomic_directory, atomic_write_text
from hcmoco.processed.densepose_detection import is_target, person_arrays
from hcmoco.processed.shards import ProcessedSplit
from hcmoco.prepare.coco_keypoints import load_coco, person_category
from hcmoco.prepare.crops import CropBox, crop_rgb, read_rgb
from hcmoco.prepare.densepose_coco_real import (IMAGE_DIRS, POINT_KEYS, RAW_SPLITS, annotation_file,
                                                 densepose_people, images_cli)
from hcmoco.prepare.writer import SHARD_SIZE, check_resolution, write_split

DOMAIN = "densepose_coco_detection"


def image_people(coco, path: Path) -> list[dict]:
    """Images with at least one usable DensePose person, in image id order:
    {"image_id", "file_name", "height", "width", "people": [every person annotation, by id]}."""
    with_dp = {}
    for person in densepose_people(coco, path):  # validates the DensePose annotations
        with_dp.setdefault(int(person["image_id"]), set()).add(person["id"])
    category = person_category(coco, path)
    images = []
    for image_id in sorted(with_dp):
        anns = sorted(coco.loadAnns(coco.getAnnIds(imgIds=[image_id], catIds=[category])), key=lambda a: a["id"])
        info = coco.imgs[image_id]
        images.append({"image_id": image_id, "file_name": info["file_name"], "height": int(info["height"]),
                       "width": int(info["width"]),
                       "people": [a if a["id"] in with_dp[image_id] else _without_points(a) for a in anns]})
    return images


def _without_points(ann: dict) -> dict:
    """A person the evaluator ignores: no dp_* fields (a partial annotation would count)."""
    return {k: v for k, v in ann.items() if k not in POINT_KEYS and k != "dp_masks"}


def image_sample(job: tuple, resolution: int, max_people: int, max_points: int) -> list[dict]:
    """The sample of one image: job = (image path, image record of `image_people`)."""
    path, record = job
    image = read_rgb(Path(path))
    h, w = image.shape[:2]
    scale = resolution / max(h, w)
    return [{"rgb": crop_rgb(image, CropBox(0.0, 0.0, float(max(h, w))), resolution),
             "image_size": np.array([min(resolution, int(np.ceil(h * scale))),
                                     min(resolution, int(np.ceil(w * scale)))], np.int32),
             "scale": np.float32(scale), **person_arrays(record["people"], scale, max_people, max_points),
             "subject": np.int32(record["image_id"]), "image_id": np.int64(record["image_id"])}]


def image_annotations(records: list[tuple[str, dict]], resolution: int, split: str, scales: list[float]) -> dict:
    """The evaluator's COCO-format ground truth of the written images (sample i <-> records[i])."""
    images, annotations = [], []
    for i, ((source, record), scale) in enumerate(zip(records, scales)):
        images.append({"id": i, "file_name": f"{DOMAIN}/{split}/{i:06d}", "height": resolution, "width": resolution})
        for ann in record["people"]:
            x, y, bw, bh = ann["bbox"]
            keep = {k: ann[k] for k in (*POINT_KEYS, "dp_masks") if k in ann}
            annotations.append({
                "id": len(annotations) + 1, "image_id": i, "category_id": 1, "iscrowd": int(ann.get("iscrowd", 0)),
                "bbox": [float(v * scale) for v in (x, y, bw, bh)],
                "area": float(ann.get("area", bw * bh)) * scale ** 2, **keep,
                "source": {"file": source, "image_id": record["image_id"], "id": int(ann["id"])}})
    return {"info": {"description": f"DensePose-COCO {split} whole images (longer side {resolution} px)"},
            "images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "person", "supercategory": "person"}]}


def prepare(raw_root: Path, out_root: Path, resolution: int, shard_size: int = SHARD_SIZE,
            workers: int = 1, images: Path | None = None) -> dict[str, int]:
    """Write out_root/{train,test} with their densepose_coco.json; returns image counts.
    `images`: the folder holding train2014/ and val2014/ (default: raw_root)."""
    check_resolution(resolution)
    raw_root = Path(raw_root)
    images = Path(images) if images is not None else raw_root
    per_raw = {raw: image_people(load_coco(annotation_file(raw_root, raw)), annotation_file(raw_root, raw))
               for raws in RAW_SPLITS.values() for raw in raws}
    everyone = [a for recs in per_raw.values() for r in recs for a in r["people"]]
    max_people = max([sum(map(is_target, r["people"])) for recs in per_raw.values() for r in recs] + [1])
    max_points = max([len(a["dp_x"]) for a in everyone if "dp_x" in a] + [1])
    counts = {}
    with atomic_directory(out_root) as tmp:
        for split, raws in RAW_SPLITS.items():
            jobs, order = [], []
            for raw in raws:
                for record in per_raw[raw]:
                    jobs.append((str(images / IMAGE_DIRS[raw] / record["file_name"]), record))
                    order.append((annotation_file(raw_root, raw).name, record))
            meta = {"domain": DOMAIN, "split": split, "layout": None, "depth_kind": None, "resolution": resolution,
                    "source": f"DensePose-COCO 2014 ({' + '.join(raws)}), whole images",
                    "dp_max_people": max_people, "dp_max_points": max_points, "eval_data": str(raw_root / "eval_data"),
                    "preprocessor": {"name": "densepose_coco_detection", "raw_splits": list(raws)}}
            make = partial(image_sample, resolution=resolution, max_people=max_people, max_points=max_points)
            counts[split] = write_split(tmp / split, meta, jobs, make, " + ".join(
                str(annotation_file(raw_root, r)) for r in raws), shard_size, workers)
            scales = ProcessedSplit(tmp / split).field("scale").tolist()
            coco = image_annotations(order, resolution, split, scales)
            atomic_write_text(tmp / split / "densepose_coco.json", json.dumps(coco))
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    return images_cli(prepare, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    raise SystemExit(main())
