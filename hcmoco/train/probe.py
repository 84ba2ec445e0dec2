"""A light task head trained on cached frozen-backbone features: one (fraction, seed) cell.

Heads (the task's fine-tuning head, hcmoco.tasks, so losses, decoding and evaluation are shared):
- parsing, depth_parsing: a linear probe, one 1x1 conv from the four branch maps upsampled to
  the first branch's size and concatenated (trained on targets sampled at that grid, evaluated
  with logits upsampled to the input size): the HRNet
  segmentation head whose hidden 1x1 conv + BN + ReLU is replaced by a BatchNorm without affine
  parameters (MAE's linear probe; `_linear` says why);
- densepose: likewise the dense DensePose head, one 1x1 conv each for part logits, U and V;
- pose3d: the A2J head (finetune.tasks.pose3d a2j_channels, a2j_convs) on the branch maps
  (a task whose targets are not per pixel keeps its head: `Task.dense`, `Task.frozen_head`).
Training: AdamW at `frozen.lr` without weight decay, cosine-decayed to 0 over `frozen.steps`
steps of `frozen.batch_size` samples drawn from the fraction's subset (hcmoco.train.finetune.draw),
the loss of fine-tuning (Task.loss; class weights as finetune.tasks.<task>), fine-tuning's loop
(hcmoco.train.finetune.fit); the state with the best validation score (every `frozen.eval_every`
steps and at the end) is tested once.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from hcmoco.runlog import git_revision
from hcmoco.tasks import Task, enet_class_weights
from hcmoco.train.features import FeatureData, unflatten
from hcmoco.train.finetune import draw, fit
from hcmoco.train.runtime import cosine_schedule, seed_everything
from hcmoco.train.task_eval import eval_conventions, evaluate, finite


def _linear(head: nn.Module, channels: int) -> nn.Module:
    """A fine-tuning head without its hidden layer: its output convs read the concatenated
    branch maps (sum(widths) channels, as they do already) through a BatchNorm without affine
    parameters. At test time that is a fixed per-channel affine map, so the probe stays linear;
    it lets one learning rate fit features of any scale (random weights, RGB or depth inputs)."""
    # momentum None: the running statistics are the plain average over every training batch,
    # the right estimate for frozen features (their distribution does not move) even after few steps
    head.fuse = nn.BatchNorm2d(channels, affine=False, momentum=None)
    return head


class Probe(nn.Module):
    """The task head on cached rows: forward((B, D) rows) -> the head's output at input size."""

    def __init__(self, task: Task, shapes: list, cfg: dict, resolution: int, num_joints: int = 15):
        super().__init__()
        self.task, self.shapes, self.size = task, [tuple(s) for s in shapes], (resolution, resolution)
        widths = [s[0] for s in self.shapes]
        self.head = task.head(widths, cfg, resolution, num_joints)
        if task.dense:  # a linear probe
            self.head = _linear(self.head, sum(widths))

    def forward(self, rows: torch.Tensor):
        """Dense outputs at the input size for evaluation; while training, at the first branch's
        grid, where the targets are sampled too (`at_feature_grid`): the loss over 16 times fewer
        pixels is what keeps a cell at a few seconds on a CPU, and the probe is the same linear map."""
        # channels-last, as the fine-tuned models run: on a CPU it makes the bilinear resizes
        # and the argmax of evaluation about 4-8x faster than the NCHW rows would
        feats = [f.contiguous(memory_format=torch.channels_last) for f in unflatten(rows, self.shapes)]
        return self.task.forward(self.head, feats, tuple(self.shapes[0][1:]) if self.training else self.size)


DENSE_TARGETS = ("parsing", "part", "u", "v")


def at_feature_grid(batch: dict, stride: int) -> dict:
    """Per-pixel targets sampled at the centres of the feature grid's cells (stride pixels each)."""
    return {k: v[:, stride // 2::stride, stride // 2::stride] if k in DENSE_TARGETS else v for k, v in batch.items()}


def probe_cell(params: dict, task: str, init: str, fraction: float, seed: int, train: FeatureData,
               test: FeatureData, pool: np.ndarray, val: np.ndarray, test_idx: np.ndarray,
               device: torch.device, log=None) -> dict:
    """Train the head of one cell, select on `val`, test once; the metrics (fine-tuning's keys
    plus "protocol": "frozen")."""
    started = time.perf_counter()
    fz, ft = params["frozen"], params["finetune"]
    tcfg, spec = ft["tasks"][task], train.task
    seed_everything(seed)
    model = Probe(spec, train.shapes, tcfg, train.resolution, train.num_joints).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=fz["lr"], weight_decay=0.0)
    weights = enet_class_weights(train.class_counts(pool)).to(device) if tcfg.get("class_weights") == "enet" else None
    steps, conventions = fz["steps"], eval_conventions(ft)
    lrs = cosine_schedule(fz["lr"], 0.0, steps)

    def loss_at(step: int) -> torch.Tensor:
        batch = {k: v.to(device) for k, v in train.batch(draw(pool, seed, step, fz["batch_size"])).items()}
        if spec.dense:
            batch = at_feature_grid(batch, train.resolution // model.shapes[0][1])
        return spec.loss(model.head, model(batch["input"]), batch, tcfg, weights)

    def validate() -> dict:
        result = evaluate(spec, model, train, val, device=device, batch_size=fz["batch_size"], full=False,
                          **conventions)
        return {"val": result["value"], "tiebreak": result.get("tiebreak")}

    def on_eval(step: int, val: dict, loss: float) -> None:
        if log:
            log.event("val", fraction=fraction, seed=seed, step=step, value=val["val"], loss=loss)

    progress = fit(model, optimizer, lrs, loss_at, validate, eval_every=fz["eval_every"], eval_loss=True,
                   on_eval=on_eval)
    evals, best = progress.evals, progress.best
    result = evaluate(spec, model, test, test_idx, device=device, batch_size=fz["batch_size"], full=True,
                      **conventions)
    return finite({
        "task": task, "protocol": "frozen", "metric": result["metric"], "test": result["value"], "val": best["val"],
        "best_step": best["step"], "init": init, "fraction": fraction, "seed": seed, "train_size": len(pool),
        "val_size": len(val), "test_size": len(test_idx), "steps": steps, "batch_size": fz["batch_size"],
        "lr": fz["lr"], "backbone": params["pretrain"]["backbone"], "freeze_backbone": True, "device": str(device),
        "precision": "fp32", "seconds": round(time.perf_counter() - started, 2), "git": git_revision(),
        "val_history": evals, "test_details": result})
