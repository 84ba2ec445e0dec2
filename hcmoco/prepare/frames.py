"""Shared pieces of the real-data preprocessors: reading raw frames, the person crop, and
collecting processed samples into the train/test splits of the processed format.

Crop geometry: continuous pixel coordinates, pixel i spanning [i, i + 1) (the processed
format's convention, as SynthHuman's cameras). A crop is a square box (x0, y0, side) in the
source frame; output pixel c covers [x0 + c s, x0 + (c + 1) s) with s = side / size.
Raw datasets that give pixel-index coordinates (a pixel's centre at its integer index: Kinect,
OpenCV) are shifted by +0.5 before they enter a crop.
"""
from __future__ import annotations

import math
import multiprocessing as mp
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from hcmoco.atomic import atomic_directory
from hcmoco.prepare import writer
from hcmoco.processed.shards import SplitWriter
from hcmoco.prepare.homography import apply_homography, warp_image
from hcmoco.errors import HcmocoError

CROP_SCALE = 1.2  # side of the square crop / longer side of the person box
MAX_SUPERSAMPLING = 4
SPLITS = ("train", "test")
SAMPLE_LIST = "samples.txt"  # one raw sample id per line, in sample order, beside index.json


# ---- reading raw frames ----------------------------------------------------------------------
def _open(path: Path) -> Image.Image:
    if not path.is_file():
        raise HcmocoError(f"{path}: missing")
    try:
        image = Image.open(path)
        image.load()
    except (UnidentifiedImageError, OSError) as err:
        raise HcmocoError(f"{path}: not a readable image ({err})") from None
    return image


def read_rgb(path: str | Path) -> np.ndarray:
    """uint8 (H, W, 3)."""
    return np.asarray(_open(Path(path)).convert("RGB"), dtype=np.uint8)


def read_depth_png(path: str | Path) -> np.ndarray:
    """uint16 (H, W) millimetres from a single-channel 16-bit PNG."""
    image = _open(Path(path))
    if image.mode not in ("I;16", "I;16B", "I;16L", "I"):
        raise HcmocoError(f"{path}: depth must be a 16-bit single-channel PNG, got mode {image.mode}")
    depth = np.asarray(image)
    if depth.dtype != np.uint16:
        if depth.min() < 0 or depth.max() > 65535:
            raise HcmocoError(f"{path}: depth values outside the uint16 range")
        depth = depth.astype(np.uint16)
    return depth


def read_label_png(path: str | Path) -> np.ndarray:
    """uint8 (H, W) label indices from a palette ('P') or greyscale ('L') PNG."""
    image = _open(Path(path))
    if image.mode not in ("P", "L"):
        raise HcmocoError(f"{path}: labels must be a palette or greyscale PNG of indices, got mode {image.mode}")
    return np.asarray(image, dtype=np.uint8)


def write_depth_png(path: str | Path, depth: np.ndarray) -> None:
    """Inverse of read_depth_png (used by the raw-format fixtures too)."""
    depth = np.ascontiguousarray(depth, dtype=np.uint16)
    image = Image.new("I;16", (depth.shape[1], depth.shape[0]))
    image.frombytes(depth.astype("<u2").tobytes())
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


# ---- the person crop ------------------------------------------------------------------------
@dataclass(frozen=True)
class CropBox:
    x0: float
    y0: float
    side: float

    def to_crop(self, xy: np.ndarray, size: int) -> np.ndarray:
        """(..., 2) continuous source coordinates -> continuous crop coordinates."""
        return (np.asarray(xy, np.float64) - (self.x0, self.y0)) * (size / self.side)

    def index_matrix(self, size: int) -> np.ndarray:
        """(3, 3) affine from source pixel-index coordinates to crop pixel-index coordinates."""
        s = size / self.side
        return np.array([[s, 0.0, (0.5 - self.x0) * s - 0.5], [0.0, s, (0.5 - self.y0) * s - 0.5],
                         [0.0, 0.0, 1.0]])

    def camera(self, fx: float, fy: float, cx: float, cy: float, size: int) -> np.ndarray:
        """Pinhole intrinsics (continuous coordinates) of the source -> of the crop, float32[4]."""
        s = size / self.side
        return np.array([fx * s, fy * s, (cx - self.x0) * s, (cy - self.y0) * s], np.float32)


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """Tight (x0, y0, x1, y1) of a boolean mask in continuous coordinates; None when empty."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return None
    return float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)


def points_box(xy: np.ndarray) -> tuple[float, float, float, float] | None:
    """(x0, y0, x1, y1) of finite (N, 2) continuous points; None when there are none."""
    xy = np.asarray(xy, np.float64)
    xy = xy[np.isfinite(xy).all(axis=1)]
    if not len(xy):
        return None
    return float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()), float(xy[:, 1].max())


def union_box(*boxes: tuple[float, float, float, float] | None) -> tuple[float, float, float, float] | None:
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        return None
    b = np.array(boxes)
    return float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())


def square_box(box: tuple[float, float, float, float], scale: float = CROP_SCALE, min_side: float = 8.0) -> CropBox:
    """The square of side scale x the box's longer side, centred on the box."""
    x0, y0, x1, y1 = box
    side = max(scale * max(x1 - x0, y1 - y0), min_side)
    return CropBox((x0 + x1 - side) / 2.0, (y0 + y1 - side) / 2.0, side)


def frame_box(height: int, width: int) -> CropBox:
    """The whole frame as a square crop (centred; padded on the shorter side)."""
    return square_box((0.0, 0.0, float(width), float(height)), scale=1.0)


def crop_nearest(array: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """Nearest-neighbour crop (depth, labels: values are never mixed), 0 outside the frame."""
    steps = (np.arange(size) + 0.5) * (box.side / size)  # output pixel centres in the source
    cols, rows = np.floor(box.x0 + steps).astype(np.int64), np.floor(box.y0 + steps).astype(np.int64)
    ok_c, ok_r = (cols >= 0) & (cols < array.shape[1]), (rows >= 0) & (rows < array.shape[0])
    out = np.zeros((size, size) + array.shape[2:], array.dtype)
    out[np.ix_(ok_r, ok_c)] = array[np.ix_(rows[ok_r], cols[ok_c])]
    return out


def resample_rgb(image: np.ndarray, to_crop: np.ndarray, size: int) -> np.ndarray:
    """Warp uint8 (H, W, 3) into a size x size crop through `to_crop` (3, 3: source pixel-index ->
    crop pixel-index coordinates), bilinear on a finer grid averaged down (anti-aliasing when the
    crop shrinks the image); 0 outside the source frame."""
    shrink = 1.0 / max(_local_scale(to_crop, (size - 1) / 2.0), 1e-6)
    factor = int(min(max(math.ceil(shrink - 1e-6), 1), MAX_SUPERSAMPLING))
    fine = np.array([[factor, 0.0, (factor - 1) / 2.0], [0.0, factor, (factor - 1) / 2.0], [0.0, 0.0, 1.0]])
    warped = warp_image(image, fine @ to_crop, (size * factor, size * factor)).astype(np.float32)
    if factor > 1:
        warped = warped.reshape(size, factor, size, factor, -1).mean(axis=(1, 3))
    return np.clip(np.round(warped), 0, 255).astype(np.uint8)


def _local_scale(matrix: np.ndarray, centre: float) -> float:
    """Linear magnification of a homography at the source point that lands on (centre, centre)."""
    p = apply_homography(np.linalg.inv(matrix), np.array([centre, centre]))
    moved = apply_homography(matrix, np.stack([p, p + (1.0, 0.0), p + (0.0, 1.0)]))
    jacobian = np.stack([moved[1] - moved[0], moved[2] - moved[0]], axis=1)
    scale = math.sqrt(abs(np.linalg.det(jacobian)))
    return scale if math.isfinite(scale) else 1.0


def keypoint_visibility(xy_crop: np.ndarray, visibility: np.ndarray, size: int) -> np.ndarray:
    """COCO visibility (0 absent, 1 occluded/inferred, 2 visible), set to 0 outside the crop."""
    inside = np.isfinite(xy_crop).all(axis=-1) & (xy_crop >= 0).all(axis=-1) & (xy_crop < size).all(axis=-1)
    return np.where(inside, visibility, 0).astype(np.float32)


# ---- writing the splits -----------------------------------------------------------------------
class SplitsWriter:
    """Collects per-sample dicts into `out/{train,test}` shards, atomically for the whole `out`.

    Each split also gets `samples.txt`: the raw id of every sample, in order (provenance).
    """

    def __init__(self, out: str | Path, meta: dict, shard_size: int):
        if shard_size < 1:
            raise HcmocoError(f"--shard-size must be >= 1, got {shard_size}")
        self.out, self.meta, self.shard_size = Path(out), meta, shard_size
        self._atomic = atomic_directory(self.out)
        self.counts = {s: 0 for s in SPLITS}

    def __enter__(self) -> "SplitsWriter":
        tmp = self._atomic.__enter__()
        self._writers = {s: SplitWriter(tmp / s, {**self.meta, "split": s}) for s in SPLITS}
        for w in self._writers.values():
            w.__enter__()
        self._pending = {s: [] for s in SPLITS}
        self._ids = {s: [] for s in SPLITS}
        return self

    def add(self, split: str, sample_id: str, sample: dict[str, np.ndarray]) -> None:
        self._pending[split].append(sample)
        self._ids[split].append(sample_id)
        self.counts[split] += 1
        if len(self._pending[split]) == self.shard_size:
            self._flush(split)

    def update_meta(self, **items) -> None:
        """Add index entries known only at the end (e.g. fitted calibrations)."""
        for w in self._writers.values():
            w.meta.update(items)

    def _flush(self, split: str) -> None:
        pending = self._pending[split]
        if pending:
            self._writers[split].add_shard({k: np.stack([p[k] for p in pending]) for k in pending[0]})
            self._pending[split] = []

    def _finish(self) -> None:
        empty = [s for s in SPLITS if self.counts[s] == 0]
        if empty:
            raise HcmocoError(f"{self.out}: no samples for split(s) {', '.join(empty)} "
                              f"(check the raw layout and the subject split)")
        for s in SPLITS:
            self._flush(s)
            (self._writers[s].tmp / SAMPLE_LIST).write_text("".join(i + "\n" for i in self._ids[s]))

    def _close(self, exc_type, exc, tb) -> bool | None:
        for w in self._writers.values():
            w.__exit__(exc_type, exc, tb)
        return self._atomic.__exit__(exc_type, exc, tb)

    def __exit__(self, exc_type, exc, tb) -> bool | None:
        if exc_type is None:
            try:
                self._finish()
            except BaseException:
                self._close(*sys.exc_info())
                raise
        return self._close(exc_type, exc, tb)


def parallel_map(func: Callable, jobs: Iterable, workers: int) -> Iterator:
    """`map` in order; with workers > 1 in forked processes (results still in job order)."""
    if workers <= 1:
        yield from map(func, jobs)
        return
    with mp.get_context("fork").Pool(workers, initializer=_single_threaded) as pool:
        yield from pool.imap(func, jobs, chunksize=4)


def _single_threaded() -> None:
    os.environ["OMP_NUM_THREADS"] = os.environ["OPENBLAS_NUM_THREADS"] = "1"


# ---- command line -----------------------------------------------------------------------------
# the processed-format CLIs share one parser and runner (hcmoco.prepare.writer)
prepare_parser, run_prepare = writer.prepare_parser, writer.run_prepare_cli
