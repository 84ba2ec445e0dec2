"""The fine-tuning grid of one (task, init): every (fraction, seed) cell, one job.

    python -m hcmoco.train.grid --profile default --task parsing --init hcmoco \\
        --model models/default/pretrain/hcmoco --data data/default/synth/synth_h36m \\
        --splits data/default/splits/parsing --out results/default/finetune/parsing/init~hcmoco

Runs `hcmoco.train.finetune` for each cell of `finetune_cells(params, init)` (finetune.fractions x
finetune.seeds, or the init's finetune.grids entry) and writes
`<out>/fraction~F/seed~S/{metrics.json,curves/}`. `--model scratch` starts from random weights;
otherwise the task's modality backbone (`rgb_backbone.pt` / `depth_backbone.pt`) of the model
directory is loaded strictly. One process runs the cells in turn (the interpreter and torch
start once). Finished cells are kept in a staging folder under `checkpoints/` (keyed by the
configuration) and the output directory appears complete at the end, so a killed job resumes
at the cell, and within it at the last checkpoint.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Sequence

from hcmoco.atomic import atomic_directory
from hcmoco.cli_common import base_parser, run_cli
from hcmoco.config import ParamsError, finetune_cells
from hcmoco.runlog import RunLog, log_path_for
from hcmoco.train.finetune import _digest, finetune
from hcmoco.train.resume import checkpoint_dir
from hcmoco.train.task_data import TASK_MODALITY


def cell_dir(root: Path, fraction: float, seed: int) -> Path:
    return root / f"fraction~{fraction:g}" / f"seed~{seed}"


def backbone_file(model: str, task: str) -> Path | None:
    """None for scratch, else the task's modality backbone inside the model directory."""
    return None if model == "scratch" else Path(model) / f"{TASK_MODALITY[task]}_backbone.pt"


def run_grid(params: dict, task: str, init: str, model: str, data: Path, splits: Path, out: Path,
             log: RunLog | None = None) -> list[dict]:
    if (init == "scratch") != (model == "scratch"):
        raise ParamsError(f"--model: init {init!r} needs {'scratch' if init == 'scratch' else 'a model directory'}, "
                          f"got {model!r}")
    weights = backbone_file(model, task)
    cells = finetune_cells(params, init)
    staging = checkpoint_dir(out, {"finetune": params["finetune"], "preset": params["pretrain"]["backbone"],
                                   "task": task, "init": init, "data": str(data), "splits": str(splits),
                                   "backbone": _digest(weights)}) / "cells"
    results = []
    for i, (fraction, seed) in enumerate(cells):
        target = cell_dir(staging, fraction, seed) / "metrics.json"
        print(f"[{i + 1}/{len(cells)}] {task} init~{init} fraction~{fraction:g} seed~{seed}", flush=True)
        if target.is_file():  # finished before a kill: kept
            if log:
                log.event("cell_reused", fraction=fraction, seed=seed)
            continue
        metrics = finetune(params, task, init, fraction, seed, data, splits, weights, target,
                           target.with_name("curves"), log)
        results.append(metrics)
        if log:
            log.event("cell", **{k: metrics[k] for k in ("fraction", "seed", "metric", "test", "val", "seconds")})
    with atomic_directory(out) as tmp:
        for fraction, seed in cells:
            shutil.copytree(cell_dir(staging, fraction, seed), cell_dir(tmp, fraction, seed))
    shutil.rmtree(staging.parent, ignore_errors=True)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--task", required=True, help="downstream task (params splits.tasks)")
    parser.add_argument("--init", required=True, help="scratch, or the pre-training output the backbone comes from")
    parser.add_argument("--model", required=True, help="scratch, or the pre-training output directory")
    parser.add_argument("--data", required=True, help="processed domain directory (train/ and test/)")
    parser.add_argument("--splits", required=True, help="the task's split directory")
    parser.add_argument("--out", required=True, help="output directory of the grid")

    def body(args, params):
        tasks = params["splits"]["tasks"]
        if args.task not in tasks:
            raise ParamsError(f"--task: unknown task {args.task!r} (known: {', '.join(tasks)})")
        out = Path(args.out)
        log = RunLog(log_path_for(out), params, task=args.task, init=args.init, model=args.model)
        run_grid(params, args.task, args.init, args.model, Path(args.data), Path(args.splits), out, log)
        log.event("done", cells=len(finetune_cells(params, args.init)))
        print(f"{out}: {len(finetune_cells(params, args.init))} cells")

    return run_cli(parser, body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
