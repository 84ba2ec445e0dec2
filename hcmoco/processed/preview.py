"""A preview sheet of one processed domain: RGB, depth, parsing, IUV and keypoints side by side.

    python -m hcmoco.processed.preview --profile default --data data/default/synth/synth_ntu \
        --out results/default/preview/synth_ntu.png

One row per sample (spread over the test split), one column per modality; a modality the
domain does not carry is drawn as an empty "n/a" panel, so a glance shows what is there.
Keypoints: filled dots are visible joints, hollow ones occluded, with the layout's skeleton.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from hcmoco.cli_common import base_parser, run_cli
from hcmoco.processed.shards import NUM_PARTS, ProcessedSplit
from hcmoco.runlog import RunLog, log_path_for

COLUMNS = ("rgb", "depth", "parsing", "iuv", "keypoints")


def part_palette() -> np.ndarray:
    """25 colours: black background, then 24 distinct part colours."""
    import matplotlib

    colours = [matplotlib.colormaps["tab20"](i)[:3] for i in range(20)]
    colours += [matplotlib.colormaps["Set1"](i)[:3] for i in range(4)]
    return np.array([(0.0, 0.0, 0.0)] + colours, dtype=np.float32)


def depth_image(depth: np.ndarray) -> np.ndarray:
    """Depth to [0,1] over its valid range (0 = no reading stays black)."""
    valid = depth > 0
    out = np.zeros(depth.shape, dtype=np.float32)
    if valid.any():
        lo, hi = np.percentile(depth[valid], [1, 99])
        out[valid] = 1.0 - np.clip((depth[valid] - lo) / max(hi - lo, 1.0), 0, 1) * 0.85
    return out


def iuv_image(iuv: np.ndarray) -> np.ndarray:
    """U in red, V in green, part index in blue."""
    img = np.zeros(iuv.shape, dtype=np.float32)
    img[..., 0] = iuv[..., 1] / 255.0
    img[..., 1] = iuv[..., 2] / 255.0
    img[..., 2] = iuv[..., 0] / float(NUM_PARTS)
    return img


def draw_sheet(split: ProcessedSplit, indices: Sequence[int], out: Path, edges: Sequence[tuple[int, int]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(indices)
    palette = part_palette()
    fig, axes = plt.subplots(rows, len(COLUMNS), figsize=(2.0 * len(COLUMNS), 2.0 * rows), squeeze=False)
    for r, idx in enumerate(indices):
        s = split[int(idx)]
        base = s["rgb"] if s["has_rgb"] else (depth_image(s["depth"]) if s["has_depth"] else None)
        panels = {
            "rgb": (s["rgb"], {}) if s["has_rgb"] else None,
            "depth": (depth_image(s["depth"]), {"cmap": "magma", "vmin": 0, "vmax": 1}) if s["has_depth"] else None,
            "parsing": (palette[s["parsing"]], {"interpolation": "nearest"}) if s["has_parsing"] else None,
            "iuv": (iuv_image(s["iuv"]), {"interpolation": "nearest"}) if s["has_iuv"] else None,
            "keypoints": (base, {"cmap": "gray"}) if s["has_kp2d"] and base is not None else None,
        }
        for c, name in enumerate(COLUMNS):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=9)
            if panels[name] is None:
                ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes, color="0.5")
                continue
            image, style = panels[name]
            ax.imshow(image, **style)
            if name == "keypoints":
                draw_keypoints(ax, s["kp2d"], edges)
        axes[r, 0].set_ylabel(f"#{idx} subj {int(s['subject'])}", fontsize=7)
    fig.suptitle(f"{split.index['domain']} / {split.index['split']}  ({split.index['source']}, "
                 f"{split.index['resolution']} px, layout {split.index['layout']})", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp-{os.getpid()}{out.suffix}")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, out)


def draw_keypoints(ax, kp2d: np.ndarray, edges: Sequence[tuple[int, int]]) -> None:
    """Keypoints (J, 3) = (x, y, visibility 2 / 1 / 0) over an image: filled dots visible, hollow
    occluded, none absent, with the skeleton `edges` (also the qualitative sheets' joints)."""
    # kp2d pixel centres sit at integer + 0.5; imshow puts pixel i's centre at i
    xy = kp2d[:, :2] - 0.5
    vis = kp2d[:, 2]
    for a, b in edges:
        if vis[a] > 0 and vis[b] > 0:
            ax.plot(xy[[a, b], 0], xy[[a, b], 1], color="cyan", linewidth=0.8)
    seen, hidden = vis == 2, vis == 1
    ax.scatter(xy[seen, 0], xy[seen, 1], s=8, c="yellow", edgecolors="black", linewidths=0.3)
    ax.scatter(xy[hidden, 0], xy[hidden, 1], s=8, facecolors="none", edgecolors="red", linewidths=0.6)


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="processed domain directory")
    parser.add_argument("--out", required=True, help="output PNG")
    parser.add_argument("--split", default="test", choices=("train", "test"))

    def body(args, params):
        from hcmoco.processed.keypoints import LAYOUT_EDGES

        log = RunLog(log_path_for(args.out), params)
        split = ProcessedSplit(Path(args.data) / args.split)
        count = min(params["preview"]["samples"], len(split))
        indices = np.linspace(0, len(split) - 1, count).round().astype(int)
        draw_sheet(split, indices, Path(args.out), LAYOUT_EDGES.get(split.index["layout"], []))
        log.event("done", samples=[int(i) for i in indices])

    return run_cli(parser, body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
