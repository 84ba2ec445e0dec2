"""ImageNet initialisation of HRNetV2-W18 (the paper's init of both encoders, docs/METHOD.md 2) from
the official classification checkpoint `hrnetv2_w18_imagenet_pretrained.pth`
(HRNet/HRNet-Image-Classification).

    python -m hcmoco.models.imagenet --weights hrnetv2_w18_imagenet_pretrained.pth \
        --out models/paper/imagenet/rgb_backbone.pt [--modality depth]

The output is a backbone file in the format pre-training exports (checkpoint.save_backbone), so
fine-tuning takes it unchanged: `--init imagenet --backbone-file <out>`. Our HRNet uses the
official parameter names; the classifier's head (incre_modules, downsamp_modules, final_layer,
classifier) is dropped and reported. Loading is strict: every backbone tensor must come from
the file with the model's shape, and no other key may remain; otherwise one error names the
file and the first keys at fault. The one tolerance: BatchNorm `num_batches_tracked` counters
(no learned content) may be absent, as in checkpoints saved before PyTorch 0.4.1; they start at 0.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from hcmoco.errors import HcmocoError

from .checkpoint import HRNET_CLS_HEAD_PREFIXES, load_weights, write_backbone
from .hrnet import HRNet, HRNetConfig

PRESET = "w18"
SHOWN = 3  # keys named in an error


@dataclass(frozen=True)
class ImageNetLoad:
    dropped: list[str]  # classification-head keys of the file, not loaded
    defaulted: list[str]  # num_batches_tracked counters absent from the file


def read_state(path: str | Path) -> dict[str, Tensor]:
    """The file's tensors by name; a {"state_dict": ...} wrapper and a DataParallel `module.`
    prefix are removed."""
    path = Path(path)
    if not path.is_file():
        raise HcmocoError(f"{path}: ImageNet weights not found")
    state = load_weights(path, "ImageNet weights file")
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise HcmocoError(f"{path}: not a state dict of tensors")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def _listing(keys: Sequence[str]) -> str:
    more = f", ... ({len(keys)} in all)" if len(keys) > SHOWN else ""
    return ", ".join(keys[:SHOWN]) + more


def load_imagenet(net: HRNet, path: str | Path) -> ImageNetLoad:
    """Load the official ImageNet classifier's backbone weights into `net`, strictly (the
    model is left untouched on any mismatch). Returns the dropped head keys and the defaulted
    counters."""
    state = read_state(path)
    dropped = sorted(k for k in state if k.startswith(HRNET_CLS_HEAD_PREFIXES))
    backbone = {k: v for k, v in state.items() if not k.startswith(HRNET_CLS_HEAD_PREFIXES)}
    own = net.state_dict()
    missing = sorted(k for k in own if k not in backbone)
    defaulted = [k for k in missing if k.endswith(".num_batches_tracked")]
    missing = [k for k in missing if k not in defaulted]
    unexpected = sorted(k for k in backbone if k not in own)
    shapes = sorted(f"{k} (file {tuple(v.shape)}, model {tuple(own[k].shape)})"
                    for k, v in backbone.items() if k in own and v.shape != own[k].shape)
    faults = [f"{len(keys)} {name}: {_listing(keys)}" for name, keys in
              (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)) if keys]
    if faults:
        raise HcmocoError(f"{path}: not HRNetV2 ImageNet weights for this backbone; " + "; ".join(faults))
    net.load_state_dict({**{k: torch.zeros_like(own[k]) for k in defaulted}, **backbone}, strict=True)
    return ImageNetLoad(dropped, defaulted)


def convert(weights: str | Path, out: str | Path, modality: str = "rgb",
            config: HRNetConfig | str = PRESET) -> ImageNetLoad:
    """Official ImageNet checkpoint -> backbone file for `modality` (depth arrives as 3
    replicated channels, so the same stem applies)."""
    net = HRNet(config)
    report = load_imagenet(net, weights)
    write_backbone(out, net, modality)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="hrnetv2_w18_imagenet_pretrained.pth")
    parser.add_argument("--out", required=True, help="backbone file to write (e.g. rgb_backbone.pt)")
    parser.add_argument("--modality", choices=("rgb", "depth"), default="rgb",
                        help="the encoder the file initialises (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        report = convert(args.weights, args.out, args.modality)
    except HcmocoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    heads = sorted({k.split(".")[0] for k in report.dropped})
    print(f"{args.out}: HRNetV2-{PRESET.upper()} {args.modality} backbone from {args.weights}; "
          f"dropped {len(report.dropped)} classification-head keys ({', '.join(heads) or 'none'})"
          + (f"; {len(report.defaulted)} num_batches_tracked counters absent, set to 0" if report.defaulted else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
