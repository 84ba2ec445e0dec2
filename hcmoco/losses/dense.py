"""Dense intra-sample contrastive loss between RGB and depth maps (docs/METHOD.md 3.2), with its
continuous and ordinal soft target and the foreground cell sampler."""
from __future__ import annotations

import torch
from torch import Tensor


def sample_foreground_cells(mask: Tensor, n: int,
                            generator: torch.Generator | None = None) -> Tensor:
    """N cells per sample, uniformly among its foreground cells, with replacement.

    mask: (B, h, w) bool. Returns (B, N) long flat indices y * w + x. A sample without
    foreground draws uniformly from all cells (exclude it from the loss: it has no depth).
    Deterministic given the generator (drawn on the CPU).
    """
    weights = mask.flatten(1).float().cpu()
    empty = weights.sum(1) == 0
    weights[empty] = 1.0
    return torch.multinomial(weights, n, replacement=True, generator=generator).to(mask.device)


def cell_coordinates(cells: Tensor, width: int) -> Tensor:
    """(B, N) flat indices -> (B, N, 2) float (x, y) in grid-cell units."""
    return torch.stack([cells % width, torch.div(cells, width, rounding_mode="floor")], -1).float()


def ordinal_soft_target(coords: Tensor) -> Tensor:
    """q[b, i, j] = softmax_i(-||p_i - p_j||_2): for each anchor j a distribution over cells i,
    peaked at i = j and decaying with the grid distance (no temperature, cell units).
    coords: (B, N, 2) -> (B, N, N); every column sums to 1."""
    dist = torch.cdist(coords, coords, compute_mode="donot_use_mm_for_euclid_dist")
    return torch.softmax(-dist, dim=1)


def dense_contrast_loss(f_rgb: Tensor, f_depth: Tensor, cells: Tensor, has_depth: Tensor,
                        tau: float = 0.07) -> Tensor:
    """L_dense = mean over samples with depth of (L_{d|r} + L_{r|d}), where for one sample with
    sampled cells p_1..p_N, f^d_i, f^r_j the depth / RGB features at p_i / p_j,
        s_ij = f^d_i . f^r_j / tau,   q_ij = softmax_i(-||p_i - p_j||_2),
        L_{d|r} = -mean_j sum_i q_ij log softmax_i(s_ij)   (RGB anchor j, depth candidates i),
    and L_{r|d} the same with the roles of RGB and depth swapped (scores s^T, the same q).

    f_rgb, f_depth: (B, D, h, w) L2-normalised dense maps; cells: (B, N) long flat indices
    (sample_foreground_cells); has_depth: (B,) bool or 0/1, the samples to include (they
    should also have foreground). Returns a scalar (0 if no sample has depth).
    """
    keep = has_depth.bool().nonzero(as_tuple=True)[0]  # skip the rest: half a batch, usually
    b, d, h, w = f_rgb.shape
    dtype = torch.promote_types(f_rgb.dtype, torch.float32)
    cells = cells.index_select(0, keep)
    idx = cells.unsqueeze(1).expand(-1, d, -1)
    fr = f_rgb.index_select(0, keep).flatten(2).gather(2, idx).to(dtype)  # (V, D, N)
    fd = f_depth.index_select(0, keep).flatten(2).gather(2, idx).to(dtype)
    s = torch.einsum("bdi,bdj->bij", fd, fr) / tau  # s[v, i, j] = f^d_i . f^r_j
    with torch.no_grad():
        q = ordinal_soft_target(cell_coordinates(cells, w).to(dtype))
        q_both = q + q.transpose(1, 2)
    # sum_i q_ij = 1, so -sum_i q_ij log softmax_i(s_ij) = logsumexp_i(s_ij) - sum_i q_ij s_ij;
    # the r|d direction scores s^T against the same q. No (V, N, N) log-softmax is stored.
    n = cells.shape[1]
    per_sample = (torch.logsumexp(s, 1).sum(1) + torch.logsumexp(s, 2).sum(1)
                  - (q_both * s).sum((1, 2))) / n
    return per_sample.sum() / max(keep.numel(), 1)
