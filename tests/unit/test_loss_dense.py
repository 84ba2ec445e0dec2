"""dense_contrast_loss, its soft target and cell sampler."""
import pytest
import torch
import torch.nn.functional as F

from hcmoco.losses import (cell_coordinates, dense_contrast_loss,
                           ordinal_soft_target, sample_foreground_cells)


def _inputs(b=3, d=6, h=5, w=4, n=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    fr = F.normalize(torch.randn(b, d, h, w, generator=g, dtype=torch.float64), dim=1)
    fd = F.normalize(torch.randn(b, d, h, w, generator=g, dtype=torch.float64), dim=1)
    mask = torch.rand(b, h, w, generator=g) > 0.3
    cells = sample_foreground_cells(mask, n, torch.Generator().manual_seed(seed))
    has_depth = torch.tensor([1, 0, 1][:b], dtype=torch.bool)
    return fr.requires_grad_(), fd.requires_grad_(), cells, has_depth


def _reference(fr, fd, cells, has_depth, tau):
    b, d, h, w = fr.shape
    per_sample = []
    for s in range(b):
        if not has_depth[s]:
            continue
        idx = [int(c) for c in cells[s]]
        pts = [torch.tensor([c % w, c // w], dtype=torch.float64) for c in idx]
        vr = [fr[s, :, c // w, c % w] for c in idx]
        vd = [fd[s, :, c // w, c % w] for c in idx]
        n = len(idx)
        total = 0.0
        for anchors, cands in ((vr, vd), (vd, vr)):
            for j in range(n):
                logits = torch.stack([cands[i] @ anchors[j] / tau for i in range(n)])
                logp = logits - torch.log(torch.exp(logits).sum())
                dist = torch.stack([-torch.linalg.norm(pts[i] - pts[j]) for i in range(n)])
                q = torch.exp(dist) / torch.exp(dist).sum()
                total = total - (q * logp).sum() / n
        per_sample.append(total)
    return torch.stack(per_sample).mean()


def test_matches_loop_reference_value_and_grad():
    fr, fd, cells, hd = _inputs()
    loss = dense_contrast_loss(fr, fd, cells, hd, tau=0.07)
    ref = _reference(fr, fd, cells, hd, 0.07)
    torch.testing.assert_close(loss, ref)
    for got, want in zip(torch.autograd.grad(loss, (fr, fd)), torch.autograd.grad(ref, (fr, fd))):
        torch.testing.assert_close(got, want)


def test_soft_target_sums_to_one_and_peaks_at_zero_distance():
    coords = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [3.0, 4.0], [1.0, 1.0]]])
    q = ordinal_soft_target(coords)
    torch.testing.assert_close(q.sum(1), torch.ones(1, 4))
    assert torch.equal(q.argmax(1), torch.arange(4).unsqueeze(0))
    # ordinal: for anchor 0, nearer cells get more mass; exact value at distance 5
    assert q[0, 0, 0] > q[0, 1, 0] > q[0, 3, 0] > q[0, 2, 0]
    e = torch.exp(-torch.tensor([0.0, 1.0, 5.0, 2 ** 0.5]))
    torch.testing.assert_close(q[0, 2, 0], e[2] / e.sum())


def test_cell_coordinates_are_x_y_in_cells():
    coords = cell_coordinates(torch.tensor([[0, 3, 4, 13]]), width=4)
    assert coords.tolist() == [[[0, 0], [3, 0], [0, 1], [1, 3]]]


def test_sampling_is_deterministic_and_stays_in_the_foreground():
    mask = torch.zeros(2, 6, 6, dtype=torch.bool)
    mask[0, 1:3, 2:5] = True
    draw = lambda seed: sample_foreground_cells(mask, 50, torch.Generator().manual_seed(seed))
    a, b, c = draw(1), draw(1), draw(2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (2, 50)
    assert mask[0].flatten()[a[0]].all()  # only foreground cells of sample 0
    assert len(set(a[0].tolist())) == 6  # with replacement, all 6 cells hit in 50 draws
    assert a[1].max() < 36  # empty mask falls back to all cells


def test_batch_permutation_invariant():
    fr, fd, cells, hd = _inputs()
    perm = torch.tensor([2, 0, 1])
    torch.testing.assert_close(dense_contrast_loss(fr, fd, cells, hd),
                               dense_contrast_loss(fr[perm], fd[perm], cells[perm], hd[perm]))


def test_samples_without_depth_contribute_nothing():
    fr, fd, cells, hd = _inputs()
    loss = dense_contrast_loss(fr, fd, cells, hd)
    grads = torch.autograd.grad(loss, (fr, fd))
    fd2 = fd.detach().clone()
    fr2 = fr.detach().clone()
    fd2[1] = F.normalize(torch.randn_like(fd2[1]), dim=0)
    fr2[1] = F.normalize(torch.randn_like(fr2[1]), dim=0)
    fr2.requires_grad_(), fd2.requires_grad_()
    loss2 = dense_contrast_loss(fr2, fd2, cells, hd)
    torch.testing.assert_close(loss, loss2)
    for a, b in zip(grads, torch.autograd.grad(loss2, (fr2, fd2))):
        torch.testing.assert_close(a, b)
        assert b[1].abs().max() == 0
    assert dense_contrast_loss(fr, fd, cells, torch.zeros(3, dtype=torch.bool)) == 0


def test_tau_scales_the_similarities():
    fr, fd, cells, hd = _inputs()
    torch.testing.assert_close(dense_contrast_loss(fr, fd, cells, hd, tau=0.1),
                               dense_contrast_loss(2 * fr, fd, cells, hd, tau=0.2))
    # tau -> infinity: uniform prediction, loss = 2 * log N per sample (q sums to one)
    flat = dense_contrast_loss(fr, fd, cells, hd, tau=1e9).detach()
    torch.testing.assert_close(flat, 2 * torch.log(torch.tensor(9.0, dtype=torch.float64)))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_low_precision_inputs_are_computed_in_float32(dtype):
    fr, fd, cells, hd = _inputs()
    loss = dense_contrast_loss(fr.detach().to(dtype), fd.detach().to(dtype), cells, hd)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss.double(), dense_contrast_loss(fr, fd, cells, hd).detach(),
                               atol=0.1, rtol=0.05)
