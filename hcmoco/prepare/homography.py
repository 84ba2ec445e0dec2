"""Planar homographies with numpy only: normalised DLT, RANSAC fit, point mapping, image warping.

Coordinates are pixel-index coordinates (x = column, y = row; a pixel's centre sits at its
integer index), the convention of Kinect's colorX/depthX and of OpenCV, so a homography
fitted here warps images exactly as `cv2.warpPerspective` would.

The RANSAC fit draws 4-point samples from a seeded generator, scores every hypothesis by the
one-way transfer error ||H src - dst|| in destination pixels, stops adaptively once the
best consensus is found with the requested confidence, and refits on all inliers (normalised
DLT, least squares) until the inlier set stops changing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hcmoco.errors import HcmocoError

_BATCH = 128  # hypotheses scored together: bounds memory at 128 x N errors


@dataclass(frozen=True)
class HomographyFit:
    matrix: np.ndarray  # (3, 3), matrix[2, 2] == 1
    inliers: np.ndarray  # (N,) bool
    rmse: float  # transfer error over the inliers, destination pixels
    iterations: int  # hypotheses drawn


def _normaliser(points: np.ndarray) -> np.ndarray:
    """Similarity moving the centroid to 0 and the mean distance to sqrt(2) (Hartley)."""
    centre = points.mean(axis=0)
    spread = np.sqrt(((points - centre) ** 2).sum(axis=1)).mean()
    s = np.sqrt(2.0) / spread if spread > 1e-12 else 1.0
    return np.array([[s, 0.0, -s * centre[0]], [0.0, s, -s * centre[1]], [0.0, 0.0, 1.0]])


def _homogeneous(points: np.ndarray) -> np.ndarray:
    return np.concatenate([points, np.ones((*points.shape[:-1], 1))], axis=-1)


def _dlt_rows(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(..., N, 2) x 2 -> (..., 2N, 9) DLT design matrix of h (row-major H)."""
    x, y = src[..., 0], src[..., 1]
    u, v = dst[..., 0], dst[..., 1]
    one, zero = np.ones_like(x), np.zeros_like(x)
    row_u = np.stack([x, y, one, zero, zero, zero, -u * x, -u * y, -u], axis=-1)
    row_v = np.stack([zero, zero, zero, x, y, one, -v * x, -v * y, -v], axis=-1)
    return np.concatenate([row_u, row_v], axis=-2)


def _scale_to_one(h: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return h / h[..., 2:3, 2:3]


def fit_dlt(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares homography (3, 3) from >= 4 correspondences (normalised DLT)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 4:
        raise HcmocoError(f"homography fit needs matching (N, 2) point arrays with N >= 4, "
                          f"got {src.shape} and {dst.shape}")
    t_src, t_dst = _normaliser(src), _normaliser(dst)
    a = _dlt_rows(apply_homography(t_src, src), apply_homography(t_dst, dst))
    h = np.linalg.svd(a)[2][-1].reshape(3, 3)
    return _scale_to_one(np.linalg.inv(t_dst) @ h @ t_src)


def apply_homography(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (..., 2) points through a (3, 3) homography; points sent to infinity become inf."""
    points = np.asarray(points, np.float64)
    mapped = _homogeneous(points) @ np.asarray(matrix, np.float64).T
    w = mapped[..., 2:3]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = mapped[..., :2] / w
    return np.where(np.abs(w) > 1e-12, out, np.inf)


def transfer_errors(matrix: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(N,) distances ||H src - dst|| (inf where undefined)."""
    err = np.sqrt(((apply_homography(matrix, src) - dst) ** 2).sum(axis=-1))
    return np.where(np.isfinite(err), err, np.inf)


def _batch_hypotheses(src_n: np.ndarray, dst_n: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """(B, 4) sample indices -> (B, 3, 3) homographies in normalised coordinates."""
    a = _dlt_rows(src_n[samples], dst_n[samples])  # (B, 8, 9)
    return np.linalg.svd(a)[2][:, -1].reshape(-1, 3, 3)


def ransac_homography(src: np.ndarray, dst: np.ndarray, threshold: float = 3.0, seed: int = 0,
                      max_iterations: int = 2000, confidence: float = 0.999) -> HomographyFit:
    """Robust homography mapping src -> dst, (N, 2) each; `threshold` in destination pixels."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2:
        raise HcmocoError(f"homography fit needs matching (N, 2) point arrays, got {src.shape} and {dst.shape}")
    finite = np.isfinite(src).all(axis=1) & np.isfinite(dst).all(axis=1)
    n = int(finite.sum())
    if n < 4:
        raise HcmocoError(f"homography fit needs at least 4 finite correspondences, got {n}")
    idx = np.flatnonzero(finite)
    t_src, t_dst = _normaliser(src[idx]), _normaliser(dst[idx])
    src_n, dst_n = apply_homography(t_src, src[idx]), apply_homography(t_dst, dst[idx])
    back = np.linalg.inv(t_dst)
    rng = np.random.default_rng(seed)

    best_count, best_h, drawn, needed = 0, None, 0, max_iterations
    while drawn < min(needed, max_iterations):
        count = min(_BATCH, max_iterations - drawn)
        samples = _distinct_samples(rng, n, count)
        hyps = _scale_to_one(back @ _batch_hypotheses(src_n, dst_n, samples) @ t_src)
        mapped = np.einsum("bij,nj->bni", hyps, _homogeneous(src[idx]))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            err = np.sqrt(((mapped[..., :2] / mapped[..., 2:3] - dst[idx]) ** 2).sum(axis=-1))
        counts = np.where(np.isfinite(err), err < threshold, False).sum(axis=1)
        drawn += count
        top = int(np.argmax(counts))
        if counts[top] > best_count and np.isfinite(hyps[top]).all():
            best_count, best_h = int(counts[top]), hyps[top]
            w = best_count / n
            miss = 1.0 - w ** 4
            needed = drawn if miss <= 0 else int(np.ceil(np.log(1 - confidence) / np.log(max(miss, 1e-12))))
    if best_h is None or best_count < 4:
        raise HcmocoError(f"homography fit: no 4-point sample has 4 or more inliers within {threshold} px "
                          f"({n} correspondences)")

    inliers = np.zeros(len(src), bool)
    inliers[idx] = transfer_errors(best_h, src[idx], dst[idx]) < threshold
    matrix = best_h
    for _ in range(10):  # refit on the consensus until it is stable
        matrix = fit_dlt(src[inliers], dst[inliers])
        again = np.zeros(len(src), bool)
        again[idx] = transfer_errors(matrix, src[idx], dst[idx]) < threshold
        if again.sum() < 4 or np.array_equal(again, inliers):
            break
        inliers = again
    rmse = float(np.sqrt(np.mean(transfer_errors(matrix, src[inliers], dst[inliers]) ** 2)))
    return HomographyFit(matrix, inliers, rmse, drawn)


def _distinct_samples(rng: np.random.Generator, n: int, count: int) -> np.ndarray:
    """(count, 4) indices in [0, n), distinct within each row (redraw the few rows that collide)."""
    if n <= 16:  # collisions would be common: take the first 4 of random permutations
        return np.argsort(rng.random((count, n)), axis=1)[:, :4]
    samples = rng.integers(0, n, (count, 4))
    while True:
        s = np.sort(samples, axis=1)
        bad = (np.diff(s, axis=1) == 0).any(axis=1)
        if not bad.any():
            return samples
        samples[bad] = rng.integers(0, n, (int(bad.sum()), 4))


def warp_image(image: np.ndarray, matrix: np.ndarray, out_shape: tuple[int, int], fill: float = 0) -> np.ndarray:
    """Warp `image` (H, W) or (H, W, C) by `matrix` (source -> destination pixels) into an image of
    `out_shape` (rows, cols): inverse mapping of every destination pixel, bilinear sampling,
    `fill` where the source point falls outside the image. Keeps the input dtype (rounded)."""
    image = np.asarray(image)
    rows, cols = int(out_shape[0]), int(out_shape[1])
    inverse = np.linalg.inv(np.asarray(matrix, np.float64))
    yy, xx = np.mgrid[0:rows, 0:cols]
    source = apply_homography(inverse, np.stack([xx, yy], axis=-1).astype(np.float64))
    sx, sy = source[..., 0], source[..., 1]
    height, width = image.shape[:2]
    inside = np.isfinite(sx) & np.isfinite(sy) & (sx >= 0) & (sy >= 0) & (sx <= width - 1) & (sy <= height - 1)
    sx, sy = np.where(inside, sx, 0.0), np.where(inside, sy, 0.0)
    x0 = np.minimum(np.floor(sx).astype(np.int64), max(width - 2, 0))
    y0 = np.minimum(np.floor(sy).astype(np.int64), max(height - 2, 0))
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    wx, wy = sx - x0, sy - y0
    if image.ndim == 3:
        wx, wy, inside = wx[..., None], wy[..., None], inside[..., None]
    src = image.astype(np.float64)
    top = src[y0, x0] * (1 - wx) + src[y0, x1] * wx
    bottom = src[y1, x0] * (1 - wx) + src[y1, x1] * wx
    out = np.where(inside, top * (1 - wy) + bottom * wy, float(fill))
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        out = np.clip(np.round(out), info.min, info.max)
    return out.astype(image.dtype)
