"""Export and strict loading of backbone weights (only the backbone goes to fine-tuning).

A backbone file holds {"format", "modality", "config", "state_dict"}: plain containers and
tensors, so it loads with torch.load(weights_only=True). Loading checks the keys and shapes
*before* copying anything, because nn.Module.load_state_dict copies the matching tensors first
and raises afterwards, leaving a half-loaded model behind.

Every file a user hands in (backbone files, a pre-training output's model.pt, ImageNet weights)
is read through `load_weights`: a missing, empty, truncated or foreign file is one
CheckpointFileError naming it.
"""
from __future__ import annotations

import io
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from hcmoco.atomic import atomic_write_bytes, no_space_names
from hcmoco.errors import HcmocoError

from .hrnet import HRNetConfig

FORMAT = "hcmoco-backbone-v1"
# Keys of the official HRNet ImageNet classifier that are not part of the backbone.
HRNET_CLS_HEAD_PREFIXES = ("incre_modules.", "downsamp_modules.", "final_layer.", "classifier.")


SHOWN = 3  # keys named per kind of mismatch in a one-line error


class CheckpointMismatchError(RuntimeError):
    """A state dict does not match the model exactly."""


class CheckpointFileError(HcmocoError):
    """A weights file is missing, empty, unreadable or does not hold what it should."""


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0][:200]}" if lines else type(err).__name__


def _a(what: str) -> str:
    return f"{'an' if what[:1].lower() in 'aeiou' else 'a'} {what}"


def load_weights(path: str | Path, what: str) -> Any:
    """torch.load(weights_only=True) of a user-supplied file; every failure is one
    CheckpointFileError naming the file (`what` says what it should have been)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointFileError(f"{path}: {what} not found")
    if path.stat().st_size == 0:
        raise CheckpointFileError(f"{path}: empty file, not {_a(what)} (an interrupted write or copy?)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # PyTorch's message advises weights_only=False, i.e. running the file's code: never
        raise CheckpointFileError(f"{path}: not {_a(what)}: it holds Python objects other than tensors and "
                                  f"plain containers, which are not unpickled (weights only)") from None
    except Exception as err:  # corrupt bytes surface as RuntimeError, EOFError, KeyError, ...
        raise CheckpointFileError(f"{path}: not a readable {what} ({_first_line(err)})") from None


def save_weights(path: str | Path, payload: Any) -> None:
    """torch.save `payload` to `path` atomically; a full disk is one HcmocoError naming `path`,
    with no temporary file left. Serialised in memory first: torch.save straight into a file
    reports a full disk as an opaque RuntimeError of its zip writer."""
    with no_space_names(path):
        buf = io.BytesIO()
        torch.save(payload, buf)
        atomic_write_bytes(path, buf.getbuffer())


def _is_state_dict(value: Any) -> bool:
    return isinstance(value, Mapping) and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in value.items())


def _mismatches(own: Mapping[str, Tensor], sd: Mapping[str, Tensor]) -> tuple[list[str], list[str], list[str]]:
    """(missing keys, unexpected keys, "key: checkpoint (..) vs model (..)" shape mismatches)."""
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shapes = sorted(f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in set(sd) & set(own) if sd[k].shape != own[k].shape)
    return missing, unexpected, shapes


def _listing(keys: Sequence[str]) -> str:
    more = f", ... ({len(keys)} in all)" if len(keys) > SHOWN else ""
    return ", ".join(keys[:SHOWN]) + more


def load_state_exact(module: nn.Module, state: Mapping[str, Tensor], path: str | Path, part: str = "model") -> None:
    """module.load_state_dict(state) exactly, or one CheckpointFileError naming `path` and the
    first mismatching keys of `part` (nothing is copied then)."""
    missing, unexpected, shapes = _mismatches(module.state_dict(), state)
    if missing or unexpected or shapes:
        found = "; ".join(f"{len(keys)} {name}: {_listing(keys)}" for name, keys in (
            ("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)) if keys)
        raise CheckpointFileError(f"{path}: {part} does not match this {type(module).__name__} "
                                  f"(other params or code than it was written with?): {found}")
    module.load_state_dict(state, strict=True)


def load_model_file(path: str | Path) -> dict:
    """The {"model", "bank", ...} dict of a pre-training output's model.pt, its state dicts
    checked to hold tensors (one CheckpointFileError naming the file otherwise); an absent
    bank reads as {}."""
    payload = load_weights(path, "pre-training model file")
    if not isinstance(payload, dict):
        raise CheckpointFileError(f"{path}: not a pre-training model file (holds a {type(payload).__name__}, "
                                  f"not a dict)")
    if not _is_state_dict(payload.get("model")):
        raise CheckpointFileError(f"{path}: model: missing or not a state dict of tensors "
                                  f"(not a pre-training model file)")
    if not _is_state_dict(payload.setdefault("bank", {})):  # {}: trained without a memory bank
        raise CheckpointFileError(f"{path}: bank: not a state dict of tensors")
    return payload


def backbone_state_dict(model: nn.Module, modality: str) -> dict[str, Tensor]:
    """CPU copy of the RGB or depth backbone's state dict of an HCMoCo model."""
    return {k: v.detach().cpu().clone() for k, v in model.backbone(modality).state_dict().items()}


def save_backbone(path: str | Path, model: nn.Module, modality: str) -> None:
    """Write the RGB or depth backbone of an HCMoCo model (write_backbone)."""
    write_backbone(path, model.backbone(modality), modality)


def write_backbone(path: str | Path, net: nn.Module, modality: str) -> None:
    """One HRNet as a backbone file (with its config), atomically: temp file, then rename."""
    payload = {"format": FORMAT, "modality": modality, "config": net.config.to_dict(),
               "state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}}
    save_weights(path, payload)


def read_backbone(path: str | Path) -> tuple[dict[str, Tensor], HRNetConfig, str]:
    """(state_dict, config, modality) of a file written by save_backbone; anything else is one
    CheckpointFileError naming the file."""
    payload = load_weights(path, "backbone file")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        held = f"format {payload.get('format')!r}" if isinstance(payload, dict) else f"a {type(payload).__name__}"
        raise CheckpointFileError(f"{path}: not an {FORMAT} file (holds {held})")
    if not _is_state_dict(payload.get("state_dict")):
        raise CheckpointFileError(f"{path}: state_dict: missing or not a state dict of tensors")
    if not isinstance(payload.get("modality"), str):
        raise CheckpointFileError(f"{path}: modality: missing or not a string")
    try:
        config = HRNetConfig.from_dict(payload["config"])
    except (KeyError, TypeError, AttributeError, ValueError) as err:
        raise CheckpointFileError(f"{path}: config: not an HRNet config ({_first_line(err)})") from None
    return payload["state_dict"], config, payload["modality"]


def load_backbone(model: nn.Module, state_dict: Mapping[str, Tensor],
                  drop_prefixes: Sequence[str] = ()) -> None:
    """Load `state_dict` into `model` exactly, or raise CheckpointMismatchError listing every
    missing key, unexpected key and shape mismatch (the model is then left untouched).

    drop_prefixes: keys starting with these are removed first, explicitly (e.g.
    HRNET_CLS_HEAD_PREFIXES for the official ImageNet classifier checkpoints).
    """
    sd = {k: v for k, v in state_dict.items() if not k.startswith(tuple(drop_prefixes))}
    missing, unexpected, shapes = _mismatches(model.state_dict(), sd)
    if missing or unexpected or shapes:
        lines = [f"backbone state dict does not match {type(model).__name__}:"]
        for name, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                           ("shape mismatches", shapes)):
            if keys:
                lines.append(f"  {len(keys)} {name}: " + ", ".join(keys))
        raise CheckpointMismatchError("\n".join(lines))
    model.load_state_dict(sd, strict=True)


