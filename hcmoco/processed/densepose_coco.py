"""COCO-format DensePose annotations for a processed split that carries `iuv`.

The fields follow DensePose-COCO, so the DensePose evaluator runs the same code on SynthHuman
and on the real annotations:
- `dp_I` (fine part 1..24), `dp_U`, `dp_V` (in [0,1]) at annotated points;
- `dp_x`, `dp_y`: the points in the person box scaled to [0, 255]
  (image x = bbox_x + dp_x / 255 * bbox_w);
- `dp_masks`: 14 coarse-part masks of the box resampled to 256x256, each an RLE (pycocotools)
  or [] when the part is absent.
Each image holds one person (a top-down crop), annotation id == image id.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from hcmoco.atomic import atomic_write_text
from hcmoco.processed.shards import FormatError, ProcessedSplit

COARSE_OF_FINE = np.array([0, 1, 1, 2, 3, 4, 5, 6, 7, 6, 7, 8, 9, 8, 9, 10, 11, 10, 11,
                           12, 13, 12, 13, 14, 14], dtype=np.uint8)
"""DensePose's 14 coarse parts: torso, r hand, l hand, l foot, r foot, upper leg r/l,
lower leg r/l, upper arm l/r, lower arm l/r, head; index 0 is background."""
MASK_SIZE = 256


def encode_rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def person_box(foreground: np.ndarray) -> list[float]:
    """Tight [x, y, w, h] box of a mask in pixel units (pixel i spans [i, i+1))."""
    ys, xs = np.nonzero(foreground)
    x0, y0 = xs.min(), ys.min()
    return [float(x0), float(y0), float(xs.max() + 1 - x0), float(ys.max() + 1 - y0)]


def coarse_masks(parsing: np.ndarray, box: list[float]) -> list:
    """The 14 coarse-part masks inside `box`, resampled (nearest) to MASK_SIZE x MASK_SIZE."""
    x0, y0, w, h = box
    centres = (np.arange(MASK_SIZE) + 0.5) / MASK_SIZE
    rows = np.clip((y0 + centres * h).astype(int), 0, parsing.shape[0] - 1)
    cols = np.clip((x0 + centres * w).astype(int), 0, parsing.shape[1] - 1)
    coarse = COARSE_OF_FINE[parsing[np.ix_(rows, cols)]]
    return [encode_rle(coarse == c) if (coarse == c).any() else [] for c in range(1, 15)]


def sample_points(iuv: np.ndarray, box: list[float], per_part: int, rng: np.random.Generator) -> dict:
    """Up to `per_part` annotated points per visible part, drawn without replacement."""
    x0, y0, w, h = box
    points = {"dp_I": [], "dp_U": [], "dp_V": [], "dp_x": [], "dp_y": []}
    for part in np.unique(iuv[..., 0]):
        if part == 0:
            continue
        ys, xs = np.nonzero(iuv[..., 0] == part)
        pick = np.sort(rng.choice(len(ys), size=min(per_part, len(ys)), replace=False))
        ys, xs = ys[pick], xs[pick]
        points["dp_I"] += [float(part)] * len(ys)
        points["dp_U"] += (iuv[ys, xs, 1] / 255.0).tolist()
        points["dp_V"] += (iuv[ys, xs, 2] / 255.0).tolist()
        points["dp_x"] += ((xs + 0.5 - x0) / w * 255.0).tolist()
        points["dp_y"] += ((ys + 0.5 - y0) / h * 255.0).tolist()
    return points


def build_coco(split: ProcessedSplit, per_part: int, seed: int) -> dict:
    """A COCO dict (images, annotations, categories) with DensePose fields, one person per image."""
    from hcmoco.processed.keypoints import LAYOUT_EDGES, LAYOUTS

    domain, name = split.index["domain"], split.index["split"]
    if split.index["layout"] != "coco17":
        raise FormatError(f"{split.path}: DensePose annotations need the coco17 layout, not {split.index['layout']}")
    images, annotations = [], []
    for i in range(len(split)):
        s = split[i]
        parsing = s["parsing"]
        h, w = parsing.shape
        images.append({"id": i, "file_name": f"{domain}/{name}/{i:06d}", "height": h, "width": w})
        if not (parsing > 0).any():
            continue
        box = person_box(parsing > 0)
        kp = s["kp2d"].astype(np.float64).copy()
        kp[kp[:, 2] == 0, :2] = 0.0  # COCO: unlabelled joints at (0, 0)
        rng = np.random.default_rng([seed, 0xD9, 0 if name == "train" else 1, i])
        annotations.append({
            "id": i + 1, "image_id": i, "category_id": 1, "iscrowd": 0, "bbox": box,
            "area": float((parsing > 0).sum()), "segmentation": encode_rle(parsing > 0),
            "keypoints": [round(float(v), 3) for v in kp.reshape(-1)],
            "num_keypoints": int((kp[:, 2] > 0).sum()),
            "dp_masks": coarse_masks(parsing, box),
            **sample_points(s["iuv"], box, per_part, rng),
        })
    category = {"id": 1, "name": "person", "supercategory": "person", "keypoints": LAYOUTS["coco17"],
                "skeleton": [[a + 1, b + 1] for a, b in LAYOUT_EDGES["coco17"]]}
    return {"info": {"description": f"SynthHuman {domain} {name}: DensePose-COCO format"},
            "images": images, "annotations": annotations, "categories": [category]}


def write_densepose_coco(split_dir: Path, per_part: int, seed: int) -> Path:
    out = Path(split_dir) / "densepose_coco.json"
    atomic_write_text(out, json.dumps(build_coco(ProcessedSplit(split_dir), per_part, seed)))
    return out
