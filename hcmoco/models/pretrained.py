"""The HCMoCo model of pre-training and its output folder (`model.pt`).

`build_model` makes the two encoders, heads and keypoint branch of a `pretrain` params section;
`load_pretrained` reads a pre-training output folder: the model is built from the config stored
in its `model.pt` (the one it was trained with) and loaded exactly, or loaded into a given model
(and its memory bank), which must then match the file. Any mismatch is one error naming the file.
"""
from __future__ import annotations

from pathlib import Path

from torch import nn

from hcmoco.processed.keypoints import COMMON_EDGES

from .checkpoint import CheckpointFileError, load_model_file, load_state_exact
from .hcmoco import HCMoCo
from .hrnet import HRNetConfig

MODEL_FILE = "model.pt"


def build_model(cfg: dict, num_joints: int, cls: type[HCMoCo] = HCMoCo) -> HCMoCo:
    """A freshly initialised HCMoCo (or subclass `cls`, e.g. the sharded one of distributed
    training: same parameters) of the `pretrain` section `cfg`."""
    return cls(HRNetConfig.preset(cfg["backbone"]), num_joints, COMMON_EDGES, embed_dim=cfg["embed_dim"])


def load_pretrained(model_dir: str | Path, num_joints: int, cfg: dict | None = None, *,
                    model: HCMoCo | None = None, bank: nn.Module | None = None) -> HCMoCo:
    """The model of the pre-training output `model_dir`, loaded exactly from its model.pt.

    Without `model`: built from the file's stored config (`cfg`, the params' pretrain section,
    stands in for a file written without one). With `model`: its weights are replaced; `bank`
    (a memory bank) receives the file's bank. A missing or unusable file or a mismatch: one
    CheckpointFileError naming the file."""
    path = Path(model_dir) / MODEL_FILE
    payload = load_model_file(path)
    if model is None:
        stored = payload.get("config", cfg)
        if not isinstance(stored, dict) or not {"backbone", "embed_dim"} <= set(stored):
            raise CheckpointFileError(f"{path}: config: missing or without backbone / embed_dim")
        model = build_model(stored, num_joints)
    load_state_exact(model, payload["model"], path)
    if bank is not None:
        load_state_exact(bank, payload["bank"], path, "bank")
    return model
