"""HRNet segmentation head, (class-weighted) cross-entropy and ENet class weights."""
import math

import pytest
import torch
import torch.nn.functional as F

from hcmoco.models import HRNet, HRNetConfig
from hcmoco.tasks import (SegmentationHead, concat_branches, enet_class_weights, label_counts,
                          segmentation_loss)

torch.set_num_threads(1)


def _feats(b=2, widths=(8, 16, 32, 64), size=16):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(b, c, size >> k, size >> k, generator=g) for k, c in enumerate(widths)]


def test_head_shapes_and_fusion():
    head = SegmentationHead((8, 16, 32, 64), num_classes=25)
    feats = _feats()
    assert concat_branches(feats).shape == (2, 120, 16, 16)
    assert head(feats).shape == (2, 25, 16, 16)
    assert head(feats, out_size=(64, 64)).shape == (2, 25, 64, 64)
    assert head.fuse[0].in_channels == head.fuse[0].out_channels == 120  # HRNetV2: 1x1 c -> c
    # the first branch is used unresampled, the others bilinearly upsampled
    torch.testing.assert_close(concat_branches(feats)[:, :8], feats[0])
    up = F.interpolate(feats[3], size=(16, 16), mode="bilinear", align_corners=False)
    torch.testing.assert_close(concat_branches(feats)[:, 56:], up)


def test_loss_is_weighted_cross_entropy_with_ignore():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 4, 6, 6, generator=g)
    target = torch.randint(0, 4, (2, 6, 6), generator=g)
    target[0, :2] = 255
    w = torch.tensor([0.5, 1.0, 2.0, 4.0])
    logp = torch.log_softmax(logits, 1).permute(0, 2, 3, 1)[target != 255]
    y = target[target != 255]
    nll = -logp.gather(1, y[:, None])[:, 0]
    torch.testing.assert_close(segmentation_loss(logits, target), nll.mean())
    torch.testing.assert_close(segmentation_loss(logits, target, w), (w[y] * nll).sum() / w[y].sum())
    # logits at a lower resolution are upsampled to the labels
    assert segmentation_loss(logits, torch.zeros(2, 12, 12, dtype=torch.long)).isfinite()
    empty = segmentation_loss(logits.requires_grad_(), torch.full((2, 6, 6), 255))
    assert empty.item() == 0.0 and empty.requires_grad


def test_enet_weights_from_label_frequencies():
    labels = torch.tensor([[0, 0, 0, 0, 0, 0, 1, 1], [2, 255, 255, 0, 0, 0, 0, 0]])
    counts = label_counts(labels, 4)
    assert counts.tolist() == [11, 2, 1, 0]
    w = enet_class_weights(counts)
    expected = [1 / math.log(1.02 + c / 14) for c in (11, 2, 1, 0)]
    torch.testing.assert_close(w, torch.tensor(expected))
    assert w[0] < w[1] < w[2] < w[3]  # rarer classes weigh more, bounded by 1 / ln 1.02
    with pytest.raises(ValueError):
        label_counts(torch.tensor([0, 7]), 4)


def test_loss_falls_with_narrow_hrnet():
    torch.manual_seed(0)
    net, head = HRNet("narrow"), SegmentationHead(HRNetConfig.preset("narrow").widths, 5)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 64, 64, generator=g)
    y = torch.zeros(2, 64, 64, dtype=torch.long)
    y[:, 16:48, 16:48] = 1 + (torch.arange(32)[None, :] // 8) % 4  # four part stripes
    y[:, :4] = 255
    w = enet_class_weights(label_counts(y, 5))
    opt = torch.optim.Adam(list(net.parameters()) + list(head.parameters()), lr=3e-3)
    losses = []
    for _ in range(20):
        loss = segmentation_loss(head(net(x), out_size=(64, 64)), y, w)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
