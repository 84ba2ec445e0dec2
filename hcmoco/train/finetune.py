"""Downstream fine-tuning (docs/METHOD.md 5): one task, init, label fraction and seed per run.

    python -m hcmoco.train.finetune --profile default --task parsing --init hcmoco --fraction 0.1 --seed 0 \
        --data data/default/synth/synth_h36m --splits data/default/splits/parsing \
        --backbone-file models/default/pretrain/hcmoco/rgb_backbone.pt \
        --out results/default/finetune/parsing/init~hcmoco/fraction~0.1/seed~0/metrics.json

The task is an object of hcmoco.tasks, in the variant its data picks (DensePose on a split of whole
images, hcmoco.prepare.densepose_coco_detection, trains DensePose R-CNN on the backbone instead
of the dense head). `fit` is the training loop itself, for any model and loss: the versatility
experiments (hcmoco.train.versatility) and the frozen-feature heads (hcmoco.train.probe) run it too.

The backbone is a fresh HRNet of the `pretrain.backbone` preset (`--init scratch`) or the
task's modality backbone of a pre-training output, loaded strictly. A task head is trained for
a fixed step budget on the fraction's samples (`finetune.epochs`, clamped to [min_steps,
max_steps]); the validation split (held-out training subjects) picks the best state every
`eval_every` steps, and only that state is evaluated on the test split. Writes the metrics
JSON (`--out`), dvclive curves (`--curves`, default: `curves/` beside it) and
`predictions.npz` beside the metrics: the selected state's predictions on the first test samples
(hcmoco.train.task_eval.predict; tasks that keep predictions, not DensePose R-CNN), for the report's
qualitative sheets. Checkpoints every `checkpoint_every` steps go to `checkpoints/`, and a
re-run resumes bit-identically.
"""
from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from hcmoco import tasks
from hcmoco.atomic import atomic_write_bytes, atomic_write_text
from hcmoco.cli_common import base_parser, run_cli
from hcmoco.config import ParamsError, task_domain
from hcmoco.errors import HcmocoError
from hcmoco.models import CheckpointMismatchError, HRNet, HRNetConfig, load_backbone, read_backbone
from hcmoco.processed.sampling import step_generator
from hcmoco.processed.shards import ProcessedSplit
from hcmoco.processed.splits import fraction_file, load_split
from hcmoco.runlog import RunLog, git_revision, log_path_for
from hcmoco.tasks import enet_class_weights
from hcmoco.train.curves import write_curves
from hcmoco.train.resume import checkpoint_dir, clear_checkpoints, load_checkpoint, save_checkpoint
from hcmoco.precision import autocast
from hcmoco.train.runtime import cosine_schedule, resolve_precision, seed_everything, select_device
from hcmoco.train.task_data import TaskData
from hcmoco.train.task_eval import PREDICTION_SAMPLES, eval_conventions, evaluate, finite, predict


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
    return pool[torch.randint(len(pool), (batch_size,), generator=step_generator(seed, step)).numpy()]


def split_indices(path: Path, task: str, data: ProcessedSplit | None = None) -> np.ndarray:
    """The split file's indices, checked to index `data` (see load_split) and to be `task`'s."""
    indices = load_split(path, data)
    if (stored := json.loads(path.read_text()).get("task")) != task:
        raise HcmocoError(f"{path}: split of task {stored!r}, not {task!r}")
    return indices


def rank(record: dict) -> tuple[float, float]:
    """Model-selection order of a validation record: main metric, then the tiebreak; None last."""
    return tuple(-math.inf if record.get(k) is None else record[k] for k in ("val", "tiebreak"))


@dataclass
class Progress:
    """Where a `fit` run stands: the next step, the per-step history, the validation records and
    the best state so far (what a checkpoint holds besides the model and optimizer)."""

    step: int = 0
    history: list = field(default_factory=list)
    evals: list = field(default_factory=list)
    best: dict = field(default_factory=lambda: {"state": None, "step": None, "val": None, "tiebreak": None})


def fit(model: nn.Module, optimizer: torch.optim.Optimizer, lrs: Sequence[float], loss_at: Callable[[int], torch.Tensor],
        validate: Callable[[], dict], *, eval_every: int, train_mode: Callable[[], None] | None = None,
        progress: Progress | None = None, save: Callable[[Progress], None] | None = None, save_every: int = 0,
        stop_after: int | None = None, desc: str | None = None, eval_loss: bool = False,
        on_eval: Callable[[int, dict, float], None] | None = None) -> Progress | None:
    """The training loop: step s (of len(lrs)) sets the learning rate lrs[s], takes the loss
    `loss_at(s)` and one optimizer step. Every `eval_every` steps and at the last, `validate()`
    ({"val": main metric, "tiebreak": ...}) is recorded and the best state by `rank` kept; at the
    end `model` holds it. `train_mode()` (default model.train()) puts the model back into
    training after each validation. `save(progress)` every `save_every` steps before the last
    (a checkpoint); a run resumed from `progress` replays nothing. `stop_after`: stop after that
    step and return None (a simulated kill). eval_loss: the records carry the step's loss too."""
    progress = progress or Progress()
    train_mode = train_mode or model.train
    steps = len(lrs)
    train_mode()
    steps_range = range(progress.step, steps)
    bar = (tqdm(steps_range, initial=progress.step, total=steps, desc=desc, leave=False, mininterval=2.0)
           if desc is not None else None)
    for step in bar if bar is not None else steps_range:
        for group in optimizer.param_groups:
            group["lr"] = float(lrs[step])
        loss = loss_at(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        progress.history.append({"step": step + 1, "lr": float(lrs[step]), "loss": loss.item()})
        if bar is not None:
            bar.set_postfix(loss=f"{progress.history[-1]['loss']:.3f}")
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            val = validate()
            record = {"step": step + 1, "val": val["val"], "tiebreak": val.get("tiebreak")}
            progress.evals.append({**record, "loss": progress.history[-1]["loss"]} if eval_loss else record)
            if progress.best["state"] is None or rank(record) > rank(progress.best):
                progress.best = {"state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                                 **record}
            train_mode()
            if on_eval:
                on_eval(step + 1, val, progress.history[-1]["loss"])
        progress.step = step + 1
        if save is not None and save_every and (step + 1) % save_every == 0 and step + 1 < steps:
            save(progress)
        if stop_after is not None and step + 1 >= stop_after:
            return None
    if bar is not None:
        bar.close()
    model.load_state_dict(progress.best["state"])
    return progress


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
    spec = train_data.task  # the task in the variant of its data
    train_file = fraction_file(splits_dir, fraction, seed)
    pool = split_indices(train_file, task, train_data.split)
    val_idx = split_indices(splits_dir / "val.json", task, train_data.split)
    test_idx = split_indices(splits_dir / "test.json", task, test_data.split)
    backbone = build_backbone(init, backbone_file, preset, spec.modality)
    model = spec.model(backbone, tcfg, train_data)
    batch_size = spec.batch_size(cfg, tcfg)
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
    progress = Progress()
    if (resumed := load_checkpoint(ckdir)) is not None:
        model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        progress = Progress(resumed["step"], resumed["history"], resumed["evals"], resumed["best"])
        if log:
            log.event("resumed", step=progress.step, checkpoint=str(ckdir))
    start = progress.step
    conventions = eval_conventions(cfg)

    def train_mode() -> None:
        model.train()
        if frozen:  # BN statistics belong to the backbone too: they must not move either
            backbone.eval()

    def loss_at(step: int) -> torch.Tensor:
        picked = draw(pool, seed, step, batch_size)
        with autocast(precision, device):
            return spec.train_loss(model, train_data, picked, device, tcfg, weights, seed, step)

    def validate() -> dict:
        val = evaluate(spec, model, train_data, val_idx, device=device, batch_size=cfg["eval_batch_size"],
                       precision=precision, full=False, **conventions)
        return {"val": val["value"], "tiebreak": val.get("tiebreak")}

    def save(p: Progress) -> None:
        save_checkpoint(ckdir, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                "step": p.step, "history": p.history, "evals": p.evals, "best": p.best})

    def on_eval(step: int, val: dict, loss: float) -> None:
        if log:
            log.event("val", step=step, value=val["val"], loss=loss)

    if fit(model, optimizer, lrs, loss_at, validate, eval_every=cfg["eval_every"], train_mode=train_mode,
           progress=progress, save=save, save_every=cfg["checkpoint_every"], stop_after=stop_after,
           desc=f"finetune {task} {init} {fraction:g}/{seed}", on_eval=on_eval) is None:
        return {"stopped_at": progress.step}
    history, evals, best = progress.history, progress.evals, progress.best
    test = evaluate(spec, model, test_data, test_idx, device=device, batch_size=cfg["eval_batch_size"],
                    precision=precision, full=True, **conventions)
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
    if spec.keeps_predictions:
        shown = predict(spec, model, test_data, np.sort(test_idx)[:PREDICTION_SAMPLES], device=device,
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
