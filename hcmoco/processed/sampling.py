"""Batch sampling that resumes exactly: the draws of training step `step` of a run seeded `seed`
come from a generator seeded `step_seed(seed, step)`.

A batch is then a pure function of (seed, step), so a run resumed at any step replays the same
batches without storing sampler state. Every trainer draws its batches this way (pre-training,
fine-tuning, and the detector's proposal sampling).
"""
from __future__ import annotations

import torch

STEP_SEED_STRIDE = 1_000_003  # a prime above any step count: distinct (seed, step) give distinct seeds


def step_seed(seed: int, step: int) -> int:
    """The seed of step `step`'s random draws in a run seeded `seed`."""
    return seed * STEP_SEED_STRIDE + step


def step_generator(seed: int, step: int) -> torch.Generator:
    """A CPU generator seeded `step_seed(seed, step)`."""
    return torch.Generator().manual_seed(step_seed(seed, step))
