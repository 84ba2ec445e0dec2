"""The person crop of the real-data preprocessors: reading raw frames, the box rule, resampling
and coordinates.

Coordinates are continuous pixel coordinates of the processed format: pixel i spans [i, i+1),
its centre is i + 0.5 (as the SynthHuman camera). Raw datasets that give pixel-index
coordinates (a pixel's centre at its integer index: Kinect, OpenCV) are shifted by +0.5 before
they enter a crop. A crop is a square `CropBox` (left, top, side) in source pixels, resampled to
`size` x `size`: output pixel c covers [left + c s, left + (c + 1) s) with s = side / size, and a
source point p maps to (p - (left, top)) * size / side. Parts of the box outside the source
image are filled with 0 (black RGB, no depth reading, background label).

Resampling: `crop_rgb` (bilinear, antialiased when shrinking) for an axis-aligned crop of an
image, `resample_rgb` for an image that reaches the crop through a homography (NTU's colour
frame into its depth frame), `crop_nearest` for depth and labels (values are never blended).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from hcmoco.errors import HcmocoError
from hcmoco.prepare.homography import apply_homography, warp_image

ENLARGE = 1.2  # side of the square crop / longer side of the person box (a margin for context and limbs)
MIN_SIDE = 8.0  # the smallest crop side, source pixels, when a box comes from a mask or joints
MAX_SUPERSAMPLING = 4

Box = tuple[float, float, float, float]  # (x0, y0, x1, y1), continuous coordinates


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
    """uint8 (H, W, 3) of an image file (grey and CMYK images are converted)."""
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


# ---- the box ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CropBox:
    left: float
    top: float
    side: float

    @classmethod
    def around(cls, x0: float, y0: float, x1: float, y1: float, enlarge: float = ENLARGE,
               min_side: float = 0.0) -> "CropBox":
        """The square about the centre of box [x0, x1] x [y0, y1], side = enlarge * its longer
        side (at least `min_side`)."""
        side = max(enlarge * max(x1 - x0, y1 - y0), min_side)
        if not side > 0:
            raise ValueError(f"empty person box {(x0, y0, x1, y1)}")
        return cls.centred(0.5 * (x0 + x1), 0.5 * (y0 + y1), side)

    @classmethod
    def centred(cls, cx: float, cy: float, side: float) -> "CropBox":
        return cls(float(cx - side / 2), float(cy - side / 2), float(side))

    @classmethod
    def frame(cls, height: int, width: int) -> "CropBox":
        """The whole frame as a square crop (centred; padded on the shorter side)."""
        return cls.around(0.0, 0.0, float(width), float(height), enlarge=1.0)

    def scale(self, size: int) -> float:
        """Crop pixels per source pixel."""
        return size / self.side

    def to_crop(self, xy: np.ndarray, size: int) -> np.ndarray:
        """(..., 2) source coordinates -> crop coordinates."""
        xy = np.asarray(xy, np.float64)
        return (xy - np.array([self.left, self.top])) * self.scale(size)

    def index_matrix(self, size: int) -> np.ndarray:
        """(3, 3) affine from source pixel-index coordinates to crop pixel-index coordinates."""
        s = self.scale(size)
        return np.array([[s, 0.0, (0.5 - self.left) * s - 0.5], [0.0, s, (0.5 - self.top) * s - 0.5],
                         [0.0, 0.0, 1.0]])

    def as_array(self) -> np.ndarray:
        """float32 (left, top, side): the `crop` field, to map a sample back to its source."""
        return np.array([self.left, self.top, self.side], np.float32)


def mask_box(mask: np.ndarray) -> Box | None:
    """Tight (x0, y0, x1, y1) of a boolean mask in continuous coordinates; None when empty."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return None
    return float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)


def points_box(xy: np.ndarray) -> Box | None:
    """(x0, y0, x1, y1) of finite (N, 2) continuous points; None when there are none."""
    xy = np.asarray(xy, np.float64)
    xy = xy[np.isfinite(xy).all(axis=1)]
    if not len(xy):
        return None
    return float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()), float(xy[:, 1].max())


def union_box(*boxes: Box | None) -> Box | None:
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        return None
    b = np.array(boxes)
    return float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())


# ---- resampling -------------------------------------------------------------------------------
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


def crop_rgb(image: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """uint8 (S, S, 3): bilinear resampling, antialiased when shrinking (PIL's resize)."""
    window, x0, y0 = _padded_window(np.asarray(image, np.uint8), box)
    left, top = box.left - x0, box.top - y0
    out = Image.fromarray(window).resize((size, size), Image.Resampling.BILINEAR,
                                         box=(left, top, left + box.side, top + box.side))
    return np.asarray(out)


def crop_nearest(array: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """(S, S, ...) of the same dtype: each crop pixel takes the source pixel under its centre.

    For depth and labels: values are never blended (no depth between a person and the wall,
    no label between two parts).
    """
    array = np.asarray(array)
    h, w = array.shape[:2]
    centres = (np.arange(size) + 0.5) / box.scale(size)
    cols = np.floor(box.left + centres).astype(np.int64)
    rows = np.floor(box.top + centres).astype(np.int64)
    in_c, in_r = (cols >= 0) & (cols < w), (rows >= 0) & (rows < h)
    out = np.zeros((size, size) + array.shape[2:], array.dtype)
    out[np.ix_(in_r, in_c)] = array[np.ix_(rows[in_r], cols[in_c])]
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


# ---- coordinates ------------------------------------------------------------------------------
def keypoint_visibility(xy_crop: np.ndarray, visibility: np.ndarray, size: int) -> np.ndarray:
    """COCO visibility (0 absent, 1 occluded/inferred, 2 visible), set to 0 outside the crop
    (as on SynthHuman) and where the crop coordinates are not finite."""
    inside = np.isfinite(xy_crop).all(axis=-1) & (xy_crop >= 0).all(axis=-1) & (xy_crop < size).all(axis=-1)
    return np.where(inside, visibility, 0).astype(np.float32)


def keypoints_to_crop(kp: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """float32 (J, 3) source (x, y, v) -> crop (x, y, v): v by `keypoint_visibility` (a joint
    outside the crop keeps its mapped coordinates), unlabelled joints (v <= 0) are (0, 0, 0)."""
    kp = np.asarray(kp, np.float64)
    out = np.zeros(kp.shape, np.float32)
    out[:, :2] = box.to_crop(kp[:, :2], size)
    out[:, 2] = keypoint_visibility(out[:, :2], kp[:, 2], size)
    out[kp[:, 2] <= 0] = 0.0
    return out


def crop_intrinsics(cam, box: CropBox, size: int) -> np.ndarray:
    """float32 (fx, fy, cx, cy) of the crop from the source image's (continuous coordinates)."""
    fx, fy, cx, cy = (float(v) for v in cam)
    s = box.scale(size)
    return np.array([fx * s, fy * s, (cx - box.left) * s, (cy - box.top) * s], np.float32)
