"""NTURGBD-Parsing-4K -> the processed format: masked-depth person crops with 25-class part labels.

    python -m hcmoco.prepare.parsing4k --raw data/raw/parsing4k --out data/paper/parsing4k --resolution 320

Raw layout: the one recommended by the dataset's README (HCMoCo, pycontrast/data/
NTURGBD-Parsing-4K): the released annotations and lists, plus the NTU frames collected by name:

    <raw>/train_list_v2.txt, <raw>/val_list_v2.txt   one sample a line: images/<name>.jpg
    <raw>/depth/MDepth-<name>.png                    NTU masked depth of that frame, uint16 mm
    <raw>/png_annotation_v2/<name>.png               part labels, Human3.6M's label values
    <raw>/images/<name>.jpg                          optional: RGB aligned to the depth frame

`<name>` is SsssCcccPpppRrrrAaaaFfff (frame counted from 1). The lists hold 1,963 train and
1,963 val samples; `--setting 20pct` keeps the first 392 lines of each (the README's "v3" lists).
Splits: the train list -> train, the val list -> test (model selection carves its validation
from train). Labels map to 25 classes as for Human3.6M (hcmoco.prepare.h36m.PART_LABELS).
The crop is a square of 1.2x the labelled person's box in the depth frame (the depth
foreground's when nothing is labelled). Fields: depth (masked), parsing, subject (P), and rgb
when images/ holds every sample. The released aligned images come from the public alignment
script, whose homographies were attached to the wrong videos, so check their alignment before
relying on rgb; the paper's task (depth parsing) reads depth only.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from hcmoco.prepare.crops import (MIN_SIDE, CropBox, crop_nearest, mask_box, read_depth_png, read_label_png,
                                   read_rgb, resample_rgb)
from hcmoco.prepare.writer import SplitsWriter, parallel_map, prepare_parser, run_prepare_cli
from hcmoco.prepare.h36m import CLASS_NAMES, PART_LABELS, map_part_labels
from hcmoco.errors import HcmocoError

LISTS = {"train": "train_list_v2.txt", "test": "val_list_v2.txt"}
SETTINGS = {"full": None, "20pct": 392}  # samples kept from the top of each list
SAMPLE_NAME = re.compile(r"^S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})F(\d{3,})$")


def read_list(path: Path) -> list[str]:
    """Sample names of one list file (lines `images/<name>.jpg`; blank lines ignored)."""
    if not path.is_file():
        raise HcmocoError(f"{path}: missing (expected the NTURGBD-Parsing-4K lists, see hcmoco/prepare/parsing4k.py)")
    names = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        entry = Path(line)
        if entry.parent.as_posix() != "images" or entry.suffix != ".jpg" or not SAMPLE_NAME.match(entry.stem):
            raise HcmocoError(f"{path}:{number}: expected images/SsssCcccPpppRrrrAaaaFfff.jpg, got {line[:60]!r}")
        names.append(entry.stem)
    return names


def sample(job: tuple) -> tuple[str, str, dict]:
    raw, split, name, size, with_rgb = job
    depth_path, label_path = raw / "depth" / f"MDepth-{name}.png", raw / "png_annotation_v2" / f"{name}.png"
    depth, raw_labels = read_depth_png(depth_path), read_label_png(label_path)
    if raw_labels.shape != depth.shape:
        raise HcmocoError(f"{label_path}: labels {list(raw_labels.shape)} do not match the depth "
                          f"{list(depth.shape)} of {depth_path}")
    labels = map_part_labels(raw_labels, label_path)
    box = mask_box(labels > 0) or mask_box(depth > 0)
    crop = CropBox.around(*box, min_side=MIN_SIDE) if box is not None else CropBox.frame(*depth.shape)
    out = {"depth": crop_nearest(depth, crop, size), "parsing": crop_nearest(labels, crop, size),
           "subject": np.int32(SAMPLE_NAME.match(name).group(3))}
    if with_rgb:
        rgb_path = raw / "images" / f"{name}.jpg"
        image = read_rgb(rgb_path)
        if image.shape[:2] != depth.shape:
            raise HcmocoError(f"{rgb_path}: image {list(image.shape[:2])} is not aligned to the depth "
                              f"{list(depth.shape)} of {depth_path}")
        out["rgb"] = resample_rgb(image, crop.index_matrix(size), size)
    return split, name, out


def prepare(raw_root: str | Path, out_root: str | Path, resolution: int, setting: str = "full",
            workers: int = 1, shard_size: int = 256) -> dict[str, int]:
    """Write `out_root/{train,test}`; returns the sample count per split."""
    raw = Path(raw_root)
    if setting not in SETTINGS:
        raise HcmocoError(f"--setting: unknown setting {setting!r} (known: {', '.join(SETTINGS)})")
    names = {split: read_list(raw / fname)[:SETTINGS[setting]] for split, fname in LISTS.items()}
    everything = [n for split in names.values() for n in split]
    has_rgb = [(raw / "images" / f"{n}.jpg").is_file() for n in everything]
    with_rgb = all(has_rgb)
    if any(has_rgb) and not with_rgb:
        missing = everything[has_rgb.index(False)]
        raise HcmocoError(f"{raw / 'images' / f'{missing}.jpg'}: missing (rgb is used only when images/ "
                          f"holds every listed sample)")
    meta = {"domain": "parsing4k", "source": "NTURGBD-Parsing-4K", "resolution": resolution,
            "layout": None, "joints": [], "depth_kind": "masked", "setting": setting,
            "classes": CLASS_NAMES, "label_values": [v for v, _ in PART_LABELS],
            "lists": {split: LISTS[split] for split in names}}
    jobs = [(raw, split, name, resolution, with_rgb) for split, split_names in names.items() for name in split_names]
    with SplitsWriter(out_root, meta, shard_size) as writer:
        for split, name, out in parallel_map(sample, jobs, workers):
            writer.add(split, name, out)
    return dict(writer.counts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = prepare_parser(__doc__.splitlines()[0])
    parser.add_argument("--setting", default="full", choices=sorted(SETTINGS),
                        help="full lists, or the first 392 samples of each (default: %(default)s)")

    def body(args, workers):
        return prepare(args.raw, args.out, args.resolution, args.setting, workers, args.shard_size)

    return run_prepare_cli(parser, body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
