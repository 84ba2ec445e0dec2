"""HRNetV2 backbone with configurable widths: returns the four raw branch feature maps.

Written here rather than taken from timm: timm's HRNet feature mode adds the classification
"incre" blocks (or needs its private config format for a narrow net), while HCMoCo needs the raw
branches at strides 4/8/16/32 of a net whose sizes are parameters. Parameter names follow the
official HRNet code (conv1, layer1, transition1, stage2.0.branches..., fuse_layers...), so the
official ImageNet HRNetV2-W18 weights load into `HRNetConfig.preset("w18")` once their
classification-head keys are dropped (see `checkpoint.HRNET_CLS_HEAD_PREFIXES`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch.nn.functional as F
from torch import Tensor, nn

BN_MOMENTUM = 0.1


@dataclass(frozen=True)
class HRNetConfig:
    """Sizes of an HRNetV2. Defaults are HRNetV2-W18 (the paper's backbone).

    widths: channels of the 4 branches (strides 4, 8, 16, 32).
    stem_width: channels of the two stride-2 3x3 stem convs.
    stage1_planes, stage1_blocks: bottleneck blocks of stage 1 (out = 4 * planes channels).
    modules, blocks: per stage 2..4, the number of multi-resolution modules and the
        number of basic blocks per branch in each module.
    """

    widths: tuple[int, ...] = (18, 36, 72, 144)
    stem_width: int = 64
    stage1_planes: int = 64
    stage1_blocks: int = 4
    modules: tuple[int, ...] = (1, 4, 3)
    blocks: tuple[int, ...] = (4, 4, 4)
    in_channels: int = 3

    def __post_init__(self) -> None:
        if len(self.widths) != 4 or len(self.modules) != 3 or len(self.blocks) != 3:
            raise ValueError(f"HRNetV2 needs 4 widths and 3 stage sizes, got {self}")
        if min(self.widths + self.modules + self.blocks) < 1:
            raise ValueError(f"HRNet sizes must be positive, got {self}")

    @staticmethod
    def preset(name: str) -> "HRNetConfig":
        if name not in HRNET_PRESETS:
            raise ValueError(f"unknown HRNet preset {name!r}; known: {sorted(HRNET_PRESETS)}")
        return HRNET_PRESETS[name]

    @staticmethod
    def from_dict(d: dict) -> "HRNetConfig":
        return HRNetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


HRNET_PRESETS = {
    "w18": HRNetConfig(),
    # Same family at CPU size (~1/40 of W18's parameters): widths / 2.25, one module per stage,
    # one basic block per branch, one bottleneck in stage 1, a 32-channel stem.
    "narrow": HRNetConfig(widths=(8, 16, 32, 64), stem_width=32, stage1_planes=16,
                          stage1_blocks=1, modules=(1, 1, 1), blocks=(1, 1, 1)),
    # Between the two (~1/7 of W18): narrow's layout at twice its widths, two blocks per branch.
    "small": HRNetConfig(widths=(16, 32, 64, 128), stem_width=32, stage1_planes=32,
                         stage1_blocks=1, modules=(1, 1, 1), blocks=(2, 2, 2)),
}


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, momentum=BN_MOMENTUM)


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1, self.bn1 = _conv3x3(cin, planes), _bn(planes)
        self.conv2, self.bn2 = _conv3x3(planes, planes), _bn(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, planes, 1, bias=False), _bn(planes)
        self.conv2, self.bn2 = _conv3x3(planes, planes), _bn(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = _bn(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def _make_layer(block: type, cin: int, planes: int, n: int) -> nn.Sequential:
    out = planes * block.expansion
    down = None
    if cin != out:
        down = nn.Sequential(nn.Conv2d(cin, out, 1, bias=False), _bn(out))
    layers = [block(cin, planes, down)] + [block(out, planes) for _ in range(n - 1)]
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches of basic blocks, then every branch receives the sum of all branches
    resampled to its resolution (upsample: 1x1 conv + bilinear; downsample: strided 3x3 convs)."""

    def __init__(self, widths: tuple[int, ...], blocks: int):
        super().__init__()
        n = len(widths)
        self.branches = nn.ModuleList(_make_layer(BasicBlock, w, w, blocks) for w in widths)
        self.fuse_layers = nn.ModuleList()
        for i in range(n):
            row = nn.ModuleList()
            for j in range(n):
                if j > i:
                    row.append(nn.Sequential(nn.Conv2d(widths[j], widths[i], 1, bias=False),
                                             _bn(widths[i])))
                elif j == i:
                    row.append(None)
                else:
                    steps = []
                    for k in range(i - j):
                        last = k == i - j - 1
                        cout = widths[i] if last else widths[j]
                        step = [_conv3x3(widths[j], cout, 2), _bn(cout)]
                        if not last:
                            step.append(nn.ReLU(inplace=True))
                        steps.append(nn.Sequential(*step))
                    row.append(nn.Sequential(*steps))
            self.fuse_layers.append(row)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        out = []
        for i, row in enumerate(self.fuse_layers):
            y = xs[i]
            for j, layer in enumerate(row):
                if j > i:
                    up = layer(xs[j])
                    y = y + F.interpolate(up, size=xs[i].shape[-2:], mode="bilinear",
                                          align_corners=False)
                elif j < i:
                    y = y + layer(xs[j])
            out.append(self.relu(y))
        return out


def _transition(cin: list[int], cout: tuple[int, ...]) -> nn.ModuleList:
    """Adapt existing branches (3x3 conv if the width changes) and add one new branch at half
    resolution from the lowest-resolution existing branch."""
    layers = nn.ModuleList()
    for i, c in enumerate(cout):
        if i < len(cin):
            layers.append(None if cin[i] == c else nn.Sequential(
                _conv3x3(cin[i], c), _bn(c), nn.ReLU(inplace=True)))
        else:
            layers.append(nn.Sequential(nn.Sequential(
                _conv3x3(cin[-1], c, 2), _bn(c), nn.ReLU(inplace=True))))
    return layers


class HRNet(nn.Module):
    """HRNetV2 backbone. forward(x: (B, C, H, W)) -> 4 maps (B, widths[k], H/2^(k+2), W/2^(k+2))."""

    def __init__(self, config: HRNetConfig | str = "w18"):
        super().__init__()
        cfg = HRNetConfig.preset(config) if isinstance(config, str) else config
        self.config = cfg
        w = cfg.stem_width
        self.conv1, self.bn1 = _conv3x3(cfg.in_channels, w, 2), _bn(w)
        self.conv2, self.bn2 = _conv3x3(w, w, 2), _bn(w)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = _make_layer(Bottleneck, w, cfg.stage1_planes, cfg.stage1_blocks)
        prev = [cfg.stage1_planes * Bottleneck.expansion]
        for s in range(3):  # stages 2..4 with 2..4 branches
            widths = cfg.widths[: s + 2]
            setattr(self, f"transition{s + 1}", _transition(prev, widths))
            setattr(self, f"stage{s + 2}", nn.Sequential(
                *[HighResolutionModule(widths, cfg.blocks[s]) for _ in range(cfg.modules[s])]))
            prev = list(widths)
        self._init_weights()

    @property
    def out_channels(self) -> tuple[int, ...]:
        return self.config.widths

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        xs = [self.layer1(x)]
        for s in range(3):
            trans = getattr(self, f"transition{s + 1}")
            new = []
            for i, layer in enumerate(trans):
                src = xs[min(i, len(xs) - 1)]
                new.append(src if layer is None else layer(src))
            xs = new
            for module in getattr(self, f"stage{s + 2}"):
                xs = module(xs)
        return xs


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
