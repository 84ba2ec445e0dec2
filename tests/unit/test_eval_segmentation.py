"""Confusion matrix and mIoU against scikit-learn and a hand-computed case."""
import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from hcmoco.eval import IGNORE_INDEX, SegmentationMeter, confusion_matrix, mean_iou


def test_hand_made_case():
    target = np.array([[0, 0, 1, 1], [2, 2, IGNORE_INDEX, IGNORE_INDEX]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 3, 3]])
    conf = confusion_matrix(pred, target, num_classes=5)
    # class 0: TP 1, FP 1 (a 2 called 0), FN 1 (a 0 called 1) -> 1/3
    # class 1: TP 2, FP 1, FN 0 -> 2/3; class 2: TP 1, FN 1 -> 1/2
    # class 3: only predicted at ignored pixels -> absent from both -> NaN; class 4 absent -> NaN
    miou, iou = mean_iou(conf)
    np.testing.assert_allclose(iou[:3], [1 / 3, 2 / 3, 1 / 2])
    assert np.isnan(iou[3]) and np.isnan(iou[4])
    assert miou == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert conf.sum() == 6  # the two ignored pixels are not counted


def test_class_only_predicted_counts_as_zero():
    miou, iou = mean_iou(confusion_matrix(np.array([1, 1]), np.array([0, 1]), 2))
    np.testing.assert_allclose(iou, [0.0, 0.5])
    assert miou == pytest.approx(0.25)


def test_matches_sklearn_on_random_maps():
    rng = np.random.default_rng(0)
    k = 7
    target = rng.integers(0, k, size=(3, 40, 50))
    target[target == 5] = 4  # class 5 absent from the ground truth ...
    pred = np.where(rng.random(target.shape) < 0.6, target, rng.integers(0, k, size=target.shape))
    pred[pred == 5] = 6  # ... and from the prediction
    target[rng.random(target.shape) < 0.1] = IGNORE_INDEX
    conf = confusion_matrix(torch.from_numpy(pred), torch.from_numpy(target), k)
    keep = target != IGNORE_INDEX
    ref = sk_confusion_matrix(target[keep], pred[keep], labels=list(range(k)))
    np.testing.assert_array_equal(conf, ref)
    tp = np.diag(ref).astype(float)
    union = ref.sum(0) + ref.sum(1) - tp
    present = union > 0
    assert not present[5] and present.sum() == k - 1
    miou, iou = mean_iou(conf)
    np.testing.assert_allclose(iou[present], tp[present] / union[present])
    assert miou == pytest.approx(np.mean(tp[present] / union[present]))


def test_meter_accumulates_over_batches():
    rng = np.random.default_rng(1)
    target, pred = rng.integers(0, 4, (6, 8, 8)), rng.integers(0, 4, (6, 8, 8))
    meter = SegmentationMeter(4)
    for i in range(0, 6, 2):
        meter.update(pred[i:i + 2], target[i:i + 2])
    np.testing.assert_array_equal(meter.conf, confusion_matrix(pred, target, 4))
    assert meter.compute()["miou"] == pytest.approx(mean_iou(meter.conf)[0])


def test_out_of_range_labels_fail():
    with pytest.raises(ValueError, match="target"):
        confusion_matrix(np.array([0, 1]), np.array([0, 9]), 4)
    with pytest.raises(ValueError, match="prediction"):
        confusion_matrix(np.array([0, 7]), np.array([0, 1]), 4)


def test_present_and_all_classes_conventions_on_a_fixed_matrix():
    # rows = ground truth, columns = prediction, K = 4
    conf = np.array([[3, 1, 0, 0],
                     [0, 2, 0, 0],
                     [1, 0, 0, 0],
                     [0, 0, 0, 0]])
    # class 0: TP 3, FN 1, FP 1 (a 2 called 0) -> 3/5; class 1: TP 2, FP 1 -> 2/3
    # class 2: TP 0, FN 1 -> 0 (present in the ground truth, counts in both conventions)
    # class 3: absent from both -> NaN, left out ("present") / IoU 0 over all K ("all_classes")
    miou, iou = mean_iou(conf, "present")
    np.testing.assert_allclose(iou[:3], [0.6, 2 / 3, 0.0])
    assert np.isnan(iou[3])
    assert miou == pytest.approx((0.6 + 2 / 3 + 0.0) / 3)  # 0.42222
    miou_all, iou_all = mean_iou(conf, "all_classes")
    np.testing.assert_allclose(iou_all, [0.6, 2 / 3, 0.0, 0.0])
    assert miou_all == pytest.approx((0.6 + 2 / 3) / 4)  # 0.31667
    # the HRNet-Seg / HCMoCo code on the same matrix
    pos, res, tp = conf.sum(1), conf.sum(0), np.diag(conf)
    assert miou_all == pytest.approx((tp / np.maximum(1.0, pos + res - tp)).mean())
    assert mean_iou(conf)[0] == miou  # the default stays "present"


def test_meter_convention_and_bad_names():
    meter = SegmentationMeter(3, convention="all_classes")
    meter.update(np.array([0, 1, 1]), np.array([0, 1, 0]))  # class 2 never occurs
    out = meter.compute()
    assert out["miou"] == pytest.approx((1 / 2 + 1 / 2 + 0) / 3) and out["miou_convention"] == "all_classes"
    assert out["per_class_iou"] == [0.5, 0.5, 0.0]
    assert SegmentationMeter(3).convention == "present"
    with pytest.raises(ValueError, match="convention"):
        mean_iou(np.eye(2), "mean")
    with pytest.raises(ValueError, match="convention"):
        SegmentationMeter(3, convention="all")
