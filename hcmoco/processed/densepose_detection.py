"""A DensePose split of images with COCO-format annotations -> the whole-image detection format.

    python -m hcmoco.processed.densepose_detection --data data/default/synth/synth_densepose \\
        --out data/default/synth/synth_densepose_detection

Reads each split (train/, test/) of a processed domain that has `rgb` and a `densepose_coco.json`
whose image ids are the sample indices (SynthHuman's synth_densepose, DensePose-COCO crops) and
writes the whole-image detection format (the fields below; the real DensePose-COCO images come
in it from hcmoco.prepare.densepose_coco_detection): the image unchanged
(`image_size` = its size, `scale` 1), every non-crowd person's box and DensePose points. The
annotations are copied, so DensePose R-CNN (hcmoco.tasks.detection) trains and is scored on
exactly what the dense head sees: a way to run the detector on SynthHuman, on any machine.

The detection fields (`person_arrays`; M people, P points): `boxes` float32 (M, 4) x0, y0, x1, y1
and `box_count` int32 of the detector targets (`is_target`), `dp_xy` float32 (M, P, 2) on
0..255 over each box, `dp_uv` float32 (M, P, 2), `dp_part` uint8 (M, P) and `dp_count` int32 (M,).
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from hcmoco.atomic import atomic_directory
from hcmoco.cli_common import run_plain_cli
from hcmoco.processed.shards import ProcessedSplit, SplitWriter, shard_ranges, stack_samples
from hcmoco.errors import HcmocoError

SHARD_SIZE = 256


def is_target(ann: dict) -> bool:
    """A detector target: a non-crowd person with a non-empty box."""
    return not ann.get("iscrowd", 0) and ann["bbox"][2] > 0 and ann["bbox"][3] > 0


def person_arrays(people: list[dict], scale: float, max_people: int, max_points: int) -> dict[str, np.ndarray]:
    """`boxes` (scaled), `box_count` and the DensePose point fields of one image's targets."""
    boxes = np.zeros((max_people, 4), np.float32)
    dp_xy, dp_uv = np.zeros((max_people, max_points, 2), np.float32), np.zeros((max_people, max_points, 2), np.float32)
    dp_part, dp_count = np.zeros((max_people, max_points), np.uint8), np.zeros(max_people, np.int32)
    targets = [a for a in people if is_target(a)]
    for m, ann in enumerate(targets):
        x, y, bw, bh = ann["bbox"]
        boxes[m] = np.array([x, y, x + bw, y + bh]) * scale
        if "dp_x" in ann:
            n = len(ann["dp_x"])
            dp_xy[m, :n] = np.stack([ann["dp_x"], ann["dp_y"]], 1)
            dp_uv[m, :n] = np.stack([ann["dp_U"], ann["dp_V"]], 1)
            dp_part[m, :n] = np.asarray(ann["dp_I"], np.float64).round()
            dp_count[m] = n
    return {"boxes": boxes, "box_count": np.int32(len(targets)), "dp_xy": dp_xy, "dp_uv": dp_uv,
            "dp_part": dp_part, "dp_count": dp_count}


def _people(coco: dict, count: int, path: Path) -> list[list[dict]]:
    """The detector targets of each image (sample index)."""
    people: list[list[dict]] = [[] for _ in range(count)]
    for ann in coco["annotations"]:
        i = ann["image_id"]
        if not isinstance(i, int) or not 0 <= i < count:
            raise HcmocoError(f"{path}: annotation {ann.get('id')} names image {i!r}, "
                              f"not a sample index 0..{count - 1}")
        if is_target(ann):
            people[i].append(ann)
    return people


def convert(data: Path, out: Path, shard_size: int = SHARD_SIZE) -> dict[str, int]:
    """Write out/{train,test} from data/{train,test}; returns the image counts."""
    data, out = Path(data), Path(out)
    splits = {name: ProcessedSplit(data / name) for name in ("train", "test")}
    cocos, people = {}, {}
    for name, split in splits.items():
        path = split.path / "densepose_coco.json"
        if not path.is_file():
            raise HcmocoError(f"{path}: missing (the COCO-format DensePose annotations of the split)")
        if "rgb" not in split.fields:
            raise HcmocoError(f"{split.path / 'index.json'}: no rgb field")
        cocos[name] = json.loads(path.read_text())
        people[name] = _people(cocos[name], len(split), path)
    everyone = [a for ps in people.values() for p in ps for a in p]
    max_people = max([len(p) for ps in people.values() for p in ps] + [1])
    max_points = max([len(a["dp_x"]) for a in everyone if "dp_x" in a] + [1])
    counts = {}
    with atomic_directory(out) as tmp:
        for name, split in splits.items():
            meta = {k: v for k, v in split.index.items() if k not in ("format", "fields", "shards", "num_samples")}
            meta.update(domain=f"{split.index['domain']}_detection", dp_max_people=max_people,
                        dp_max_points=max_points, converted_from=str(split.path))
            keep = [f for f in ("subject", "image_id") if f in split.fields]
            with SplitWriter(tmp / name, meta) as writer:
                for lo, hi in shard_ranges(len(split), shard_size):
                    idx = np.arange(lo, hi)
                    arrays = split.take(idx, ["rgb", *keep])
                    rgb, n = arrays["rgb"], hi - lo
                    targets = stack_samples([person_arrays(p, 1.0, max_people, max_points)
                                             for p in people[name][lo:hi]])
                    writer.add_shard({"rgb": rgb, "image_size": np.tile(np.array(rgb.shape[1:3], np.int32), (n, 1)),
                                      "scale": np.ones(n, np.float32), **targets, **{f: arrays[f] for f in keep}})
            shutil.copyfile(split.path / "densepose_coco.json", tmp / name / "densepose_coco.json")
            counts[name] = len(split)
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="processed domain with train/ and test/")
    parser.add_argument("--out", required=True, help="output domain directory")
    return run_plain_cli(parser, lambda args: f"{args.out}: {convert(Path(args.data), Path(args.out))}", argv)


if __name__ == "__main__":
    raise SystemExit(main())
