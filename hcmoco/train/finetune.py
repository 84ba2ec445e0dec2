"""Downstream fine-tuning (METHOD.md 5): one task, init, label fraction and seed per run.

    python -m hcmoco.train.finetune --profile default --task parsing --init hcmoco --fraction 0.1 --seed 0 \
        --data data/default/synth/synth_h36m --splits data/default/splits/parsing \
        --backbone-file models/default/pretrain/hcmoco/rgb_backbone.pt \
        --out results/default/finetune/parsing/init~hcmoco/fraction~0.1/seed~0/metrics.json

DensePose on a split of whole images (hcmoco.prepare.densepose_coco_detection) trains DensePose
R-CNN on the backbone instead of the dense head (hcmoco.train.detection).

The backbone is a fresh HRNet of the `pretrain.backbone` preset (`--init scratch`) or the
task's modality backbone of a pre-training output, loaded strictly. A task head is trained for
a fixed step budget on the fraction's samples (`finetune.epochs`, clamped to [min_steps,
max_steps]); the validation split (held-out training subjects) picks the best state every
`eval_every` steps, and only that state is evaluated on the test split. Writes the metrics
JSON (`--out`), dvclive curves (`--curves`, default: `curves/` beside it) and
`predictions.npz` beside the metrics: the selected state's predictions on the first test samples
(hcmoco.train.task_eval.predict; the dense heads only, not DensePose R-CNN), for the report's
qualitative sheets. Checkpoints every `checkpoint_every` steps go to `checkpoints/`, and a
re-run resumes bit-identically.
"""
from __future__ import annotations

import io
import json
import math
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from hcmoco.cli_common import base_parser, run_cli
from hcmoco.config import ParamsError, task_domain
from hcmoco.atomic import atomic_write_bytes, atomic_write_text
from hcmoco.processed.shards import ProcessedSplit
from hcmoco.processed.splits import fraction_file, load_split
from hcmoco.errors import HcmocoError
from hcmoco.models import CheckpointMismatchError, HRNet, HRNetConfig, load_backbone, read_backbone
from hcmoco.runlog import RunLog, git_revision, log_path_for
from hcmoco.tasks import (A2JHead, DensePoseHead, SegmentationHead, a2j_loss, densepose_loss,
                          depth_pixel_ratio, enet_class_weights, segmentation_loss)
from hcmoco.train.curves import write_curves
from hcmoco.train.detection import build_detector, detection_loss
from hcmoco.train.resume import checkpoint_dir, clear_checkpoints, load_checkpoint, save_checkpoint
from hcmoco.train.runtime import autocast, cosine_schedule, resolve_precision, seed_everything, select_device
from hcmoco.train.task_data import DEPTH_HALF_WINDOW_M, NUM_CLASSES, TASK_MODALITY, TaskData
from hcmoco.train.task_eval import PREDICTION_SAMPLES, eval_conventions, evaluate, finite, predict


class TaskModel(nn.Module):
    """HRNet backbone + the task's head; forward(input) -> the head's output at input size."""

    def __init__(self, task: str, backbone: HRNet, cfg: dict, resolution: int, num_joints: int = 15):
        super().__init__()
        self.task, self.backbone = task, backbone
        widths = backbone.out_channels
        if task in ("parsing", "depth_parsing"):
            self.head = SegmentationHead(widths, NUM_CLASSES)
        elif task == "pose3d":
            self.head = A2JHead(widths, num_joints, depth_scale=depth_pixel_ratio(resolution, DEPTH_HALF_WINDOW_M),
                                channels=cfg["a2j_channels"], num_convs=cfg["a2j_convs"])
        else:
            self.head = DensePoseHead(widths)

    def forward(self, x: torch.Tensor):
        feats = self.backbone(x)
        return self.head(feats) if self.task == "pose3d" else self.head(feats, tuple(x.shape[-2:]))


def task_loss(model: TaskModel, out, batch: dict, cfg: dict, class_weights: torch.Tensor | None) -> torch.Tensor:
    if model.task in ("parsing", "depth_parsing"):
        return segmentation_loss(out, batch["parsing"], class_weights)
    if model.task == "pose3d":
        return a2j_loss(out, batch["target_xy"], batch["target_depth"], batch["visible"], model.head.depth_scale)
    return densepose_loss(out, batch["part"], batch["u"], batch["v"], cfg["part_weight"], cfg["uv_weight"])


def build_backbone(init: str, backbone_file: Path | None, preset: str, modality: str) -> HRNet:
    """A fresh HRNet of `preset` (init scratch) or the file's weights, loaded strictly; every
    mismatch (file, modality, HRNet config, keys, shapes) is one HcmocoError naming the file."""
    config = HRNetConfig.preset(preset)
    if init == "scratch":
        if backbone_file is not None:
            raise HcmocoError("--backbone-file: --init scratch starts from random weights, give no backbone file")
        return HRNet(config)
    if backbone_file is None:
        raise HcmocoError(f"--backbone-file: --init {init} needs the pre-trained {modality} backbone file")
    if not backbone_file.is_file():
        raise HcmocoError(f"{backbone_file}: backbone file not found")
    state, stored_config, stored = read_backbone(backbone_file)  # an unreadable file: one line naming it
    if stored != modality:
        raise HcmocoError(f"{backbone_file}: holds the {stored} backbone, the task needs the {modality} one")
    if stored_config != config:
        raise HcmocoError(f"{backbone_file}: HRNet config {stored_config.to_dict()} differs from the params' "
                          f"backbone preset {preset!r} {config.to_dict()}")
    net = HRNet(config)
    try:
        load_backbone(net, state)
    except CheckpointMismatchError as err:
        raise HcmocoError(f"{backbone_file}: " + " ".join(str(err).split("\n"))) from None
    return net


def num_steps(cfg: dict, train_size: int) -> int:
    """ceil(epochs * train_size / batch_size), clamped to [min_steps, max_steps]."""
    if cfg["max_steps"] < cfg["min_steps"]:
        raise ParamsError(f"finetune.max_steps: {cfg['max_steps']} is below min_steps {cfg['min_steps']}")
    steps = math.ceil(cfg["epochs"] * train_size / cfg["batch_size"])
    return int(min(cfg["max_steps"], max(cfg["min_steps"], steps)))


def draw(pool: np.ndarray, seed: int, step: int, batch_size: int) -> np.ndarray:
    """Sample indices of batch `step`: uniform with replacement from `pool`, a pure function of
    (seed, step), so a resumed run replays the same batches."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return pool[torch.randint(len(pool), (batch_size,), generator=gen).numpy()]


def _split(path: Path, task: str, data: ProcessedSplit | None = None) -> np.ndarray:
    """The split file's indices, checked to index `data` (see load_split) and to be `task`'s."""
    indices = load_split(path, data)
    if (stored := json.loads(path.read_text()).get("task")) != task:
        raise HcmocoError(f"{path}: split of task {stored!r}, not {task!r}")
    return indices


def _rank(record: dict) -> tuple[float, float]:
    """Model-selection order of a validation record: main metric, then the tiebreak; None last."""
    return tuple(-math.inf if record.get(k) is None else record[k] for k in ("val", "tiebreak"))


def _set_train(model: nn.Module, backbone: HRNet, frozen: bool) -> None:
    model.train()
    if frozen:  # BN statistics belong to the backbone too: they must not move either
        backbone.eval()


def finetune(params: dict, task: str, init: str, fraction: float, seed: int, data_dir: Path, splits_dir: Path,
             backbone_file: Path | None, out: Path, curves: Path | None, log: RunLog | None = None,
             stop_after: int | None = None) -> dict:
    """Train, select on val, test the selected state; writes `out` (and `curves`) atomically.
    `stop_after` ends early after that step (a simulated kill, for the resume test)."""
    started = time.perf_counter()
    cfg, tcfg = params["finetune"], params["finetune"]["tasks"][task]
    preset = params["pretrain"]["backbone"]
    device = select_device(cfg["device"])
    torch.set_num_threads(cfg["threads"])
    seed_everything(seed)
    train_data, test_data = TaskData(task, data_dir / "train"), TaskData(task, data_dir / "test")
    if train_data.domain != (domain := task_domain(params, task, "task")):
        raise HcmocoError(f"{data_dir}: domain {train_data.domain!r}, but task {task!r} uses {domain!r}")
    train_file = fraction_file(splits_dir, fraction, seed)
    pool, val_idx = _split(train_file, task, train_data.split), _split(splits_dir / "val.json", task, train_data.split)
    test_idx = _split(splits_dir / "test.json", task, test_data.split)
    backbone = build_backbone(init, backbone_file, preset, TASK_MODALITY[task])
    if train_data.detection:  # whole images: DensePose R-CNN on the backbone
        model = build_detector(backbone, tcfg["rcnn"], train_data.resolution)
        batch_size = tcfg["rcnn"]["batch_size"]
    else:
        model = TaskModel(task, backbone, tcfg, train_data.resolution, train_data.num_joints)
        batch_size = cfg["batch_size"]
    model.to(device, memory_format=torch.channels_last)
    precision, precision_why = resolve_precision(cfg["precision"], device, preset, train_data.resolution, batch_size)
    frozen = cfg["freeze_backbone"]
    backbone.requires_grad_(not frozen)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = (torch.optim.SGD(trainable, lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"])
                 if cfg["optimizer"] == "sgd" else
                 torch.optim.AdamW(trainable, lr=cfg["lr"], weight_decay=cfg["weight_decay"]))
    weights = (enet_class_weights(train_data.class_counts(pool)).to(device)
               if tcfg.get("class_weights") == "enet" else None)
    steps = num_steps({**cfg, "batch_size": batch_size}, len(pool))
    lrs = cosine_schedule(cfg["lr"], cfg["lr_min"], steps)
    ckdir = checkpoint_dir(out, {"finetune": cfg, "preset": preset, "task": task, "init": init, "fraction": fraction,
                                 "seed": seed},
                           {"data": data_dir, "train": train_file, "val": splits_dir / "val.json",
                            "test": splits_dir / "test.json", "backbone": backbone_file}, "hcmoco.train.finetune")
    start, history, evals, best = 0, [], [], {"state": None, "step": None, "val": None, "tiebreak": None}
    if (resumed := load_checkpoint(ckdir)) is not None:
        model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        start, history, evals, best = resumed["step"], resumed["history"], resumed["evals"], resumed["best"]
        if log:
            log.event("resumed", step=start, checkpoint=str(ckdir))
    _set_train(model, backbone, frozen)
    bar = tqdm(range(start, steps), initial=start, total=steps, desc=f"finetune {task} {init} {fraction:g}/{seed}",
               leave=False, mininterval=2.0)
    for step in bar:
        picked = draw(pool, seed, step, batch_size)
        for group in optimizer.param_groups:
            group["lr"] = float(lrs[step])
        with autocast(precision, device):
            if train_data.detection:  # RPN / RoI sampling draws from torch's RNG: a pure function of the step
                torch.manual_seed(seed * 1_000_003 + step)
                loss = detection_loss(model, train_data.arrays(picked), device)
            else:
                batch = {k: v.to(device, non_blocking=True) for k, v in train_data.batch(picked).items()}
                loss = task_loss(model, model(batch["input"]), batch, tcfg, weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.append({"step": step + 1, "lr": float(lrs[step]), "loss": loss.item()})
        bar.set_postfix(loss=f"{history[-1]['loss']:.3f}")
        if (step + 1) % cfg["eval_every"] == 0 or step + 1 == steps:
            val = evaluate(task, model, train_data, val_idx, device=device, batch_size=cfg["eval_batch_size"],
                           precision=precision, full=False, **eval_conventions(cfg))
            evals.append({"step": step + 1, "val": val["value"], "tiebreak": val.get("tiebreak")})
            if best["state"] is None or _rank(evals[-1]) > _rank(best):
                best = {"state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                        "step": step + 1, "val": val["value"], "tiebreak": val.get("tiebreak")}
            _set_train(model, backbone, frozen)
            if log:
                log.event("val", step=step + 1, value=val["value"], loss=history[-1]["loss"])
        if (step + 1) % cfg["checkpoint_every"] == 0 and step + 1 < steps:
            save_checkpoint(ckdir, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                    "step": step + 1, "history": history, "evals": evals, "best": best})
        if stop_after is not None and step + 1 >= stop_after:
            return {"stopped_at": step + 1}
    bar.close()
    model.load_state_dict(best["state"])
    test = evaluate(task, model, test_data, test_idx, device=device, batch_size=cfg["eval_batch_size"],
                    precision=precision, full=True, **eval_conventions(cfg))
    metrics = finite({
        "task": task, "metric": test["metric"], "test": test["value"], "val": best["val"],
        "best_step": best["step"], "init": init, "fraction": fraction, "seed": seed,
        "train_size": len(pool), "val_size": len(val_idx), "test_size": len(test_idx), "steps": steps,
        "batch_size": batch_size, "backbone": preset, "freeze_backbone": frozen, "device": str(device),
        "precision": precision, "precision_why": precision_why, "resumed_from": start, "seconds": round(time.perf_counter() - started, 2),
        "git": git_revision(), "val_history": evals, "test_details": test})
    if curves is not None:
        val = {e["step"]: e["val"] for e in evals}
        records = [{"step": r["step"], "loss": r["loss"], "lr": r["lr"],
                    f"val_{test['metric']}": val.get(r["step"])} for r in history]
        write_curves(curves, records, "finetune", {"train": history, "val": evals})
    # before the metrics file: a cell that has one counts as finished (hcmoco.train.grid), so a kill
    # between the two writes must not leave a cell without its predictions
    if not test_data.detection:  # DensePose R-CNN: per-box outputs, not drawn
        shown = predict(task, model, test_data, np.sort(test_idx)[:PREDICTION_SAMPLES], device=device,
                        precision=precision)
        buf = io.BytesIO()
        np.savez_compressed(buf, **shown)
        atomic_write_bytes(out.with_name("predictions.npz"), buf.getvalue())
    atomic_write_text(out, json.dumps(metrics, indent=1))
    clear_checkpoints(ckdir)
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--task", required=True, help="downstream task (params splits.tasks)")
    parser.add_argument("--init", required=True, help="scratch, or the pre-training variant the backbone comes from")
    parser.add_argument("--fraction", type=float, required=True, help="label fraction (a split file must exist)")
    parser.add_argument("--seed", type=int, required=True, help="split seed; also seeds init and batches")
    parser.add_argument("--data", required=True, help="processed domain directory (train/ and test/)")
    parser.add_argument("--splits", required=True, help="the task's split directory")
    parser.add_argument("--backbone-file", help="rgb_backbone.pt / depth_backbone.pt (omit for scratch)")
    parser.add_argument("--out", required=True, help="metrics JSON to write")
    parser.add_argument("--curves", help="dvclive directory (default: curves/ beside --out)")

    def body(args, params):
        task_domain(params, args.task)
        out = Path(args.out)
        log = RunLog(log_path_for(out), params, task=args.task, init=args.init, fraction=args.fraction,
                     seed=args.seed)
        metrics = finetune(params, args.task, args.init, args.fraction, args.seed, Path(args.data),
                           Path(args.splits), Path(args.backbone_file) if args.backbone_file else None, out,
                           Path(args.curves) if args.curves else out.with_name("curves"), log)
        log.event("done", **{k: v for k, v in metrics.items() if k != "test_details"})
        print(f"{args.out}: {metrics['task']} {metrics['metric']} test {metrics['test']} "
              f"(val {metrics['val']} at step {metrics['best_step']} of {metrics['steps']})")

    return run_cli(parser, body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
