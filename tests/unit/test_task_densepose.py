"""Dense DensePose head: shapes, decoding to IUV, the loss and its use of the part's chart."""
import torch

from hcmoco.models import HRNet, HRNetConfig
from hcmoco.tasks import (DensePoseHead, decode_iuv, densepose_loss, densepose_loss_terms,
                          iuv_to_uint8, split_iuv)

torch.set_num_threads(1)
WIDTHS = HRNetConfig.preset("narrow").widths


def _feats(b=2, size=16):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(b, c, size >> k, size >> k, generator=g) for k, c in enumerate(WIDTHS)]


def test_head_shapes():
    head = DensePoseHead(WIDTHS, channels=32)
    out = head(_feats())
    assert out["part"].shape == (2, 25, 16, 16)
    assert out["u"].shape == out["v"].shape == (2, 24, 16, 16)
    out = head(_feats(), out_size=(64, 64))
    assert {k: tuple(v.shape[-2:]) for k, v in out.items()} == dict.fromkeys(("part", "u", "v"), (64, 64))


def _constructed():
    """A 1 x 2 x 3 map: pixels of parts 0 (background), 3, 24 / 7, 7, 1 with known charts."""
    part = torch.tensor([[[0, 3, 24], [7, 7, 1]]])
    logits = torch.full((1, 25, 2, 3), -5.0).scatter(1, part[:, None], 5.0)
    u = torch.full((1, 24, 2, 3), 0.9)
    v = torch.full((1, 24, 2, 3), -0.5)
    u[0, 2, 0, 1], v[0, 2, 0, 1] = 0.25, 0.75  # part 3 -> chart 2
    u[0, 23, 0, 2], v[0, 23, 0, 2] = 1.4, 0.5  # part 24, U clipped to 1
    u[0, 6, 1, 0], v[0, 6, 1, 0] = 0.1, 0.2
    u[0, 6, 1, 1], v[0, 6, 1, 1] = 0.3, -0.1  # V clipped to 0
    u[0, 0, 1, 2], v[0, 0, 1, 2] = 0.6, 0.4
    return {"part": logits, "u": u, "v": v}, part


def test_decoding_constructed_logits():
    out, part = _constructed()
    iuv = decode_iuv(out)
    expected = torch.tensor([[[[0, 0, 0], [3, 0.25, 0.75], [24, 1.0, 0.5]],
                              [[7, 0.1, 0.2], [7, 0.3, 0.0], [1, 0.6, 0.4]]]])
    torch.testing.assert_close(iuv, expected)
    as_uint8 = iuv_to_uint8(iuv)
    assert as_uint8.dtype == torch.uint8 and as_uint8[0, 0, 1].tolist() == [3, 64, 191]
    i, u, v = split_iuv(as_uint8)
    assert torch.equal(i, part) and torch.allclose(u, iuv[..., 1], atol=0.5 / 255)


def test_loss_uses_the_ground_truth_part_chart():
    out, part = _constructed()
    target_u = decode_iuv(out)[..., 1]
    target_v = decode_iuv(out)[..., 2]
    target_u[0, 0, 2], target_v[0, 1, 1] = 1.4, -0.1  # the unclipped regressions
    terms = densepose_loss_terms(out, part, target_u, target_v)
    assert terms["uv"].item() < 1e-12
    torch.testing.assert_close(terms["part"], torch.log1p(24 * torch.exp(torch.tensor(-10.0))))
    # other parts' charts and background pixels do not enter the U, V term
    other = {k: t.clone() for k, t in out.items()}
    other["u"][0, 10] = 7.0
    other["v"][0, :, 0, 0] = 7.0
    torch.testing.assert_close(densepose_loss_terms(other, part, target_u, target_v)["uv"], terms["uv"])
    # a U error of 0.2 on one of the 5 foreground pixels: SmoothL1 0.5 * 0.04 / 5, halved (U and V)
    shifted = target_u.clone()
    shifted[0, 1, 0] += 0.2
    uv = densepose_loss_terms(out, part, shifted, target_v)["uv"]
    torch.testing.assert_close(uv, torch.tensor(0.5 * 0.04 / 5 / 2))
    # unlabelled pixels (255) are skipped by both terms
    masked = part.clone()
    masked[0, 1, 0] = 255
    assert densepose_loss_terms(out, masked, shifted, target_v)["uv"].item() < 1e-12


def test_loss_falls_with_narrow_hrnet():
    torch.manual_seed(0)
    net, head = HRNet("narrow"), DensePoseHead(WIDTHS, channels=32)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 64, 64, generator=g)
    rows, cols = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    i = torch.zeros(2, 64, 64, dtype=torch.long)
    i[:, 12:52, 20:44] = 1 + (rows[12:52, 20:44] - 12) // 10 * 2 + (cols[12:52, 20:44] >= 32)
    u = ((cols - 20) % 12 / 12.0).expand(2, -1, -1).float()
    v = ((rows - 12) % 10 / 10.0).expand(2, -1, -1).float()
    opt = torch.optim.Adam(list(net.parameters()) + list(head.parameters()), lr=3e-3)
    losses = []
    for _ in range(20):
        loss = densepose_loss(head(net(x), out_size=(64, 64)), i, u, v)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    terms = densepose_loss_terms(head(net(x), out_size=(64, 64)), i, u, v)
    assert terms["part"] > 0 and terms["uv"] > 0
