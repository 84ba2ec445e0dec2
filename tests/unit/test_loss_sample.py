"""sample_contrast_loss against a loop reference; masking, invariances, tau."""
import math

import pytest
import torch
import torch.nn.functional as F

from hcmoco.losses import sample_contrast_loss

MODS = ("rgb", "depth", "keypoints")


def _inputs(b=5, k=7, d=8, seed=0, shared=False):
    g = torch.Generator().manual_seed(seed)
    unit = lambda *s: F.normalize(torch.randn(*s, generator=g, dtype=torch.float64), dim=-1)
    emb = {m: unit(b, d).requires_grad_() for m in MODS}
    pos = {m: unit(b, d) for m in MODS}
    neg = {m: unit(k, d) if shared else unit(b, k, d) for m in MODS}
    has_depth = torch.tensor([1, 0, 1, 1, 0][:b], dtype=torch.bool)
    return emb, pos, neg, has_depth


def _reference(emb, pos, neg, has_depth, tau):
    total = 0.0
    for a in MODS:
        for b in MODS:
            if a == b:
                continue
            terms = []
            for i in range(emb[a].shape[0]):
                if "depth" in (a, b) and not has_depth[i]:
                    continue
                negs = neg[b] if neg[b].dim() == 2 else neg[b][i]
                logits = [emb[a][i] @ pos[b][i] / tau] + [emb[a][i] @ n / tau for n in negs]
                logits = torch.stack(logits)
                terms.append(-(logits[0] - torch.log(torch.exp(logits).sum())))
            if terms:
                total = total + torch.stack(terms).mean()
    return total


@pytest.mark.parametrize("shared", [False, True])
def test_matches_loop_reference_value_and_grad(shared):
    emb, pos, neg, hd = _inputs(shared=shared)
    loss = sample_contrast_loss(emb, pos, neg, hd, tau=0.07)
    ref = _reference(emb, pos, neg, hd, 0.07)
    grads = torch.autograd.grad(loss, list(emb.values()))
    ref_grads = torch.autograd.grad(ref, list(emb.values()))
    torch.testing.assert_close(loss, ref)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want)


def test_batch_permutation_invariant():
    emb, pos, neg, hd = _inputs()
    perm = torch.tensor([3, 0, 4, 1, 2])
    loss = sample_contrast_loss(emb, pos, neg, hd)
    permuted = sample_contrast_loss({m: v[perm] for m, v in emb.items()},
                                    {m: v[perm] for m, v in pos.items()},
                                    {m: v[perm] for m, v in neg.items()}, hd[perm])
    torch.testing.assert_close(loss, permuted)


def test_samples_without_depth_do_not_touch_depth_terms():
    emb, pos, neg, hd = _inputs()
    loss = sample_contrast_loss(emb, pos, neg, hd)
    grad = torch.autograd.grad(loss, list(emb.values()))
    emb2 = {m: v.detach().clone() for m, v in emb.items()}
    pos2 = {m: v.clone() for m, v in pos.items()}
    emb2["depth"][~hd] = F.normalize(torch.randn(int((~hd).sum()), 8, dtype=torch.float64), dim=1)
    pos2["depth"][~hd] = -pos2["depth"][~hd]
    for v in emb2.values():
        v.requires_grad_()
    loss2 = sample_contrast_loss(emb2, pos2, neg, hd)
    grad2 = torch.autograd.grad(loss2, list(emb2.values()))
    torch.testing.assert_close(loss, loss2)
    for a, b in zip(grad, grad2):
        torch.testing.assert_close(a, b)
    assert grad[1][~hd].abs().max() == 0  # no gradient into depth embeddings of those samples


def test_no_depth_in_batch_leaves_only_rgb_keypoint_pairs():
    emb, pos, neg, _ = _inputs()
    none = torch.zeros(5, dtype=torch.bool)
    two = sample_contrast_loss({m: emb[m] for m in ("rgb", "keypoints")}, pos, neg, none)
    torch.testing.assert_close(sample_contrast_loss(emb, pos, neg, none), two)


def test_logits_are_embeddings_over_tau():
    emb, pos, neg, hd = _inputs()
    scaled = {m: 3.0 * v for m, v in emb.items()}
    torch.testing.assert_close(sample_contrast_loss(emb, pos, neg, hd, tau=0.1),
                               sample_contrast_loss(scaled, pos, neg, hd, tau=0.3))
    # tau -> infinity: every logit equal, each of the 6 pair terms is log(K + 1)
    flat = sample_contrast_loss(emb, pos, neg, hd, tau=1e9)
    torch.testing.assert_close(flat.detach(), torch.tensor(6 * math.log(8), dtype=torch.float64))


def test_perfect_alignment_gives_small_loss():
    emb, pos, neg, hd = _inputs()
    aligned = {m: emb["rgb"].detach() for m in MODS}
    far = {m: -emb["rgb"].detach().unsqueeze(1).expand(-1, 7, -1) for m in MODS}
    assert sample_contrast_loss(aligned, aligned, far, hd, tau=0.07) < 1e-6
