"""Device, precision and determinism: chosen once per run, the same way for every trainer."""
from __future__ import annotations

import contextlib
import random

import numpy as np
import torch

from hcmoco.errors import HcmocoError


def select_device(requested: str = "auto") -> torch.device:
    """CUDA when present (or asked for), else CPU; nothing requires a GPU."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise HcmocoError(f"device {requested!r} requested but CUDA is not available")
    return torch.device(requested)


def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto`: bf16 on CUDA; fp32 on CPU, where bf16 autocast was measured 3-5x slower on
    CPUs without native bf16 (AVX2-only). `fp64` runs the whole model in float64: for numerical
    checks (two runs compared to rounding level), never for speed."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def compute_dtype(precision: str) -> torch.dtype:
    """The dtype of parameters and float inputs: float64 for `fp64`, else float32 (bf16 is
    autocast over float32 parameters)."""
    return torch.float64 if precision == "fp64" else torch.float32


def autocast(precision: str, device: torch.device):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def seed_everything(seed: int, deterministic: bool = True) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic and torch.cuda.is_available():
        # CPU kernels are deterministic already; the switch also imports torch's compiler
        # stack (about 2 s per process), so it is only thrown where it matters
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def cosine_schedule(base: float, final: float, steps: int) -> np.ndarray:
    """Per-step learning rates, cosine from `base` to `final` (precomputed, as DINO does)."""
    t = np.arange(steps) / max(steps - 1, 1)
    return final + 0.5 * (base - final) * (1 + np.cos(np.pi * t))
