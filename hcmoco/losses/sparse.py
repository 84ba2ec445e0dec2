"""Sparse structure-aware contrastive losses of HCMoCo (docs/METHOD.md 3.3): joint features of the
dense maps against the keypoint encoder (intra-sample) and against each other across the
batch and the two image modalities (inter-sample, supervised-contrastive)."""
from __future__ import annotations

import torch
from torch import Tensor

from hcmoco.precision import at_least_float32 as _full


def _masked_log_softmax(logits: Tensor, keep: Tensor) -> Tensor:
    """log_softmax over the last axis among `keep` entries. Masked entries get the most negative
    finite value (not -inf) so an all-masked row stays finite; callers ignore such rows."""
    return torch.log_softmax(logits.masked_fill(~keep, torch.finfo(logits.dtype).min), dim=-1)


def _joint_ce(h_img: Tensor, h_kp: Tensor, visible: Tensor, tau: float) -> Tensor:
    """Both directions of the per-sample joint classification: (sum of CE, anchor count)."""
    s = torch.einsum("bid,bjd->bij", h_img, h_kp) / tau  # s[b, i, j] = h^img_i . h^kp_j
    keep = visible.unsqueeze(1)  # candidates: the sample's visible joints
    img_to_kp = _masked_log_softmax(s, keep).diagonal(dim1=1, dim2=2)
    kp_to_img = _masked_log_softmax(s.transpose(1, 2), keep).diagonal(dim1=1, dim2=2)
    per_joint = torch.where(visible, img_to_kp + kp_to_img, 0.0)
    return -per_joint.sum(), visible.sum().to(s.dtype)


def sparse_intra_loss(j_rgb: Tensor, j_depth: Tensor, h_kp: Tensor, visible: Tensor,
                      has_depth: Tensor, tau: float = 0.07) -> Tensor:
    """L_intra = sum over m in {rgb, depth} of (L_{m->k} + L_{k->m}), where for the visible
    joints V_b of sample b
        L_{m->k} = mean_{b, j in V_b} -log( exp(h^m_bj . h^k_bj / tau)
                                            / sum_{j' in V_b} exp(h^m_bj . h^k_bj' / tau) )
    and L_{k->m} swaps the roles; the depth means run over samples with depth only (0 if none).

    j_rgb, j_depth: (B, J, D) L2-normalised dense features at the joint cells;
    h_kp: (B, J, D) L2-normalised keypoint-encoder joint embeddings; visible: (B, J) bool;
    has_depth: (B,) bool or 0/1. Returns a scalar.
    """
    vis = visible.bool()
    h_kp = _full(h_kp)
    total = h_kp.new_zeros(())
    for feats, vis_m in ((j_rgb, vis), (j_depth, vis & has_depth.bool().unsqueeze(1))):
        loss_sum, count = _joint_ce(_full(feats), h_kp, vis_m, tau)
        total = total + loss_sum / count.clamp(min=1)
    return total


def sparse_inter_loss(j_rgb: Tensor, j_depth: Tensor, visible: Tensor, has_depth: Tensor,
                      tau: float = 0.07) -> Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, L^sup_out) over the pooled joint
    features z of the batch, both modalities: the set Z = {rgb joints of visible joints} union
    {depth joints of visible joints of samples with depth}, label = joint index.
        L = mean_{a in Z, P(a) != {}} -1/|P(a)| sum_{p in P(a)}
                log( exp(z_a . z_p / tau) / sum_{c in Z \\ {a}} exp(z_a . z_c / tau) )
    P(a) = features of Z other than a with a's joint index (any sample, either modality).
    Invisible joints are masked (the public code did not).

    j_rgb, j_depth: (B, J, D) L2-normalised; visible: (B, J) bool; has_depth: (B,).
    Returns a scalar (0 if no anchor has a positive).
    """
    b, j, d = j_rgb.shape
    vis = visible.bool()
    valid = torch.cat([vis.reshape(-1), (vis & has_depth.bool().unsqueeze(1)).reshape(-1)])
    z = _full(torch.cat([j_rgb.reshape(b * j, d), j_depth.reshape(b * j, d).to(j_rgb)]))[valid]
    label = torch.arange(j, device=z.device).repeat(2 * b)[valid]
    keep = ~torch.eye(z.shape[0], dtype=torch.bool, device=z.device)  # candidates: all but a
    log_prob = _masked_log_softmax(z @ z.T / tau, keep)
    positive = keep & (label.unsqueeze(0) == label.unsqueeze(1))
    n_pos = positive.sum(1)
    per_anchor = -torch.where(positive, log_prob, 0.0).sum(1) / n_pos.clamp(min=1)
    anchor = n_pos > 0
    return torch.where(anchor, per_anchor, 0.0).sum() / anchor.sum().clamp(min=1)
