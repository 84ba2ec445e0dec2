"""Frozen-feature evaluation of one task and one init: every fraction x seed cell, one job.

    python -m hcmoco.train.frozen --profile default --task parsing --init hcmoco \\
        --pretrained models/default/pretrain --data-root data/default --splits data/default/splits/parsing \\
        --out results/default/frozen/parsing/init~hcmoco

The backbone (`scratch`: random weights; an init I: the task's modality backbone of
`<pretrained>/I`, loaded strictly) is frozen: its features of the training samples of every
planned fraction file and of val.json, and of test.json's samples, are computed once
(hcmoco.train.features) and a light head is trained on them for every cell of frozen.fractions
x frozen.seeds (hcmoco.train.probe); the best validation state is tested once. Writes
`<out>/fraction~F/seed~S/metrics.json` (fine-tuning's keys plus "protocol": "frozen"). Like a
fine-tuning grid job (the cell runner hcmoco.train.grid.run_plan) finished cells stage under `checkpoints/`
and the output directory appears complete at the end, so a killed job resumes at the cell; the
feature cache sits beside the staging, keyed by the inputs (data, splits, backbone file) and the
code, so a re-run reuses it and a changed backbone file recomputes it. Both are cleared once
the output is complete.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from hcmoco.atomic import atomic_write_text
from hcmoco.cli_common import run_cli
from hcmoco.config import ParamsError, domain_dir, frozen_cells, frozen_tasks, task_domain
from hcmoco.processed.splits import fraction_file
from hcmoco.errors import HcmocoError
from hcmoco.runlog import RunLog, log_path_for
from hcmoco.train.features import SCRATCH_SEED, FeatureCache
from hcmoco.train.finetune import split_indices
from hcmoco.train.grid import Cell, backbone_file, check_init, fraction_cells, job_parser, report_cell, run_plan
from hcmoco.train.probe import probe_cell
from hcmoco.train.resume import checkpoint_dir, clear_checkpoints
from hcmoco.train.runtime import select_device
from hcmoco.train.task_data import TaskData

# the finetune keys a frozen job reads besides finetune.tasks.<task> (the workflow's frozen_values)
FINETUNE_KEYS = ("threads", "device", "miou", "densepose_box_ignore")


def run_frozen(params: dict, task: str, init: str, pretrained: Path, data: Path, splits: Path, out: Path,
               log: RunLog | None = None) -> list[dict]:
    """Every cell of `frozen_cells(params)` for (task, init) into `out`; the new cells' metrics."""
    ft, preset = params["finetune"], params["pretrain"]["backbone"]
    weights = backbone_file(pretrained, init, task)
    if weights is not None and not weights.is_file():
        raise HcmocoError(f"{weights}: backbone file not found (the frozen job of init {init!r})")
    torch.set_num_threads(ft["threads"])
    device = select_device(ft["device"])
    train, test = TaskData(task, data / "train"), TaskData(task, data / "test")
    if train.domain != (domain := task_domain(params, task, "task")):
        raise HcmocoError(f"{data}: domain {train.domain!r}, but task {task!r} uses {domain!r}")
    if not train.task.crops:
        raise HcmocoError(f"{data / 'train'}: whole images (DensePose R-CNN): the frozen protocol needs person crops")
    cells = frozen_cells(params)
    pools = {(f, s): split_indices(fraction_file(splits, f, s), task, train.split) for f, s in cells}
    val = split_indices(splits / "val.json", task, train.split)
    test_idx = split_indices(splits / "test.json", task, test.split)
    inputs = {"data": data, "splits": splits, "backbone": weights}
    fz = params["frozen"]
    # the key names what the features depend on: which samples (the fractions and seeds pick the
    # split files), the backbone, and how it ran; the head's parameters do not enter it
    cache = FeatureCache(
        checkpoint_dir(out, {"task": task, "init": init, "preset": preset, "scratch_seed": SCRATCH_SEED,
                             "fractions": fz["fractions"], "seeds": fz["seeds"], "batch_size": fz["batch_size"],
                             "device": str(device)}, inputs, "hcmoco.train.features"),
        init, weights, preset, task,
        {"train": (train, np.unique(np.concatenate([*pools.values(), val]))), "test": (test, np.unique(test_idx))},
        fz["batch_size"], device, log)
    staging = checkpoint_dir(out, {"frozen": fz, "finetune": {k: ft[k] for k in FINETUNE_KEYS},
                                   "head": ft["tasks"][task], "preset": preset, "task": task, "init": init},
                             inputs, "hcmoco.train.frozen")

    def compute(c: Cell) -> dict:
        feats, fraction, seed = cache.get(), c.keys["fraction"], c.keys["seed"]
        metrics = probe_cell(params, task, init, fraction, seed, feats["train"], feats["test"], pools[fraction, seed],
                             val, test_idx, device, log)
        atomic_write_text(c.target, json.dumps(metrics, indent=1))
        return metrics

    results = run_plan(fraction_cells(staging, init, cells), compute, out, f"{task} init~{init} (frozen)", log,
                       report_cell(log))
    clear_checkpoints(cache.directory)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = job_parser(__doc__.splitlines()[0], "frozen")

    def body(args, params):
        domain = task_domain(params, args.task)
        if args.task not in frozen_tasks(params):
            raise ParamsError(f"--task: {args.task!r} runs on whole images ({domain}): the frozen protocol "
                              f"needs person crops")
        check_init(params, args.init, "frozen")
        out = Path(args.out)
        log = RunLog(log_path_for(out), params, task=args.task, init=args.init, protocol="frozen")
        run_frozen(params, args.task, args.init, Path(args.pretrained), domain_dir(params, domain, args.data_root),
                   Path(args.splits), out, log)
        cells = len(frozen_cells(params))
        log.event("done", cells=cells)
        print(f"{out}: {cells} cells")

    return run_cli(parser, body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
