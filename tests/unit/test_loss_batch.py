"""The in-batch sample-level loss against a loop over pairs and samples."""
import math

import torch
import torch.nn.functional as F

from hcmoco.losses import batch_contrast_loss

MODS = ("rgb", "depth", "keypoints")


def brute_force(g, has_depth, tau):
    total = 0.0
    for a in MODS:
        for b in MODS:
            if a == b:
                continue
            rows = [i for i in range(len(has_depth)) if has_depth[i] or "depth" not in (a, b)]
            if len(rows) < 2:
                continue
            terms = []
            for i in rows:
                scores = [float(g[a][i] @ g[b][j]) / tau for j in rows]
                terms.append(math.log(sum(math.exp(s) for s in scores)) - float(g[a][i] @ g[b][i]) / tau)
            total += sum(terms) / len(terms)
    return total


def embeddings(seed=0, b=6):
    gen = torch.Generator().manual_seed(seed)
    return {m: F.normalize(torch.randn(b, 8, generator=gen, dtype=torch.float64), dim=1).requires_grad_()
            for m in MODS}


def test_matches_brute_force_and_its_gradient():
    g = embeddings()
    has_depth = torch.tensor([1, 1, 0, 1, 0, 1], dtype=torch.bool)
    loss = batch_contrast_loss(g, has_depth, tau=0.1)
    assert abs(loss.item() - brute_force(g, has_depth, 0.1)) < 1e-9
    loss.backward()
    eps = 1e-6
    bumped = {m: v.detach().clone() for m, v in g.items()}
    bumped["rgb"][0, 0] += eps
    numeric = (brute_force(bumped, has_depth, 0.1) - brute_force({m: v.detach() for m, v in g.items()}, has_depth, 0.1)) / eps
    assert abs(g["rgb"].grad[0, 0].item() - numeric) < 1e-4


def test_samples_without_depth_do_not_touch_depth_terms():
    g = embeddings()
    has_depth = torch.tensor([1, 1, 0, 1, 0, 1], dtype=torch.bool)
    base = batch_contrast_loss(g, has_depth).item()
    changed = {m: v.detach().clone() for m, v in g.items()}
    changed["depth"][2] = F.normalize(torch.randn(8, dtype=torch.float64), dim=0)
    assert abs(batch_contrast_loss(changed, has_depth).item() - base) < 1e-12


def test_batch_permutation_invariance_and_aligned_minimum():
    g = embeddings()
    has_depth = torch.ones(6, dtype=torch.bool)
    perm = torch.randperm(6)
    a = batch_contrast_loss(g, has_depth)
    b = batch_contrast_loss({m: v[perm] for m, v in g.items()}, has_depth[perm])
    assert torch.allclose(a, b)
    aligned = {m: g["rgb"].detach() for m in MODS}  # every modality agrees: the loss drops
    assert batch_contrast_loss(aligned, has_depth) < a
