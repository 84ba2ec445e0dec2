"""Sample-level contrastive loss of HCMoCo (CMC style with memory banks; docs/METHOD.md 3.1)."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from hcmoco.precision import at_least_float32 as _full

DEPTH = "depth"


def _negative_logits(ga: Tensor, bank: Tensor, neg_index: Tensor) -> Tensor:
    """(B, K) dot products g_i . M_{j_ik}. Gathering B*K bank rows costs B*K*D memory
    traffic (0.8 GB for CMC's K = 16384 at B = 32); when B*K exceeds the bank size N it is
    cheaper to score the whole bank (B x N) and gather the logits. Both are exact."""
    if neg_index.dim() == 1:  # shared by the batch
        return ga @ bank[neg_index].T
    if neg_index.numel() > bank.shape[0]:
        return (ga @ bank.T).gather(1, neg_index)
    return torch.einsum("bd,bkd->bk", ga, bank[neg_index])


def sample_contrast_loss(g: Mapping[str, Tensor], banks: Mapping[str, Tensor], index: Tensor,
                         neg_index: Tensor, has_depth: Tensor, tau: float = 0.07) -> Tensor:
    """L_sample = sum over ordered modality pairs a != b of
        mean_i CE([g^a_i . M^b_i, g^a_i . M^b_{j_1}, ..., g^a_i . M^b_{j_K}] / tau, target 0)
    where the mean runs over samples with depth (has_depth = 1) whenever a or b is "depth"
    (a pair term is 0 if there are none) and over all samples otherwise. With the modalities
    rgb, depth, keypoints there are 6 ordered pairs; the pairs are those of the keys of g.

    g:     {modality: (B, D)} current embeddings g_i, L2-normalised; gradients flow into them.
    banks: {modality: (N, D)} memory banks M (MemoryBank.banks(); no gradient).
    index: (B,) dataset indices i of the batch (positives M^b_i).
    neg_index: (B, K) negatives per sample (CMC), or (K,) shared by the batch; the same
           indices j serve every modality's bank (MemoryBank.sample_negatives).
    has_depth: (B,) bool or 0/1.
    Returns a scalar.
    """
    mods = list(g)
    total = _full(g[mods[0]]).new_zeros(())
    for a in mods:
        ga = _full(g[a])
        for b in mods:
            if a == b:
                continue
            bank = banks[b].detach().to(ga)
            l_pos = (ga * bank[index]).sum(-1, keepdim=True)
            logits = torch.cat([l_pos, _negative_logits(ga, bank, neg_index)], dim=1) / tau
            ce = torch.logsumexp(logits, dim=1) - logits[:, 0]
            if DEPTH in (a, b):
                w = has_depth.to(ce.dtype)
                total = total + (ce * w).sum() / w.sum().clamp(min=1)
            else:
                total = total + ce.mean()
    return total


def batch_contrast_loss(g: Mapping[str, Tensor], has_depth: Tensor, tau: float = 0.07) -> Tensor:
    """In-batch variant of the sample-level loss (no memory bank):
        L = sum over ordered pairs a != b of mean_i CE([g^a_i . g^b_1, ..., g^a_i . g^b_B] / tau, target i)
    The positive is the other modality's *current* embedding (gradients reach both encoders) and
    the negatives are the other samples of the batch. Terms involving depth run over the samples
    with depth only, among themselves (a pair term is 0 with fewer than two such samples).

    A memory bank only carries signal once every row has been refreshed by a recent network,
    which takes many epochs; short CPU schedules (a few epochs) learn with this form instead.
    g: {modality: (B, D)} L2-normalised; has_depth: (B,) bool or 0/1. Returns a scalar.
    """
    mods = list(g)
    keep_depth = has_depth.bool()
    total = _full(g[mods[0]]).new_zeros(())
    for a in mods:
        for b in mods:
            if a == b:
                continue
            ga, gb = _full(g[a]), _full(g[b])
            if DEPTH in (a, b):
                ga, gb = ga[keep_depth], gb[keep_depth]
            if len(ga) < 2:
                continue
            logits = ga @ gb.T / tau
            total = total + (torch.logsumexp(logits, dim=1) - logits.diagonal()).mean()
    return total
