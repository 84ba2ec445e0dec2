import numpy as np
import pytest

from hcmoco.prepare.homography import apply_homography, fit_dlt, ransac_homography, warp_image
from hcmoco.errors import HcmocoError

TRUE_H = np.array([[0.29, 0.012, -31.0], [-0.008, 0.31, 18.0], [2.0e-5, -1.5e-5, 1.0]])


def noisy_correspondences(n=400, outliers=0.3, noise=0.3, seed=1):
    rng = np.random.default_rng(seed)
    src = rng.uniform((100, 50), (1800, 1050), (n, 2))
    dst = apply_homography(TRUE_H, src) + rng.normal(0, noise, (n, 2))
    bad = rng.random(n) < outliers
    dst[bad] = rng.uniform((0, 0), (512, 424), (int(bad.sum()), 2))
    return src, dst, bad


def test_ransac_recovers_known_homography_despite_outliers():
    src, dst, bad = noisy_correspondences()
    fit = ransac_homography(src, dst, threshold=2.0, seed=0)
    grid = np.stack(np.meshgrid(np.linspace(100, 1800, 9), np.linspace(50, 1050, 7)), -1).reshape(-1, 2)
    err = np.abs(apply_homography(fit.matrix, grid) - apply_homography(TRUE_H, grid)).max()
    assert err < 0.3
    assert fit.matrix[2, 2] == pytest.approx(1.0)
    # the consensus is the clean points (an outlier may fall near the true mapping by chance)
    assert fit.inliers[~bad].mean() > 0.98 and fit.inliers[bad].mean() < 0.05
    assert fit.rmse < 0.6


def test_ransac_is_seeded_and_plain_dlt_is_fooled_by_outliers():
    src, dst, _ = noisy_correspondences(seed=2)
    a, b = ransac_homography(src, dst, seed=5), ransac_homography(src, dst, seed=5)
    assert np.array_equal(a.matrix, b.matrix) and np.array_equal(a.inliers, b.inliers)
    plain = fit_dlt(src, dst)
    assert np.abs(apply_homography(plain, src) - apply_homography(TRUE_H, src)).max() > 5.0


def test_exact_fit_and_too_few_points():
    src = np.array([[0, 0], [10, 0], [10, 10], [0, 10], [5, 3]], float)
    dst = apply_homography(TRUE_H, src)
    assert np.allclose(apply_homography(fit_dlt(src, dst), src), dst, atol=1e-6)
    with pytest.raises(HcmocoError, match="at least 4"):
        ransac_homography(src[:3], dst[:3])


def test_warp_matches_the_analytic_image():
    # a smooth image f(x, y) warped by H equals f(H^-1(x, y)) (up to bilinear interpolation)
    rows, cols = np.mgrid[0:120, 0:160].astype(float)
    image = (100 + 0.5 * cols + 0.3 * rows).astype(np.float32)
    h = np.array([[0.9, 0.05, 6.0], [-0.03, 0.95, 4.0], [1e-4, 0.0, 1.0]])
    warped = warp_image(image, h, (100, 140))
    src = apply_homography(np.linalg.inv(h), np.stack(np.mgrid[0:100, 0:140][::-1], -1).astype(float))
    inside = (src[..., 0] >= 0) & (src[..., 0] <= 159) & (src[..., 1] >= 0) & (src[..., 1] <= 119)
    expected = 100 + 0.5 * src[..., 0] + 0.3 * src[..., 1]
    assert inside.mean() > 0.8
    assert np.abs(warped[inside] - expected[inside]).max() < 1e-3  # bilinear is exact on a linear ramp
    assert np.all(warped[~inside] == 0)


def test_warp_moves_a_marker_to_its_mapped_location_and_keeps_dtype():
    image = np.zeros((90, 120, 3), np.uint8)
    image[40:43, 60:63] = (255, 0, 0)  # centre (61, 41)
    h = np.array([[1.0, 0.0, 12.5], [0.0, 1.0, -7.0], [0.0, 0.0, 1.0]])
    warped = warp_image(image, h, (90, 120))
    assert warped.dtype == np.uint8
    ys, xs = np.nonzero(warped[..., 0] > 0)
    weights = warped[ys, xs, 0].astype(float)
    centre = np.array([(xs * weights).sum(), (ys * weights).sum()]) / weights.sum()
    assert np.allclose(centre, apply_homography(h, np.array([61.0, 41.0])), atol=0.05)
