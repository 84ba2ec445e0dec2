"""DensePose R-CNN on a narrow HRNet: a training step, eval outputs, the point sampling and losses
against hand computations, the choice of training RoIs and target validation."""
import numpy as np
import pytest
import torch

from hcmoco.errors import HcmocoError
from hcmoco.models import HRNet, HRNetConfig
from hcmoco.tasks.densepose_rcnn import (DP_KEYS, HRFPN, DensePoseRoIHeads, _axis_grid,
                                         build_densepose_rcnn, densepose_point_losses,
                                         densepose_results, sample_at_points)

torch.set_num_threads(1)
SMALL = dict(fpn_channels=16, roi_resolution=7, head_convs=2, head_channels=16,
             representation_size=32, min_size=64, max_size=64, rpn_pre_nms_top_n_train=50,
             rpn_post_nms_top_n_train=20, rpn_pre_nms_top_n_test=50, rpn_post_nms_top_n_test=20,
             rpn_batch_size_per_image=32, box_batch_size_per_image=16, box_detections_per_img=4,
             box_score_thresh=0.0)
LOSSES = {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg",
          "loss_densepose_I", "loss_densepose_U", "loss_densepose_V"}


def _model(neck="hrfpn"):
    torch.manual_seed(0)
    return build_densepose_rcnn(HRNet(HRNetConfig.preset("narrow")), neck=neck, **SMALL)


def _batch(points=30):
    g = torch.Generator().manual_seed(1)
    images = [torch.rand(3, 64, 64, generator=g) for _ in range(2)]
    targets = []
    for box in ([8.0, 4.0, 40.0, 60.0], [20.0, 10.0, 56.0, 58.0]):
        pts = [torch.rand(points, generator=g) * 255, torch.rand(points, generator=g) * 255,
               torch.randint(1, 25, (points,), generator=g).float(),
               torch.rand(points, generator=g), torch.rand(points, generator=g)]
        targets.append({"boxes": torch.tensor([box]), "labels": torch.tensor([1]),
                        **{k: [v] for k, v in zip(DP_KEYS, pts)}})
    return images, targets


@pytest.mark.parametrize("neck", ["hrfpn", "fpn"])
def test_training_step_losses_and_backbone_gradients(neck):
    model = _model(neck).train()
    losses = model(*_batch())
    assert set(losses) == LOSSES
    assert all(torch.isfinite(v) and v.ndim == 0 for v in losses.values())
    assert losses["loss_densepose_I"] > 0 and losses["loss_densepose_U"] > 0
    # the DensePose branch alone already reaches the first backbone conv
    losses["loss_densepose_I"].backward(retain_graph=True)
    conv1 = model.backbone.body.conv1.weight
    assert conv1.grad is not None and conv1.grad.abs().sum() > 0
    model.zero_grad()
    sum(losses.values()).backward()
    body = [p.grad for p in model.backbone.body.parameters()]
    assert all(g is not None for g in body) and conv1.grad.abs().sum() > 0


def test_eval_outputs_boxes_and_iuv_maps():
    model = _model().eval()
    images, _ = _batch()
    with torch.no_grad():
        out = model([images[0], images[1][:, :48]])  # a 48 x 64 image too
    S = 4 * SMALL["roi_resolution"]
    for det, (h, w) in zip(out, [(64, 64), (48, 64)]):
        K = len(det["boxes"])
        assert 0 < K <= SMALL["box_detections_per_img"]
        assert det["boxes"].shape == (K, 4) and det["scores"].shape == det["labels"].shape == (K,)
        assert (det["boxes"][:, 2] <= w).all() and (det["boxes"][:, 3] <= h).all()
        assert det["dp_part"].shape == (K, 25, S, S)
        assert det["dp_u"].shape == det["dp_v"].shape == (K, 24, S, S)
        iuv = det["dp_iuv"]
        assert iuv.shape == (K, S, S, 3)
        assert torch.equal(iuv[..., 0], det["dp_part"].argmax(1).float())
        assert iuv[..., 1:].min() >= 0 and iuv[..., 1:].max() <= 1
    res = densepose_results(out[1], image_id=7)
    assert len(res) == len(out[1]["boxes"])
    for r, box in zip(res, out[1]["boxes"].tolist()):
        assert r["image_id"] == 7 and r["category_id"] == 1
        assert r["bbox"] == pytest.approx([box[0], box[1], box[2] - box[0], box[3] - box[1]])
        assert r["iuv"].dtype == np.uint8
        assert r["iuv"].shape == (max(int(box[3] - box[1]), 1), max(int(box[2] - box[0]), 1), 3)


def test_hrfpn_levels():
    feats = [torch.randn(1, c, 16 >> k, 16 >> k) for k, c in enumerate((8, 16, 32, 64))]
    levels = HRFPN((8, 16, 32, 64), 12)(feats)
    assert [tuple(x.shape) for x in levels] == [(1, 12, 16 >> k, 16 >> k) for k in range(5)]


def test_bilinear_sampling_of_a_linear_map():
    S = 8
    ys, xs = torch.meshgrid(torch.arange(S).float(), torch.arange(S).float(), indexing="ij")
    z = torch.stack([2 * xs + 3 * ys, xs - ys])[None].repeat(2, 1, 1, 1)  # (2, 2, S, S)
    box = torch.tensor([10.0, 20.0, 42.0, 52.0])  # 32 x 32: one cell per 4 pixels
    dp = torch.tensor([0.0, 51.0, 100.0, 170.0])  # 0..255 over the box
    one = torch.ones(4)
    tx = _axis_grid(dp, box[0] * one, 32 * one, box[0] * one, 32 * one, S)
    ty = _axis_grid(dp.flip(0), box[1] * one, 32 * one, box[1] * one, 32 * one, S)
    gx, gy = dp / 255 * S, dp.flip(0) / 255 * S
    got = sample_at_points(z, torch.tensor([0, 1, 0, 1]), tx, ty)
    torch.testing.assert_close(got, torch.stack([2 * gx + 3 * gy, gx - gy], 1))


def _constructed_outputs(R=2, S=4):
    """Part logits favour part 5 (logit 2 vs 0); chart 4 (part 5) of U is 0.3, of V 0.8."""
    part = torch.zeros(R, 25, S, S)
    part[:, 5] = 2.0
    u, v = torch.zeros(R, 24, S, S), torch.zeros(R, 24, S, S)
    u[:, 4], v[:, 4] = 0.3, 0.8
    return {k: t.requires_grad_() for k, t in (("part", part), ("u", u), ("v", v))}


def test_point_losses_against_hand_computation():
    out = _constructed_outputs()
    gt = torch.tensor([[0.0, 0.0, 40.0, 40.0], [0.0, 0.0, 40.0, 40.0]])
    rois = torch.tensor([[0.0, 0.0, 40.0, 40.0], [0.0, 0.0, 20.0, 40.0]])  # RoI 1: left half
    points = {"roi": torch.tensor([0, 0, 1, 1]), "x": torch.tensor([10.0, 200.0, 50.0, 200.0]),
              "y": torch.tensor([10.0, 100.0, 50.0, 30.0]), "I": torch.tensor([5.0, 5.0, 0.0, 5.0]),
              "U": torch.tensor([0.5, 0.1, 0.9, 0.4]), "V": torch.tensor([0.8, 0.2, 0.9, 0.4])}
    # the last point (x = 200/255 of the box) lies outside RoI 1 and is dropped
    losses = densepose_point_losses(out, rois, gt, points)
    logp = torch.log_softmax(torch.tensor([0.0] * 5 + [2.0] + [0.0] * 19), 0)
    ce = -(2 * logp[5] + logp[0]) / 3
    torch.testing.assert_close(losses["loss_densepose_I"], ce)
    sl1 = lambda d: sum(0.5 * x * x if abs(x) < 1 else abs(x) - 0.5 for x in d)  # noqa: E731
    torch.testing.assert_close(losses["loss_densepose_U"], torch.tensor(0.01 * sl1([0.3 - 0.5, 0.3 - 0.1])))
    torch.testing.assert_close(losses["loss_densepose_V"], torch.tensor(0.01 * sl1([0.0, 0.8 - 0.2])))
    w = densepose_point_losses(out, rois, gt, points, part_weight=2.0, point_weight=1.0)
    torch.testing.assert_close(w["loss_densepose_I"], 2 * ce)
    # no usable point: zero losses that still belong to the graph
    none = densepose_point_losses(out, rois, gt, {k: v[3:] for k, v in points.items()})
    assert all(v == 0 and v.requires_grad for v in none.values())


def test_densepose_training_rois():
    heads = _model().roi_heads
    assert isinstance(heads, DensePoseRoIHeads)
    gt = torch.tensor([[0.0, 0.0, 40.0, 40.0], [50.0, 0.0, 60.0, 10.0]])
    props = torch.tensor([[0.0, 0.0, 40.0, 40.0],    # IoU 1 with person 0
                          [0.0, 0.0, 40.0, 34.0],    # IoU 0.85
                          [0.0, 0.0, 40.0, 26.0],    # IoU 0.65: too loose for DensePose
                          [50.0, 0.0, 60.0, 10.0],   # person 1 has no points
                          [0.0, 0.0, 40.0, 40.0]])   # a background sample
    target = {"boxes": gt, "labels": torch.tensor([1, 1]), "dp_x": [[1.0, 2.0], []],
              "dp_y": [[3.0, 4.0], []], "dp_I": [[1, 2], []], "dp_U": [[0.1, 0.2], []],
              "dp_V": [[0.3, 0.4], []]}
    rois, gts, pts = heads._densepose_samples([props], [torch.tensor([0, 0, 0, 1, 0])],
                                              [torch.tensor([1, 1, 1, 1, 0])], [target])
    assert torch.equal(rois[0], props[:2]) and torch.equal(gts, gt[[0, 0]])
    assert pts["roi"].tolist() == [0, 0, 1, 1] and pts["x"].tolist() == [1.0, 2.0, 1.0, 2.0]
    assert pts["I"].tolist() == [1.0, 2.0, 1.0, 2.0]


def test_bad_targets_are_one_line_errors():
    model = _model().train()
    images, targets = _batch()
    del targets[1]["dp_U"]
    with pytest.raises(HcmocoError, match=r"targets\[1\]: missing 'dp_U'"):
        model(images, targets)
    images, targets = _batch()
    targets[0]["dp_x"] = targets[0]["dp_x"] * 2
    with pytest.raises(HcmocoError, match=r"targets\[0\]\['dp_x'\]: 2 sequences for 1 boxes"):
        model(images, targets)
    images, targets = _batch()
    targets[0]["dp_I"] = [targets[0]["dp_I"][0][:3]]
    with pytest.raises(HcmocoError, match="different lengths"):
        model(images, targets)


def test_point_loss_gradients_flow_to_the_head_outputs():
    out = _constructed_outputs()
    box = torch.tensor([[0.0, 0.0, 40.0, 40.0]])
    points = {"roi": torch.tensor([0]), "x": torch.tensor([128.0]), "y": torch.tensor([128.0]),
              "I": torch.tensor([5.0]), "U": torch.tensor([0.9]), "V": torch.tensor([0.1])}
    sum(densepose_point_losses(out, box, box, points).values()).backward()
    # only the 4 cells around the point, and only part 5's chart, receive U gradient
    assert (out["u"].grad[0, 4] != 0).sum() == 4 and out["u"].grad[:, :4].abs().sum() == 0
    assert out["part"].grad[0, :, 2, 2].argmin() == 5 and out["part"].grad[0, :, 0, 0].abs().sum() == 0
