"""sample_contrast_loss against a loop reference; masking, invariances, tau."""
import math

import pytest
import torch
import torch.nn.functional as F

from hcmoco.losses import sample_contrast_loss

MODS = ("rgb", "depth", "keypoints")
B, D = 5, 8


def _inputs(n=40, k=7, seed=0, shared=False):
    """Batch rows are bank indices 0..B-1, negatives come from B..N-1 (disjoint)."""
    g = torch.Generator().manual_seed(seed)
    unit = lambda *s: F.normalize(torch.randn(*s, generator=g, dtype=torch.float64), dim=-1)
    emb = {m: unit(B, D).requires_grad_() for m in MODS}
    banks = {m: unit(n, D) for m in MODS}
    index = torch.randperm(B, generator=g)
    neg_index = torch.randint(B, n, (k,) if shared else (B, k), generator=g)
    has_depth = torch.tensor([1, 0, 1, 1, 0], dtype=torch.bool)
    return emb, banks, index, neg_index, has_depth


def _reference(emb, banks, index, neg_index, has_depth, tau):
    total = 0.0
    for a in MODS:
        for b in MODS:
            if a == b:
                continue
            terms = []
            for i in range(B):
                if "depth" in (a, b) and not has_depth[i]:
                    continue
                negs = neg_index if neg_index.dim() == 1 else neg_index[i]
                rows = [banks[b][index[i]]] + [banks[b][j] for j in negs]
                logits = torch.stack([emb[a][i] @ r / tau for r in rows])
                terms.append(-(logits[0] - torch.log(torch.exp(logits).sum())))
            if terms:
                total = total + torch.stack(terms).mean()
    return total


@pytest.mark.parametrize("n,k,shared", [(40, 7, False), (12, 30, False), (40, 7, True)],
                         ids=["gather-rows", "score-whole-bank", "shared-negatives"])
def test_matches_loop_reference_value_and_grad(n, k, shared):
    emb, banks, index, neg, hd = _inputs(n, k, shared=shared)
    loss = sample_contrast_loss(emb, banks, index, neg, hd, tau=0.07)
    ref = _reference(emb, banks, index, neg, hd, 0.07)
    grads = torch.autograd.grad(loss, list(emb.values()))
    ref_grads = torch.autograd.grad(ref, list(emb.values()))
    torch.testing.assert_close(loss, ref)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("n,k", [(40, 7), (12, 30)])
def test_batch_permutation_invariant(n, k):
    emb, banks, index, neg, hd = _inputs(n, k)
    perm = torch.tensor([3, 0, 4, 1, 2])
    loss = sample_contrast_loss(emb, banks, index, neg, hd)
    permuted = sample_contrast_loss({m: v[perm] for m, v in emb.items()}, banks, index[perm],
                                    neg[perm], hd[perm])
    torch.testing.assert_close(loss, permuted)


def test_samples_without_depth_do_not_touch_depth_terms():
    emb, banks, index, neg, hd = _inputs()
    loss = sample_contrast_loss(emb, banks, index, neg, hd)
    grad = torch.autograd.grad(loss, list(emb.values()))
    emb2 = {m: v.detach().clone() for m, v in emb.items()}
    banks2 = {m: v.clone() for m, v in banks.items()}
    emb2["depth"][~hd] = F.normalize(torch.randn(int((~hd).sum()), D, dtype=torch.float64), dim=1)
    banks2["depth"][index[~hd]] *= -1  # their depth positives
    for v in emb2.values():
        v.requires_grad_()
    loss2 = sample_contrast_loss(emb2, banks2, index, neg, hd)
    grad2 = torch.autograd.grad(loss2, list(emb2.values()))
    torch.testing.assert_close(loss, loss2)
    for a, b in zip(grad, grad2):
        torch.testing.assert_close(a, b)
    assert grad[1][~hd].abs().max() == 0  # no gradient into depth embeddings of those samples


def test_no_depth_in_batch_leaves_only_rgb_keypoint_pairs():
    emb, banks, index, neg, _ = _inputs()
    none = torch.zeros(B, dtype=torch.bool)
    two = sample_contrast_loss({m: emb[m] for m in ("rgb", "keypoints")}, banks, index, neg, none)
    torch.testing.assert_close(sample_contrast_loss(emb, banks, index, neg, none), two)


def test_logits_are_embeddings_over_tau():
    emb, banks, index, neg, hd = _inputs()
    scaled = {m: 3.0 * v for m, v in emb.items()}
    torch.testing.assert_close(sample_contrast_loss(emb, banks, index, neg, hd, tau=0.1),
                               sample_contrast_loss(scaled, banks, index, neg, hd, tau=0.3))
    # tau -> infinity: every logit equal, each of the 6 pair terms is log(K + 1)
    flat = sample_contrast_loss(emb, banks, index, neg, hd, tau=1e9)
    torch.testing.assert_close(flat.detach(), torch.tensor(6 * math.log(8), dtype=torch.float64))


def test_embeddings_at_their_bank_rows_score_low():
    emb, banks, index, neg, hd = _inputs()
    at_rows = {m: banks["rgb"][index] for m in MODS}
    same = {m: banks["rgb"] for m in MODS}
    low = sample_contrast_loss(at_rows, same, index, neg, hd, tau=0.07)
    assert low < 0.2 * sample_contrast_loss(emb, banks, index, neg, hd, tau=0.07)
