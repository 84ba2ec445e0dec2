"""Device, precision and determinism: chosen once per run, the same way for every trainer."""
from __future__ import annotations

import hashlib
import json
import platform
import random
import time
from pathlib import Path

import numpy as np
import torch

from hcmoco.errors import HcmocoError
from hcmoco.precision import autocast


def select_device(requested: str = "auto") -> torch.device:
    """CUDA when present (or asked for), else CPU; nothing requires a GPU."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise HcmocoError(f"device {requested!r} requested but CUDA is not available")
    return torch.device(requested)


BF16_MIN_SPEEDUP = 1.25  # below this, bf16's rounding is not worth its speed
PRECISION_CACHE = Path("checkpoints/precision")


def resolve_precision(precision: str, device: torch.device, preset: str | None = None, resolution: int = 64,
                      batch_size: int = 8) -> tuple[str, str]:
    """(precision, why). `auto`: bf16 autocast on CUDA; on a CPU, bf16 only where a one-time
    micro-benchmark of this backbone (`preset`, at this resolution and batch, on this CPU, torch
    and thread count) shows it at least BF16_MIN_SPEEDUP x faster than fp32, else fp32: measured
    1.3-1.5x for W18 on a CPU with native bf16, nothing for the narrow preset, and 3-5x slower on
    AVX2-only CPUs. The verdict is cached under checkpoints/precision/, so every later run on the
    machine (and both workflow tools) makes the same choice. `fp64` runs the whole model in
    float64: for numerical checks (two runs compared to rounding level), never for speed."""
    if precision != "auto":
        return precision, "set in params"
    if device.type == "cuda":
        return "bf16", "auto: CUDA"
    if preset is None:
        return "fp32", "auto: CPU"
    speedup = _cpu_bf16_speedup(preset, resolution, batch_size)
    choice = "bf16" if speedup >= BF16_MIN_SPEEDUP else "fp32"
    return choice, f"auto: bf16 measured {speedup:.2f}x fp32's speed on this CPU"


def _cpu_bf16_speedup(preset: str, resolution: int, batch_size: int) -> float:
    from hcmoco.atomic import atomic_write_text
    from hcmoco.models import HRNet, HRNetConfig

    key = {"preset": preset, "resolution": resolution, "batch": batch_size, "threads": torch.get_num_threads(),
           "torch": torch.__version__, "cpu": _cpu_identity()}
    path = PRECISION_CACHE / (hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16] + ".json")
    if path.is_file():
        return float(json.loads(path.read_text())["speedup"])
    rng_state = torch.get_rng_state()  # measuring must not move the run's random numbers
    net = HRNet(HRNetConfig.preset(preset)).to(memory_format=torch.channels_last)
    x = torch.randn(batch_size, 3, resolution, resolution, generator=torch.Generator().manual_seed(0))

    def step_time(bf16: bool) -> float:
        start = time.perf_counter()
        with autocast("bf16" if bf16 else "fp32", torch.device("cpu")):
            loss = sum(f.float().mean() for f in net(x))
        loss.backward()
        return time.perf_counter() - start

    # alternated, and the fastest of each: in a workflow other jobs share the cores, and a burst of
    # them would otherwise land on one precision only (the median of 4 back-to-back fp32 steps then 4
    # bf16 steps measured 1.25x in a busy DAG and 1.43x on a quiet machine); the least disturbed
    # step is the best estimate of each kernel's cost
    times: dict[bool, list[float]] = {False: [], True: []}
    for i in range(10):  # the first round warms up the kernels
        for bf16 in (False, True) if i % 2 == 0 else (True, False):
            elapsed = step_time(bf16)
            if i >= 1:
                times[bf16].append(elapsed)
    speedup = min(times[False]) / min(times[True])
    torch.set_rng_state(rng_state)
    atomic_write_text(path, json.dumps({**key, "speedup": speedup}, indent=1))
    return speedup


def _cpu_identity() -> str:
    """The CPU model and its instruction-set flags (Linux), else the platform's processor name."""
    try:
        info = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
        fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
        return " ".join(fields.get(k, "").strip() for k in ("model name", "flags"))
    except OSError:
        return platform.processor()


def compute_dtype(precision: str) -> torch.dtype:
    """The dtype of parameters and float inputs: float64 for `fp64`, else float32 (bf16 is
    autocast over float32 parameters)."""
    return torch.float64 if precision == "fp64" else torch.float32


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
