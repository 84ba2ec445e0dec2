"""Mixed precision: the autocast region of a precision setting, and the one rule for the dtype
of reductions: at least float32.

Under bf16 autocast, embeddings, norms and losses are computed in float32 (a bf16 softmax over
thousands of negatives loses the positive); a float64 model (precision `fp64`, for numerical
checks) stays float64 end to end.
"""
from __future__ import annotations

import contextlib

import torch
from torch import Tensor


def at_least_float32(t: Tensor) -> Tensor:
    return t.to(torch.promote_types(t.dtype, torch.float32))


def autocast(precision: str, device: torch.device):
    """The autocast region of `precision` (params `precision`, resolved): bf16 autocast on
    `device` for "bf16", no change of dtype otherwise."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
