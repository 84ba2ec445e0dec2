"""sparse_intra_loss and sparse_inter_loss against loop references; masking, invariances."""
import pytest
import torch
import torch.nn.functional as F

from hcmoco.losses import sparse_inter_loss, sparse_intra_loss

B, J, D = 3, 5, 6


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    unit = lambda: F.normalize(torch.randn(B, J, D, generator=g, dtype=torch.float64), dim=-1)
    jr, jd, hk = (unit().requires_grad_() for _ in range(3))
    visible = torch.tensor([[1, 1, 0, 1, 1], [1, 0, 1, 1, 0], [0, 1, 1, 1, 1]], dtype=torch.bool)
    has_depth = torch.tensor([1, 0, 1], dtype=torch.bool)
    return jr, jd, hk, visible, has_depth


def _ce(logits, target):
    return -(logits[target] - torch.log(torch.exp(logits).sum()))


def _intra_reference(jr, jd, hk, visible, has_depth, tau):
    total = 0.0
    for feats, use_sample in ((jr, [True] * B), (jd, has_depth.tolist())):
        for direction in (0, 1):
            terms = []
            for b in range(B):
                if not use_sample[b]:
                    continue
                vis = [j for j in range(J) if visible[b, j]]
                for t, j in enumerate(vis):
                    a, cands = (feats[b, j], hk[b, vis]) if direction == 0 else (hk[b, j], feats[b, vis])
                    terms.append(_ce(torch.stack([a @ c / tau for c in cands]), t))
            if terms:
                total = total + torch.stack(terms).mean()
    return total


def _inter_reference(jr, jd, visible, has_depth, tau):
    items = [(jr[b, j], j) for b in range(B) for j in range(J) if visible[b, j]]
    items += [(jd[b, j], j) for b in range(B) for j in range(J) if visible[b, j] and has_depth[b]]
    terms = []
    for a, (za, la) in enumerate(items):
        others = [c for c in range(len(items)) if c != a]
        positives = [p for p in others if items[p][1] == la]
        if not positives:
            continue
        denom = torch.log(torch.stack([torch.exp(za @ items[c][0] / tau) for c in others]).sum())
        terms.append(-torch.stack([za @ items[p][0] / tau - denom for p in positives]).mean())
    return torch.stack(terms).mean()


def test_intra_matches_loop_reference_value_and_grad():
    jr, jd, hk, vis, hd = _inputs()
    loss = sparse_intra_loss(jr, jd, hk, vis, hd, tau=0.07)
    ref = _intra_reference(jr, jd, hk, vis, hd, 0.07)
    torch.testing.assert_close(loss, ref)
    for got, want in zip(torch.autograd.grad(loss, (jr, jd, hk)),
                         torch.autograd.grad(ref, (jr, jd, hk))):
        torch.testing.assert_close(got, want)


def test_inter_matches_loop_reference_value_and_grad():
    jr, jd, _, vis, hd = _inputs()
    loss = sparse_inter_loss(jr, jd, vis, hd, tau=0.07)
    ref = _inter_reference(jr, jd, vis, hd, 0.07)
    torch.testing.assert_close(loss, ref)
    for got, want in zip(torch.autograd.grad(loss, (jr, jd)), torch.autograd.grad(ref, (jr, jd))):
        torch.testing.assert_close(got, want)


def _intra(jr, jd, hk, vis, hd):
    return sparse_intra_loss(jr, jd, hk, vis, hd)


def _inter(jr, jd, hk, vis, hd):
    return sparse_inter_loss(jr, jd, vis, hd)


@pytest.mark.parametrize("loss_fn", [_intra, _inter])
def test_batch_permutation_invariant(loss_fn):
    jr, jd, hk, vis, hd = _inputs()
    p = torch.tensor([2, 0, 1])
    torch.testing.assert_close(loss_fn(jr, jd, hk, vis, hd),
                               loss_fn(jr[p], jd[p], hk[p], vis[p], hd[p]))


def _perturbed_grads(loss_fn, where):
    """Loss and grads before / after replacing the features selected by the (B, J) mask."""
    jr, jd, hk, vis, hd = _inputs()
    loss = loss_fn(jr, jd, hk, vis, hd)
    grads = torch.autograd.grad(loss, (jr, jd, hk), allow_unused=True)
    new = []
    for t in (jr, jd, hk):
        t2 = t.detach().clone()
        t2[where(vis, hd)] = F.normalize(torch.randn_like(t2[where(vis, hd)]), dim=-1)
        new.append(t2.requires_grad_())
    loss2 = loss_fn(*new, vis, hd)
    grads2 = torch.autograd.grad(loss2, tuple(new), allow_unused=True)
    return loss, loss2, grads, grads2


@pytest.mark.parametrize("loss_fn", [_intra, _inter])
def test_invisible_joints_contribute_nothing(loss_fn):
    invisible = lambda vis, hd: ~vis
    loss, loss2, grads, grads2 = _perturbed_grads(loss_fn, invisible)
    torch.testing.assert_close(loss, loss2)
    for a, b in zip(grads, grads2):
        if a is not None:
            torch.testing.assert_close(a, b)
            assert b[~_inputs()[3]].abs().max() == 0


@pytest.mark.parametrize("loss_fn", [_intra, _inter])
def test_depth_of_samples_without_depth_contributes_nothing(loss_fn):
    jr, jd, hk, vis, hd = _inputs()
    loss = loss_fn(jr, jd, hk, vis, hd)
    g = torch.autograd.grad(loss, (jr, jd))
    jd2 = jd.detach().clone()
    jd2[~hd] = F.normalize(torch.randn_like(jd2[~hd]), dim=-1)
    jd2.requires_grad_()
    loss2 = loss_fn(jr, jd2, hk, vis, hd)
    g2 = torch.autograd.grad(loss2, (jr, jd2))
    torch.testing.assert_close(loss, loss2)
    torch.testing.assert_close(g[0], g2[0])
    torch.testing.assert_close(g[1], g2[1])
    assert g2[1][~hd].abs().max() == 0


def test_intra_is_small_when_joints_match_their_keypoint_embedding():
    _, _, hk, vis, hd = _inputs()
    hk = hk.detach()
    assert sparse_intra_loss(hk, hk, hk, vis, hd, tau=0.01) < sparse_intra_loss(
        hk.roll(1, dims=1), hk, hk, vis, hd, tau=0.01)


def test_inter_tau_and_label_structure():
    jr, jd, _, vis, hd = _inputs()
    torch.testing.assert_close(sparse_inter_loss(jr, jd, vis, hd, tau=0.1),
                               sparse_inter_loss(2 * jr, 2 * jd, vis, hd, tau=0.4))
    # one embedding per joint index, shared by all samples and modalities: positives are
    # identical, so the loss is far below that of random features
    proto = F.normalize(torch.eye(J, D, dtype=torch.float64), dim=-1).expand(B, J, D)
    assert sparse_inter_loss(proto, proto, vis, hd, tau=0.07) < 0.5 * sparse_inter_loss(
        jr, jd, vis, hd, tau=0.07)


def test_intra_single_visible_joint_is_zero_and_none_visible_is_finite():
    jr, jd, hk, _, hd = _inputs()
    one = torch.zeros(B, J, dtype=torch.bool)
    one[:, 2] = True
    assert sparse_intra_loss(jr, jd, hk, one, hd) == 0
    none = torch.zeros(B, J, dtype=torch.bool)
    for fn in (lambda: sparse_intra_loss(jr, jd, hk, none, hd),
               lambda: sparse_inter_loss(jr, jd, none, hd)):
        loss = fn()
        loss.backward()
        assert loss == 0 and torch.isfinite(jr.grad).all()
