"""mAP@10cm (ITOP) on hand-made cases."""
import numpy as np
import pytest

from hcmoco.eval import map_at_10cm


def _offset(errors_mm):
    """(N, J) errors along a random direction per joint -> (pred, gt) in mm."""
    rng = np.random.default_rng(0)
    errors_mm = np.asarray(errors_mm, float)
    gt = rng.normal(0, 500, errors_mm.shape + (3,)) + [0, 0, 3000]
    direction = rng.normal(size=gt.shape)
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    return gt + direction * errors_mm[..., None], gt


def test_just_below_and_above_ten_centimetres():
    pred, gt = _offset([[99.9, 100.1, 0.0]])
    out = map_at_10cm(pred, gt)
    np.testing.assert_allclose(out["per_joint"], [1.0, 0.0, 1.0])
    assert out["map"] == pytest.approx(2 / 3)
    assert out["mean_error_mm"] == pytest.approx((99.9 + 100.1) / 3)


def test_mixed_batch_per_joint_and_mean():
    pred, gt = _offset([[50, 150], [20, 90], [120, 30], [99, 101]])
    out = map_at_10cm(pred, gt)
    np.testing.assert_allclose(out["per_joint"], [3 / 4, 2 / 4])
    assert out["map"] == pytest.approx(5 / 8)
    np.testing.assert_allclose(out["per_joint_error_mm"],
                               [(50 + 20 + 120 + 99) / 4, (150 + 90 + 30 + 101) / 4])


def test_invalid_joints_are_left_out():
    pred, gt = _offset([[50, 150], [500, 90]])
    visible = np.array([[True, True], [False, True]])
    out = map_at_10cm(pred, gt, visible=visible)
    np.testing.assert_allclose(out["per_joint"], [1.0, 0.5])
    assert out["map"] == pytest.approx(0.75)
    assert out["num_joints"] == 3
    out = map_at_10cm(pred, gt, visible=np.array([[True, False], [True, False]]))
    assert np.isnan(out["per_joint"][1]) and out["map"] == pytest.approx(0.5)


def test_threshold_is_a_parameter_and_shapes_are_checked():
    pred, gt = _offset([[150.0]])
    assert map_at_10cm(pred, gt, threshold_mm=200.0)["map"] == 1.0
    with pytest.raises(ValueError):
        map_at_10cm(pred[..., :2], gt[..., :2])
