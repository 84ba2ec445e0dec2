"""Export and strict loading of backbone weights (only the backbone goes to fine-tuning).

A backbone file holds {"format", "modality", "config", "state_dict"}: plain containers and
tensors, so it loads with torch.load(weights_only=True). Loading checks the keys and shapes
*before* copying anything, because nn.Module.load_state_dict copies the matching tensors first
and raises afterwards, leaving a half-loaded model behind.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from .hrnet import HRNet, HRNetConfig

FORMAT = "hcmoco-backbone-v1"
# Keys of the official HRNet ImageNet classifier that are not part of the backbone.
HRNET_CLS_HEAD_PREFIXES = ("incre_modules.", "downsamp_modules.", "final_layer.", "classifier.")


class CheckpointMismatchError(RuntimeError):
    """A state dict does not match the model exactly."""


def backbone_state_dict(model: nn.Module, modality: str) -> dict[str, Tensor]:
    """CPU copy of the RGB or depth backbone's state dict of an HCMoCo model."""
    return {k: v.detach().cpu().clone() for k, v in model.backbone(modality).state_dict().items()}


def save_backbone(path: str | Path, model: nn.Module, modality: str) -> None:
    """Write the RGB or depth backbone of an HCMoCo model (write_backbone)."""
    write_backbone(path, model.backbone(modality), modality)


def write_backbone(path: str | Path, net: nn.Module, modality: str) -> None:
    """One HRNet as a backbone file (with its config), atomically: temp file, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "modality": modality, "config": net.config.to_dict(),
               "state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_backbone(path: str | Path) -> tuple[dict[str, Tensor], HRNetConfig, str]:
    """(state_dict, config, modality) of a file written by save_backbone."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointMismatchError(f"{path}: not an {FORMAT} file")
    return payload["state_dict"], HRNetConfig.from_dict(payload["config"]), payload["modality"]


def load_backbone(model: nn.Module, state_dict: Mapping[str, Tensor],
                  drop_prefixes: Sequence[str] = ()) -> None:
    """Load `state_dict` into `model` exactly, or raise CheckpointMismatchError listing every
    missing key, unexpected key and shape mismatch (the model is then left untouched).

    drop_prefixes: keys starting with these are removed first, explicitly (e.g.
    HRNET_CLS_HEAD_PREFIXES for the official ImageNet classifier checkpoints).
    """
    sd = {k: v for k, v in state_dict.items() if not k.startswith(tuple(drop_prefixes))}
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shapes = sorted(f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in set(sd) & set(own) if sd[k].shape != own[k].shape)
    if missing or unexpected or shapes:
        lines = [f"backbone state dict does not match {type(model).__name__}:"]
        for name, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                           ("shape mismatches", shapes)):
            if keys:
                lines.append(f"  {len(keys)} {name}: " + ", ".join(keys))
        raise CheckpointMismatchError("\n".join(lines))
    model.load_state_dict(sd, strict=True)


def build_backbone_from_file(path: str | Path, modality: str | None = None) -> HRNet:
    """A fresh HRNet with the config stored in `path`, loaded strictly."""
    sd, cfg, stored = read_backbone(path)
    if modality is not None and stored != modality:
        raise CheckpointMismatchError(f"{path}: holds the {stored} backbone, {modality} wanted")
    net = HRNet(cfg)
    load_backbone(net, sd)
    return net
