"""Periodic training checkpoints outside the job's declared outputs, and resuming from them.

A checkpoint lives in `checkpoints/<output path>/<computation key>/last.pt`, and a run resumes
only from a checkpoint of the same computation. The key digests
- the resolved configuration (a parameter change never continues a stale run),
- the content of every input (`input_digest`: processed data through their indexes, which
  carry the digest of every shard; split files; initial weights), so re-rendered data or a new
  init never continue a run started on the old ones, whatever their paths,
- the code version: the source of every package module the command imports (its static import
  closure) and the torch version, so an edited loss or model never continues either.
Files are written atomically and loaded with `torch.load(weights_only=True)`.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import torch

from hcmoco.codegraph import code_digest
from hcmoco.models.checkpoint import load_weights, save_weights

CHECKPOINT_ROOT = Path("checkpoints")


def file_digest(path: str | Path | None) -> str | None:
    """sha256 (16 hex digits) of a file's bytes; None for no file."""
    if path is None:
        return None
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def input_digest(path: str | Path | None) -> str | None:
    """A file's digest, or a folder's: the digests of the JSON files under it (processed
    indexes, which list their shards' digests, and split files), with their relative paths."""
    if path is None:
        return None
    path = Path(path)
    if path.is_file():
        return file_digest(path)
    parts = [f"{f.relative_to(path)}:{file_digest(f)}" for f in sorted(path.rglob("*.json"))
             if ".tmp-" not in f.name]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def checkpoint_dir(output: str | Path, config: dict, inputs: dict[str, str | Path | None], code: str) -> Path:
    """The checkpoint folder of the computation writing `output`: `config` (JSON-able values),
    the content digest of each of `inputs` ({role: file or folder}) and the code version of
    the command module `code` (its import closure, hcmoco/codegraph.py) and of torch."""
    key = {"config": config, "inputs": {k: input_digest(v) for k, v in sorted(inputs.items())},
           "code": f"{code_digest(code)}/torch-{torch.__version__}"}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
    output = Path(output)
    rel = output.relative_to(output.anchor) if output.is_absolute() else output
    return CHECKPOINT_ROOT / rel / digest


def save_checkpoint(directory: Path, state: dict) -> None:
    save_weights(directory / "last.pt", state)  # atomic; a full disk is one line naming the file


def load_checkpoint(directory: Path) -> dict | None:
    path = directory / "last.pt"
    if not path.is_file():
        return None
    return load_weights(path, "training checkpoint (delete it to start the run over)")


def clear_checkpoints(directory: Path) -> None:
    """Called once the run's outputs are complete: the checkpoint has served its purpose. Empty
    parent folders up to `checkpoints/` go too (a grid's cells stage under `checkpoints/` and
    checkpoint under `checkpoints/checkpoints/`: the inner one goes as well)."""
    shutil.rmtree(directory, ignore_errors=True)
    root = CHECKPOINT_ROOT.resolve()
    for parent in Path(directory).resolve().parents:
        if root not in parent.parents or not parent.is_dir() or any(parent.iterdir()):
            break
        parent.rmdir()
