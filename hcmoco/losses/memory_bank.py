"""Per-modality memory banks of the sample-level loss (CMC style, docs/METHOD.md section 3.1).

One row per dataset index and modality, initialised to random unit vectors. Rows are read for
positives (M^b_i) and uniformly drawn negatives (M^b_j), and updated after the optimiser step
(the rows of a modality a sample lacks, e.g. depth of keypoint-only samples, keep their random
init: they then serve as negatives that are easy but harmless):
    M^b_i <- normalise(m M^b_i + (1 - m) g^b_i),  m = 0.5.
The banks are buffers, so they travel with the state dict (stage 2 resumes stage 1's bank).
In a multi-process run every process holds a full copy and applies the same update with the
all-gathered batch (hcmoco/train/distributed.py), so the copies never diverge.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MemoryBank(nn.Module):
    def __init__(self, num_samples: int, dim: int = 128,
                 modalities: Sequence[str] = ("rgb", "depth", "keypoints"),
                 momentum: float = 0.5, generator: torch.Generator | None = None):
        super().__init__()
        self.modalities = tuple(modalities)
        self.num_samples, self.dim, self.momentum = num_samples, dim, momentum
        for m in self.modalities:
            self.register_buffer(m, F.normalize(torch.randn(num_samples, dim, generator=generator),
                                                dim=1))

    def bank(self, modality: str) -> Tensor:
        return getattr(self, modality)

    def sample_negatives(self, k: int, batch_size: int | None = None,
                         generator: torch.Generator | None = None) -> Tensor:
        """K indices drawn uniformly with replacement from [0, N): (B, K) with a batch size
        (CMC: fresh negatives per sample), else (K,) shared by the batch. Deterministic given
        the generator; indices are drawn on the CPU so the draw does not depend on the device."""
        shape = (k,) if batch_size is None else (batch_size, k)
        idx = torch.randint(self.num_samples, shape, generator=generator)
        return idx.to(self.bank(self.modalities[0]).device)

    def banks(self) -> dict[str, Tensor]:
        """{modality: (N, D)} the banks themselves (read-only use; see sample_contrast_loss)."""
        return {m: self.bank(m) for m in self.modalities}

    @torch.no_grad()
    def update(self, index: Tensor, embeddings: Mapping[str, Tensor],
               valid: Mapping[str, Tensor] | None = None) -> None:
        """Momentum update of rows `index` (B,) with embeddings {m: (B, D)}.

        valid: optional {m: (B,) bool}; rows with False are left as they are (e.g. the depth
        rows of keypoint-only samples). If an index repeats in the batch, its first occurrence
        is used, so the result does not depend on scatter order.
        """
        first = _first_occurrence(index)
        for m, g in embeddings.items():
            keep = first if valid is None or m not in valid else first & valid[m].bool()
            rows = index[keep]
            bank = self.bank(m)
            new = self.momentum * bank[rows] + (1 - self.momentum) * g.detach()[keep].to(bank)
            bank[rows] = F.normalize(new, dim=1)


def _first_occurrence(index: Tensor) -> Tensor:
    """(B,) bool: True at the first position of each distinct value of `index`."""
    uniq, inverse = torch.unique(index, return_inverse=True)
    pos = torch.arange(index.numel(), device=index.device)
    first = pos.new_full((uniq.numel(),), index.numel()).scatter_reduce(0, inverse, pos, "amin")
    return torch.zeros_like(index, dtype=torch.bool).index_fill(0, first, True)
