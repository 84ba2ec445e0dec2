"""Versatility experiments (docs/METHOD.md 5) on a parsing task whose samples hold RGB, depth and labels.

    python -m hcmoco.train.versatility --profile default --experiment crossmodal \\
        --pretrained models/default/pretrain --data data/default/synth/synth_parsing4k \\
        --splits data/default/splits/depth_parsing --out results/default/versatility/crossmodal

Both read the pre-trained model's dense embedding space (`model.pt`: encoder + dense head per
modality, L2-normalised D-dim features at 1/4 resolution) and put a 1x1-conv classifier on it.
- `crossmodal` (cross-modality supervision): encoders and dense heads frozen, the classifier is
  trained with labels on one modality and tested on the other through the shared space, both
  ways (rgb->depth, depth->rgb), beside the same-modality result.
- `missing` (missing-modality inference): RGB-D parsing with fusion = element-wise max of the two
  normalised dense maps, trained end to end; tested with RGB-D, RGB only and depth only.
For scratch (random weights) and each of `versatility.inits` (`<pretrained>/<init>/model.pt`),
per seed: `versatility.fraction` of the task's training split, `versatility.steps` steps, the
state with the best validation mIoU in the training condition (labels of the source modality;
RGB-D) is tested. Writes `<out>/init~I/seed~S/metrics.json`; finished runs survive a kill
(staged under checkpoints/), the output directory appears complete at the end (the grid's cell
runner, hcmoco.train.grid.run_plan). The task is the registry's VERSATILITY (hcmoco.tasks).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hcmoco import tasks
from hcmoco.atomic import atomic_write_text
from hcmoco.cli_common import base_parser, run_cli
from hcmoco.processed.keypoints import COMMON_JOINTS
from hcmoco.processed.shards import ProcessedSplit
from hcmoco.processed.splits import fraction_file
from hcmoco.processed.transforms import normalise_depth, normalise_rgb
from hcmoco.errors import HcmocoError
from hcmoco.eval import SegmentationMeter
from hcmoco.models import MODEL_FILE, build_model, load_pretrained
from hcmoco.runlog import RunLog, git_revision, log_path_for
from hcmoco.tasks import enet_class_weights, label_counts, segmentation_loss
from hcmoco.tasks.parsing import NUM_CLASSES
from hcmoco.train.finetune import draw, fit, split_indices
from hcmoco.train.grid import Cell, run_plan
from hcmoco.train.resume import checkpoint_dir
from hcmoco.train.runtime import cosine_schedule, seed_everything, select_device

EXPERIMENTS = ("crossmodal", "missing")
FIELDS = ("rgb", "depth", "parsing")


class DenseParser(nn.Module):
    """Both image encoders + dense heads of a pre-trained HCMoCo, and a 1x1-conv classifier."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.encoders = nn.ModuleDict({"rgb": model.rgb_encoder, "depth": model.depth_encoder})
        self.dense = nn.ModuleDict({"rgb": model.rgb_dense, "depth": model.depth_dense})
        self.classifier = nn.Conv2d(model.rgb_dense.proj.out_channels, NUM_CLASSES, 1)

    def embed(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        return self.dense[modality](self.encoders[modality](x))

    def classify(self, feats: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(self.classifier(feats), size=size, mode="bilinear", align_corners=False)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits from one modality, or from the element-wise max of both (fusion)."""
        feats = [self.embed(m, x) for m, x in inputs.items()]
        fused = feats[0] if len(feats) == 1 else torch.maximum(feats[0], feats[1])
        return self.classify(fused, tuple(next(iter(inputs.values())).shape[-2:]))


def load_parser(params: dict, model_dir: str) -> DenseParser:
    """Scratch (random weights of the params' model) or the pre-training output `model_dir`."""
    if model_dir == "scratch":
        return DenseParser(build_model(params["pretrain"], len(COMMON_JOINTS)))
    return DenseParser(load_pretrained(model_dir, len(COMMON_JOINTS), params["pretrain"]))


def read(split: ProcessedSplit, indices: np.ndarray) -> dict[str, torch.Tensor]:
    arrays = split.take(indices, FIELDS)
    return {"rgb": normalise_rgb(arrays["rgb"]), "depth": normalise_depth(arrays["depth"]),
            "parsing": torch.from_numpy(arrays["parsing"].astype(np.int64))}


def miou(net: DenseParser, split: ProcessedSplit, indices: np.ndarray, modalities: Sequence[str],
         convention: str, batch_size: int = 64, cache: dict | None = None) -> float:
    """Test mIoU (`finetune.miou` convention) with the given input modalities; `cache` holds
    frozen embeddings per modality."""
    net.eval()
    meter = SegmentationMeter(NUM_CLASSES, convention=convention)
    with torch.no_grad():
        for lo in range(0, len(indices), batch_size):
            batch = read(split, indices[lo:lo + batch_size])
            if cache is not None:
                (m,) = modalities
                logits = net.classify(cache[m][lo:lo + batch_size], tuple(batch["parsing"].shape[-2:]))
            else:
                logits = net({m: batch[m] for m in modalities})
            meter.update(logits.argmax(1), batch["parsing"])
    return float(meter.compute()["miou"])


def embeddings(net: DenseParser, split: ProcessedSplit, indices: np.ndarray, batch_size: int = 64) -> dict:
    net.eval()
    out = {"rgb": [], "depth": []}
    with torch.no_grad():
        for lo in range(0, len(indices), batch_size):
            batch = read(split, indices[lo:lo + batch_size])
            for m in out:
                out[m].append(net.embed(m, batch[m]))
    return {m: torch.cat(v) for m, v in out.items()}


def frozen_embeddings(net: DenseParser, split: ProcessedSplit, pool: np.ndarray, val: np.ndarray) -> dict:
    """{"train", "val"}: both modalities' dense maps of the frozen encoders, computed once."""
    return {"train": embeddings(net, split, pool), "val": embeddings(net, split, val)}


def train(net: DenseParser, split: ProcessedSplit, pool: np.ndarray, val: np.ndarray, modalities: Sequence[str],
          cfg: dict, seed: int, weights: torch.Tensor | None, cache: dict | None = None) -> tuple[float, int]:
    """Train end to end, or the classifier only on the frozen embeddings `cache`
    (frozen_embeddings), with fine-tuning's loop (hcmoco.train.finetune.fit); keep the best
    validation state; (val mIoU, step)."""
    frozen = cache is not None
    params = list(net.classifier.parameters()) if frozen else list(net.parameters())
    net.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    lrs = cosine_schedule(cfg["lr"], cfg["lr_min"], cfg["steps"])

    def loss_at(step: int) -> torch.Tensor:
        rows = draw(np.arange(len(pool)), seed, step, cfg["batch_size"])
        if frozen:
            labels = read(split, pool[rows])["parsing"]
            (m,) = modalities
            logits = net.classify(cache["train"][m][torch.from_numpy(rows)], tuple(labels.shape[-2:]))
        else:
            batch = read(split, pool[rows])
            labels, logits = batch["parsing"], net({m: batch[m] for m in modalities})
        return segmentation_loss(logits, labels, weights)

    def validate() -> dict:
        return {"val": miou(net, split, val, modalities, cfg["miou"], cache=cache["val"] if frozen else None)}

    best = fit(net, opt, lrs, loss_at, validate, eval_every=cfg["eval_every"],
               train_mode=lambda: net.train(not frozen)).best
    return best["val"], best["step"]


def run_seed(params: dict, experiment: str, init: str, model: str, data: Path, splits: Path, seed: int) -> dict:
    started = time.perf_counter()
    vs, ft = params["versatility"], params["finetune"]
    task = tasks.VERSATILITY.name
    cfg = {**vs, "weight_decay": ft["weight_decay"], "lr_min": ft["lr_min"], "miou": ft["miou"]}
    select_device(ft["device"])  # the experiments run on CPU tensors; a bad device string still fails
    seed_everything(seed)
    train_split, test_split = ProcessedSplit(data / "train"), ProcessedSplit(data / "test")
    for split in (train_split, test_split):
        if missing := [f for f in FIELDS if f not in split.fields]:
            raise HcmocoError(f"{split.path / 'index.json'}: versatility needs field(s) {', '.join(missing)}")
    pool = split_indices(fraction_file(splits, vs["fraction"], seed), task, train_split)
    val = split_indices(splits / "val.json", task, train_split)
    test = split_indices(splits / "test.json", task, test_split)
    weights = None
    if ft["tasks"][task].get("class_weights") == "enet":
        weights = enet_class_weights(label_counts(train_split.take(pool, ["parsing"])["parsing"], NUM_CLASSES))
    results, selection = {}, {}
    if experiment == "crossmodal":
        cache = test_cache = None  # the frozen encoders are the same for both directions
        for source, target in (("rgb", "depth"), ("depth", "rgb")):
            seed_everything(seed)
            net = load_parser(params, model)
            if cache is None:
                cache, test_cache = frozen_embeddings(net, train_split, pool, val), embeddings(net, test_split, test)
            selection[source] = train(net, train_split, pool, val, [source], cfg, seed, weights, cache)
            for m in (source, target):
                results[f"{source}->{m}"] = miou(net, test_split, test, [m], cfg["miou"], cache=test_cache)
    else:
        net = load_parser(params, model)
        selection["rgbd"] = train(net, train_split, pool, val, ["rgb", "depth"], cfg, seed, weights)
        for name, modalities in (("rgbd", ["rgb", "depth"]), ("rgb", ["rgb"]), ("depth", ["depth"])):
            results[f"rgbd->{name}"] = miou(net, test_split, test, modalities, cfg["miou"])
    return {"experiment": experiment, "task": task, "metric": tasks.VERSATILITY.metric, "init": init, "seed": seed,
            "fraction": vs["fraction"], "results": results,
            "selection": {k: {"val": v, "step": s} for k, (v, s) in selection.items()},
            "train_size": len(pool), "val_size": len(val), "test_size": len(test), "steps": vs["steps"],
            "seconds": round(time.perf_counter() - started, 2), "git": git_revision()}


def run(params: dict, experiment: str, pretrained: Path, data: Path, splits: Path, out: Path,
        log: RunLog | None = None) -> None:
    torch.set_num_threads(params["finetune"]["threads"])
    cells = []
    for init in ["scratch", *params["versatility"]["inits"]]:
        model = "scratch" if init == "scratch" else str(pretrained / init)
        weights = None if init == "scratch" else pretrained / init / MODEL_FILE
        if weights is not None and not weights.is_file():
            raise HcmocoError(f"{weights}: pre-trained model not found (versatility.inits names {init!r})")
        staging = checkpoint_dir(out / f"init~{init}", {
            "versatility": params["versatility"], "finetune": params["finetune"], "pretrain": params["pretrain"],
            "experiment": experiment, "init": init}, {"data": data, "splits": splits, "model": weights}, "hcmoco.train.versatility")
        cells += [Cell(f"init~{init}/seed~{seed}", staging / f"seed~{seed}" / "metrics.json", staging,
                       {"init": init, "model": model, "seed": seed}) for seed in params["versatility"]["seeds"]]

    def compute(c: Cell) -> dict:
        metrics = run_seed(params, experiment, c.keys["init"], c.keys["model"], data, splits, c.keys["seed"])
        atomic_write_text(c.target, json.dumps(metrics, indent=1))
        return metrics

    def report(c: Cell, metrics: dict) -> None:
        print(f"{experiment} init~{c.keys['init']} seed~{c.keys['seed']}: " +
              ", ".join(f"{k} {v:.3f}" for k, v in metrics["results"].items()), flush=True)
        if log:
            log.event("run", init=c.keys["init"], seed=c.keys["seed"], results=metrics["results"],
                      seconds=metrics["seconds"])

    run_plan(cells, compute, out, experiment, log, report)


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--experiment", required=True, choices=EXPERIMENTS)
    parser.add_argument("--pretrained", required=True, help="folder of the pre-training outputs (versatility.inits)")
    parser.add_argument("--data", required=True, help="processed domain directory with rgb, depth and parsing")
    parser.add_argument("--splits", required=True, help="the versatility task's split directory")
    parser.add_argument("--out", required=True, help="output directory")

    def body(args, params):
        out = Path(args.out)
        log = RunLog(log_path_for(out), params, experiment=args.experiment)
        run(params, args.experiment, Path(args.pretrained), Path(args.data), Path(args.splits), out, log)
        log.event("done")

    return run_cli(parser, body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
