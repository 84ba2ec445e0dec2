"""Cross-modal retrieval with the pre-trained global embeddings: does the shared space align?

    python -m hcmoco.eval.retrieval --profile default --model models/default/pretrain/hcmoco \
        --data data/default/synth/synth_ntu --out results/default/pretrain/hcmoco/retrieval.json
    python -m hcmoco.eval.retrieval --profile default --model scratch ...   (random weights)

For every held-out paired sample (the test split of the paired source: people never seen in
pre-training) the query embedding of one modality ranks all gallery embeddings of another;
top-1 is the fraction whose own pair ranks first (chance: 1 / #samples).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from hcmoco.cli_common import base_parser, run_cli
from hcmoco.data.shards import atomic_write_text
from hcmoco.runlog import RunLog, available_workers, log_path_for
from hcmoco.train.pretrain import build_model
from hcmoco.train.pretrain_data import PretrainingData

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


def top1(query: torch.Tensor, gallery: torch.Tensor) -> float:
    """Fraction of queries i whose most similar gallery item is i."""
    best = (query @ gallery.T).argmax(dim=1)
    return float((best == torch.arange(len(query))).float().mean())


def evaluate(model_dir: str, cfg: dict, data_dir: Path) -> dict:
    data = PretrainingData([data_dir / "test"])
    if not data.splits[0].modalities["depth"]:
        raise ValueError(f"{data_dir}: retrieval needs a paired source with depth")
    torch.manual_seed(cfg["seed"])
    model = build_model(cfg, data.num_joints)
    if model_dir != "scratch":
        state = torch.load(Path(model_dir) / "model.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
    emb = embed(model, data)
    result = {f"{a}->{b}": top1(emb[a], emb[b]) for a, b in PAIRS}
    return {"model": model_dir, "samples": len(data), "chance": 1.0 / len(data), "top1": result}


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="pre-training output directory, or 'scratch'")
    parser.add_argument("--data", required=True, help="processed paired source (uses its test split)")
    parser.add_argument("--out", required=True, help="output JSON")

    def body(args, params):
        torch.set_num_threads(available_workers())
        log = RunLog(log_path_for(args.out), params)
        result = evaluate(args.model, params["pretrain"], Path(args.data))
        atomic_write_text(args.out, json.dumps(result, indent=1))
        log.event("done", **result)
        print(f"{args.model}: " + ", ".join(f"{k} {v:.3f}" for k, v in result["top1"].items()))

    return run_cli(parser, body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
