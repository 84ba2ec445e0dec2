"""Square person crops for the real-data preprocessors: the box rule, resampling, coordinates.

Coordinates are continuous pixel coordinates of the processed format: pixel i spans [i, i+1),
its centre is i + 0.5 (as the SynthHuman camera). A crop is a square `CropBox` (left, top,
side) in source pixels, resampled to `resolution` x `resolution`, so a source point p maps
to (p - (left, top)) * resolution / side. Parts of the box outside the source image are
filled with 0 (black RGB, no depth reading, background label).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from hcmoco.errors import HcmocoError

ENLARGE = 1.2  # the person box is enlarged by this factor (a margin for context and limbs)


@dataclass(frozen=True)
class CropBox:
    left: float
    top: float
    side: float

    @classmethod
    def around(cls, x0: float, y0: float, x1: float, y1: float, enlarge: float = ENLARGE) -> "CropBox":
        """The square about the centre of box [x0, x1] x [y0, y1], side = enlarge * its longer side."""
        side = enlarge * max(x1 - x0, y1 - y0)
        if not side > 0:
            raise ValueError(f"empty person box {(x0, y0, x1, y1)}")
        return cls.centred(0.5 * (x0 + x1), 0.5 * (y0 + y1), side)

    @classmethod
    def centred(cls, cx: float, cy: float, side: float) -> "CropBox":
        return cls(float(cx - side / 2), float(cy - side / 2), float(side))

    def scale(self, resolution: int) -> float:
        """Crop pixels per source pixel."""
        return resolution / self.side

    def to_crop(self, xy: np.ndarray, resolution: int) -> np.ndarray:
        """(..., 2) source coordinates -> crop coordinates."""
        xy = np.asarray(xy, np.float64)
        return (xy - np.array([self.left, self.top])) * self.scale(resolution)

    def as_array(self) -> np.ndarray:
        """float32 (left, top, side): the `crop` field, to map a sample back to its source."""
        return np.array([self.left, self.top, self.side], np.float32)


def read_rgb(path: Path) -> np.ndarray:
    """uint8 (H, W, 3) of an image file (grey and CMYK images are converted)."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise HcmocoError(f"{path}: image missing") from None
    except (UnidentifiedImageError, OSError) as err:
        raise HcmocoError(f"{path}: unreadable image ({err})") from None


def _padded_window(array: np.ndarray, box: CropBox) -> tuple[np.ndarray, int, int]:
    """The integer window covering `box`, zero-filled outside `array`; returns (window, x0, y0)."""
    x0, y0 = math.floor(box.left), math.floor(box.top)
    x1, y1 = math.ceil(box.left + box.side), math.ceil(box.top + box.side)
    h, w = array.shape[:2]
    window = np.zeros((y1 - y0, x1 - x0) + array.shape[2:], array.dtype)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 > sx0 and sy1 > sy0:
        window[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = array[sy0:sy1, sx0:sx1]
    return window, x0, y0


def crop_rgb(image: np.ndarray, box: CropBox, resolution: int) -> np.ndarray:
    """uint8 (R, R, 3): bilinear resampling, antialiased when shrinking (PIL's resize)."""
    window, x0, y0 = _padded_window(np.asarray(image, np.uint8), box)
    left, top = box.left - x0, box.top - y0
    out = Image.fromarray(window).resize((resolution, resolution), Image.Resampling.BILINEAR,
                                         box=(left, top, left + box.side, top + box.side))
    return np.asarray(out)


def crop_nearest(array: np.ndarray, box: CropBox, resolution: int) -> np.ndarray:
    """(R, R, ...) of the same dtype: each crop pixel takes the source pixel under its centre.

    For depth and labels: values are never blended (no depth between a person and the wall,
    no label between two parts).
    """
    array = np.asarray(array)
    h, w = array.shape[:2]
    centres = (np.arange(resolution) + 0.5) / box.scale(resolution)
    cols = np.floor(box.left + centres).astype(np.int64)
    rows = np.floor(box.top + centres).astype(np.int64)
    in_c, in_r = (cols >= 0) & (cols < w), (rows >= 0) & (rows < h)
    out = np.zeros((resolution, resolution) + array.shape[2:], array.dtype)
    out[np.ix_(in_r, in_c)] = array[np.ix_(rows[in_r], cols[in_c])]
    return out


def keypoints_to_crop(kp: np.ndarray, box: CropBox, resolution: int) -> np.ndarray:
    """float32 (J, 3) source (x, y, v) -> crop (x, y, v).

    v follows COCO (0 unlabelled, 1 labelled but occluded, 2 visible); as on SynthHuman a joint
    outside the crop gets v = 0 (its mapped coordinates are kept); unlabelled joints are (0, 0, 0).
    """
    kp = np.asarray(kp, np.float64)
    out = np.zeros(kp.shape, np.float32)
    out[:, :2] = box.to_crop(kp[:, :2], resolution)
    inside = np.all((out[:, :2] >= 0) & (out[:, :2] < resolution), axis=1)
    out[:, 2] = np.where(inside, kp[:, 2], 0)
    out[kp[:, 2] <= 0] = 0.0
    return out


def crop_intrinsics(cam: np.ndarray, box: CropBox, resolution: int) -> np.ndarray:
    """float32 (fx, fy, cx, cy) of the crop from the source image's (continuous coordinates)."""
    fx, fy, cx, cy = (float(v) for v in cam)
    s = box.scale(resolution)
    return np.array([fx * s, fy * s, (cx - box.left) * s, (cy - box.top) * s], np.float32)
