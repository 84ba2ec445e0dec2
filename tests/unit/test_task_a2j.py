"""A2J anchor head: anchors, decoding, loss, geometry and ground-truth-free background removal."""
import inspect

import numpy as np
import pytest
import torch

from hcmoco.models import HRNet, HRNetConfig
from hcmoco.tasks import (A2JHead, a2j_decode, a2j_loss, a2j_loss_terms, anchor_grid,
                          depth_pixel_ratio, person_depth_window, uvd_to_xyz_mm,
                          xyz_mm_to_uvd)

torch.set_num_threads(1)
WIDTHS = HRNetConfig.preset("narrow").widths


def _feats(b=2, size=16):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(b, c, size >> k, size >> k, generator=g) for k, c in enumerate(WIDTHS)]


def test_anchors_follow_a2j_grid():
    a = anchor_grid(2, 3, feature_stride=16, anchor_stride=4)
    assert a.shape == (2 * 3 * 16, 2)
    # A2J: x = 16 cx + 4 ax + 2 (4 x 4 anchors per stride-16 cell)
    torch.testing.assert_close(a[:4], torch.tensor([[2.0, 2], [6, 2], [10, 2], [14, 2]]))
    torch.testing.assert_close(a[16], torch.tensor([18.0, 2.0]))  # next cell to the right
    torch.testing.assert_close(a[3 * 16], torch.tensor([2.0, 18.0]))  # first cell of row 2
    assert a[:, 0].max() == 46 and a[:, 1].max() == 30


def test_head_shapes():
    head = A2JHead(WIDTHS, num_joints=15, channels=16, num_convs=2)
    out = head(_feats(size=16))  # a 64 x 64 crop: stride-16 map 4 x 4
    n = 4 * 4 * 16
    assert out["logits"].shape == (2, n, 15) and out["depth"].shape == (2, n, 15)
    assert out["offsets"].shape == (2, n, 15, 2) and out["anchors"].shape == (n, 2)
    xy, depth = a2j_decode(out)
    assert xy.shape == (2, 15, 2) and depth.shape == (2, 15)
    # the response / offset channels of anchor a of cell (cy, cx) land at index (cy*w+cx)*A+a
    head8 = A2JHead(WIDTHS, num_joints=3, feature_stride=8, channels=8, num_convs=1)
    assert head8(_feats(size=16))["logits"].shape == (2, 8 * 8 * 4, 3)


def test_decoding_recovers_constructed_joints():
    anchors = anchor_grid(4, 4)
    n, j = anchors.shape[0], 3
    joints = torch.tensor([[10.0, 20.0], [33.5, 40.0], [50.0, 7.0]])
    depths = torch.tensor([0.1, -0.2, 0.3])
    logits = torch.full((1, n, j), -30.0)
    offsets = torch.zeros(1, n, j, 2)
    depth = torch.zeros(1, n, j)
    for k in range(j):  # joint k: two anchors share the response, each offset onto the joint
        for a in (5 * k + 3, 100 + 7 * k):
            logits[0, a, k] = 5.0
            offsets[0, a, k] = joints[k] - anchors[a]
            depth[0, a, k] = depths[k]
    out = {"logits": logits, "offsets": offsets, "depth": depth, "anchors": anchors}
    xy, d = a2j_decode(out)
    torch.testing.assert_close(xy[0], joints)
    torch.testing.assert_close(d[0], depths)
    terms = a2j_loss_terms(out, joints[None], depths[None], depth_scale=100.0)
    assert terms["xy"].item() < 1e-6 and terms["depth"].item() < 1e-6
    # surround term: SmoothL1 between the weighted anchor centre and the joint
    centre = torch.stack([(anchors[5 * k + 3] + anchors[100 + 7 * k]) / 2 for k in range(j)])
    expected = torch.nn.functional.smooth_l1_loss(centre, joints, beta=1.0)
    torch.testing.assert_close(terms["surround"], expected)
    total = a2j_loss(out, joints[None], depths[None], depth_scale=100.0)
    torch.testing.assert_close(total, expected, atol=1e-5, rtol=0)


def test_invisible_joints_do_not_count():
    anchors = anchor_grid(2, 2)
    out = {"logits": torch.zeros(1, 64, 2), "offsets": torch.zeros(1, 64, 2, 2),
           "depth": torch.zeros(1, 64, 2), "anchors": anchors}
    target = torch.tensor([[[16.0, 16.0], [900.0, 900.0]]])
    vis = torch.tensor([[True, False]])
    far = a2j_loss(out, target, torch.zeros(1, 2), visible=vis)
    near = a2j_loss(out, target[:, :1].expand(1, 2, 2), torch.zeros(1, 2))
    torch.testing.assert_close(far, near)


def test_geometry_round_trips():
    g = torch.Generator().manual_seed(0)
    xyz = torch.randn(3, 15, 3, generator=g) * 400 + torch.tensor([0.0, 0.0, 3000.0])
    k = torch.tensor([[285.0, 286.0, 160.0, 121.0], [300.0, 300.0, 150.0, 130.0], [250.0, 260.0, 90.0, 95.0]])
    uv, d = xyz_mm_to_uvd(xyz, k)
    torch.testing.assert_close(uv[0, 0, 0], 285.0 * xyz[0, 0, 0] / xyz[0, 0, 2] + 160.0)
    torch.testing.assert_close(uvd_to_xyz_mm(uv, d, k), xyz, rtol=1e-5, atol=1e-3)
    back = uvd_to_xyz_mm(uv.numpy(), d.numpy(), k.numpy())  # numpy in, numpy out
    np.testing.assert_allclose(back, xyz.numpy(), rtol=1e-4, atol=1e-2)
    assert depth_pixel_ratio(288, 0.4) == 360.0  # A2J's ITOP setting


def _scene(person_width=6):
    """64 x 64 depth (mm): wall at 4.5 m, a cabinet at 3.6 m on the left, a person at 2.5 m
    in the middle (a thin body: the centre box is mostly wall) with an arm reaching to 2.05 m."""
    d = np.full((64, 64), 4500, np.uint16)
    d[20:60, 2:14] = 3600
    c = 32 - person_width // 2
    d[8:60, c:c + person_width] = 2500
    d[24:28, c + person_width:c + person_width + 12] = 2050
    d[0:3] = 0  # no reading
    person = np.zeros_like(d, bool)
    person[8:60, c:c + person_width] = True
    person[24:28, c + person_width:c + person_width + 12] = True
    return d, person


def test_background_removal_keeps_person_and_clears_wall():
    params = inspect.signature(person_depth_window).parameters
    assert not any(w in name for name in params for w in ("joint", "kp", "pose", "gt", "label"))
    depth, person = _scene()
    out, z_ref = person_depth_window(depth)
    assert z_ref == pytest.approx(2.5, abs=0.01)
    assert out.dtype == depth.dtype
    np.testing.assert_array_equal(out[person], depth[person])
    assert (out[~person] == 0).all()  # the wall and the cabinet are cleared
    # a plain median of the central box would have picked the wall here
    box = depth[16:48, 22:42]
    assert np.median(box[box > 0]) == 4500
    with pytest.raises(ValueError):
        person_depth_window(np.zeros((8, 8), np.uint16))


def test_loss_falls_with_narrow_hrnet():
    torch.manual_seed(0)
    net = HRNet(HRNetConfig(**{**HRNetConfig.preset("narrow").to_dict(), "in_channels": 1}))
    head = A2JHead(WIDTHS, num_joints=4, channels=16, num_convs=1, depth_scale=40.0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, 64, 64, generator=g)
    target_xy = torch.rand(2, 4, 2, generator=g) * 48 + 8
    target_d = torch.rand(2, 4, generator=g) * 0.6 - 0.3
    opt = torch.optim.Adam(list(net.parameters()) + list(head.parameters()), lr=3e-3)
    losses = []
    for _ in range(20):
        loss = a2j_loss(head(net(x)), target_xy, target_d, depth_scale=40.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
