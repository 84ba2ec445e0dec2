"""The fine-tuning grid of one task and one init: every fraction x seed cell, one job.

    python -m hcmoco.train.grid --profile default --task parsing --init hcmoco \
        --pretrained models/default/pretrain --data-root data/default --splits data/default/splits/parsing \
        --out results/default/finetune/parsing/init~hcmoco

Runs `hcmoco.train.finetune` on every cell of `finetune_cells(params, init, task)`
(finetune.fractions x finetune.seeds, or the init's finetune.grids entry) and writes
`<out>/fraction~F/seed~S/{metrics.json,curves/}`. The task's data is its domain under
`--data-root` (params splits.tasks). `scratch` starts from random weights; an init I loads the
task's modality backbone (`<pretrained>/I/rgb_backbone.pt` or `depth_backbone.pt`) strictly.
One job per (task, init): scratch jobs need no pre-training, so they run while it does. One
process runs the cells in turn: torch starts once per job rather than once per cell, which is
most of a cell's cost at small sizes. Finished cells are kept in a staging folder under
`checkpoints/` (keyed by the computation) and the output directory appears complete at the
end, so a killed job resumes at the cell, and within it at the last checkpoint.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Sequence

from hcmoco.atomic import atomic_directory
from hcmoco.cli_common import base_parser, run_cli
from hcmoco.config import ParamsError, cell_dir, domain_dir, finetune_cells, task_domain
from hcmoco.errors import HcmocoError
from hcmoco.runlog import RunLog, log_path_for
from hcmoco.train.finetune import finetune
from hcmoco.train.resume import checkpoint_dir, clear_checkpoints
from hcmoco.train.task_data import TASK_MODALITY


def backbone_file(pretrained: Path, init: str, task: str) -> Path | None:
    """None for scratch, else the task's modality backbone of the pre-training output `init`."""
    return None if init == "scratch" else pretrained / init / f"{TASK_MODALITY[task]}_backbone.pt"


def run_cells(plan: list[tuple[float, int, Path]], compute, out: Path, staging: Path, label: str, init: str,
              log: RunLog | None = None) -> list[dict]:
    """Run `compute(fraction, seed, target)` (which writes the metrics file `target`) for every
    cell of `plan` = [(fraction, seed, target under `staging`)] whose target is not there yet;
    then copy each cell's folder to `<out>/fraction~F/seed~S` atomically and clear `staging`.
    Finished cells survive a kill in `staging`, so a re-run resumes at the cell."""
    results = []
    for i, (fraction, seed, target) in enumerate(plan):
        print(f"[{i + 1}/{len(plan)}] {label} fraction~{fraction:g} seed~{seed}", flush=True)
        if target.is_file():  # finished before a kill: kept
            if log:
                log.event("cell_reused", init=init, fraction=fraction, seed=seed)
            continue
        metrics = compute(fraction, seed, target)
        results.append(metrics)
        if log:
            log.event("cell", **{k: metrics[k] for k in ("init", "fraction", "seed", "metric", "test", "val", "seconds")})
    with atomic_directory(out) as tmp:
        for fraction, seed, target in plan:
            shutil.copytree(target.parent, tmp / f"fraction~{fraction:g}" / f"seed~{seed}")
    clear_checkpoints(staging)
    return results


def run_grid(params: dict, task: str, init: str, pretrained: Path, data: Path, splits: Path, out: Path,
             log: RunLog | None = None) -> list[dict]:
    weights = backbone_file(pretrained, init, task)
    if weights is not None and not weights.is_file():
        raise HcmocoError(f"{weights}: backbone file not found (the grid of init {init!r})")
    staging = checkpoint_dir(out, {"finetune": params["finetune"], "preset": params["pretrain"]["backbone"],
                                   "task": task, "init": init},
                             {"data": data, "splits": splits, "backbone": weights}, "hcmoco.train.grid")
    plan = [(f, s, cell_dir(staging, init, s, f) / "metrics.json") for f, s in finetune_cells(params, init, task)]

    def compute(fraction: float, seed: int, target: Path) -> dict:
        return finetune(params, task, init, fraction, seed, data, splits, weights, target, target.with_name("curves"),
                        log)

    return run_cells(plan, compute, out, staging, f"{task} init~{init}", init, log)


def job_parser(description: str, section: str) -> argparse.ArgumentParser:
    """The arguments of a (task, init) job of params section `section` (finetune, frozen)."""
    parser = base_parser(description)
    parser.add_argument("--task", required=True, help="downstream task (params splits.tasks)")
    parser.add_argument("--init", required=True, help=f"scratch, or one of {section}.inits")
    parser.add_argument("--pretrained", required=True, help="folder of the pre-training outputs")
    parser.add_argument("--data-root", required=True, help="the profile's data folder (synth/ and real/ domains)")
    parser.add_argument("--splits", required=True, help="the task's split directory")
    parser.add_argument("--out", required=True, help="output directory of the job")
    return parser


def check_init(params: dict, init: str, section: str) -> None:
    inits = params[section]["inits"]
    if init not in ("scratch", *inits):
        raise ParamsError(f"--init: {init!r} is not scratch or one of {section}.inits ({', '.join(inits)})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = job_parser(__doc__.splitlines()[0], "finetune")

    def body(args, params):
        domain = task_domain(params, args.task)
        check_init(params, args.init, "finetune")
        out = Path(args.out)
        log = RunLog(log_path_for(out), params, task=args.task, init=args.init)
        run_grid(params, args.task, args.init, Path(args.pretrained), domain_dir(params, domain, args.data_root),
                 Path(args.splits), out, log)
        cells = len(finetune_cells(params, args.init, args.task))
        log.event("done", cells=cells)
        print(f"{out}: {cells} cells")

    return run_cli(parser, body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
