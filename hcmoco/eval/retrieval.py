"""Cross-modal retrieval with the pre-trained global embeddings: does the shared space align?

    python -m hcmoco.eval.retrieval --profile default --pretrained models/default/pretrain \
        --data data/default/synth/synth_ntu --out results/default/pretrain/retrieval.json

Evaluates random weights (`scratch`), `stage1` and every pre-training variant of the params, in
one process; the output maps each model to its result.

For every held-out paired sample (the test split of the paired source: people never seen in
pre-training) the query embedding of one modality ranks all gallery embeddings of another;
top-1 / top-5 are the fractions whose own pair ranks first / in the first five, and the median
rank of the own pair (chance: 1/n, 5/n and (n-1)/2).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from hcmoco.cli_common import base_parser, run_cli
from hcmoco.atomic import atomic_write_text
from hcmoco.errors import HcmocoError
from hcmoco.models.checkpoint import load_model_file, load_state_exact
from hcmoco.runlog import RunLog, log_path_for
from hcmoco.models.pretrained import build_model
from hcmoco.processed.pretrain_data import PretrainingData

PAIRS = (("rgb", "depth"), ("depth", "rgb"), ("rgb", "keypoints"), ("keypoints", "rgb"),
         ("depth", "keypoints"), ("keypoints", "depth"))


@torch.no_grad()
def embed(model, data: PretrainingData, batch_size: int = 64) -> dict[str, torch.Tensor]:
    model.eval()
    chunks = {"rgb": [], "depth": [], "keypoints": []}
    for start in range(0, len(data), batch_size):
        b = data.batch(np.arange(start, min(start + batch_size, len(data))))
        out = model(b["rgb"], b["depth"], b["keypoints"], b["visible"], b["has_depth"])
        for key, name in (("rgb", "g_rgb"), ("depth", "g_depth"), ("keypoints", "g_kp")):
            chunks[key].append(out[name].float())
    return {k: torch.cat(v) for k, v in chunks.items()}


def ranks(query: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
    """Rank (0 = first) of each query's own pair among all gallery items, by cosine similarity."""
    scores = query @ gallery.T
    return (scores > scores.diagonal().unsqueeze(1)).sum(dim=1)


def summarise(r: torch.Tensor) -> dict[str, float]:
    return {"top1": float((r == 0).float().mean()), "top5": float((r < 5).float().mean()),
            "median_rank": float(r.float().median())}


def evaluate(model_dir: str, cfg: dict, data_dir: Path) -> dict:
    data = PretrainingData([data_dir / "test"])
    if not data.splits[0].modalities["depth"]:
        raise ValueError(f"{data_dir}: retrieval needs a paired source with depth")
    torch.manual_seed(cfg["seed"])
    model = build_model(cfg, data.num_joints)
    if model_dir != "scratch":
        path = Path(model_dir) / "model.pt"
        load_state_exact(model, load_model_file(path)["model"], path)
    emb = embed(model, data)
    n = len(data)
    return {"model": model_dir, "samples": n,
            "chance": {"top1": 1.0 / n, "top5": min(5.0 / n, 1.0), "median_rank": (n - 1) / 2},
            "pairs": {f"{a}->{b}": summarise(ranks(emb[a], emb[b])) for a, b in PAIRS}}


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--pretrained", required=True, help="folder of the pre-training outputs")
    parser.add_argument("--data", required=True, help="processed paired source (uses its test split)")
    parser.add_argument("--out", required=True, help="output JSON")

    def body(args, params):
        torch.set_num_threads(params["pretrain"]["threads"])
        log = RunLog(log_path_for(args.out), params)
        results = {}
        for name in ["scratch", "stage1", *params["pretrain"]["variants"]]:
            model = "scratch" if name == "scratch" else str(Path(args.pretrained) / name)
            if model != "scratch" and not (Path(model) / "model.pt").is_file():
                raise HcmocoError(f"{model}/model.pt: pre-training output not found")
            results[name] = evaluate(model, params["pretrain"], Path(args.data))
            log.event("model", name=name, pairs=results[name]["pairs"])
            print(f"{name}: " + ", ".join(f"{k} top1 {v['top1']:.3f} median rank {v['median_rank']:.0f}"
                                          for k, v in results[name]["pairs"].items()))
        atomic_write_text(args.out, json.dumps(results, indent=1))
        log.event("done", models=list(results))

    return run_cli(parser, body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
