"""Periodic training checkpoints outside the job's declared outputs, and resuming from them.

A checkpoint lives in `checkpoints/<output path>/<config digest>/last.pt`: a run resumes only
from a checkpoint of the same output *and* the same resolved configuration, so a parameter
change never continues a stale run. Files are written atomically and loaded with
`torch.load(weights_only=True)`.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import torch

CHECKPOINT_ROOT = Path("checkpoints")


def checkpoint_dir(output: str | Path, config: dict) -> Path:
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]
    output = Path(output)
    rel = output.relative_to(output.anchor) if output.is_absolute() else output
    return CHECKPOINT_ROOT / rel / digest


def save_checkpoint(directory: Path, state: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".last.pt.tmp-{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, directory / "last.pt")


def load_checkpoint(directory: Path) -> dict | None:
    path = directory / "last.pt"
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def clear_checkpoints(directory: Path) -> None:
    """Called once the run's outputs are complete: the checkpoint has served its purpose. Empty
    parent folders up to `checkpoints/` go too."""
    shutil.rmtree(directory, ignore_errors=True)
    for parent in Path(directory).parents:
        if parent.name == CHECKPOINT_ROOT.name or not parent.is_dir() or any(parent.iterdir()):
            break
        parent.rmdir()
