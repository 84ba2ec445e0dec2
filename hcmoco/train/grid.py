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
end, so a killed job resumes at the cell, and within it at the last checkpoint: `run_plan`, the
cell runner the frozen protocol and the versatility experiments use too.
"""
from __future__ import annotations

import argparse
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from hcmoco import tasks
from hcmoco.atomic import atomic_directory
from hcmoco.cli_common import base_parser, run_cli
from hcmoco.config import ParamsError, cell_dir, domain_dir, finetune_cells, task_domain
from hcmoco.errors import HcmocoError
from hcmoco.runlog import RunLog, log_path_for
from hcmoco.train.finetune import finetune
from hcmoco.train.resume import checkpoint_dir, clear_checkpoints


def backbone_file(pretrained: Path, init: str, task: str) -> Path | None:
    """None for scratch, else the task's modality backbone of the pre-training output `init`."""
    return None if init == "scratch" else pretrained / init / f"{tasks.get(task).modality}_backbone.pt"


@dataclass(frozen=True)
class Cell:
    """One run of a job: its folder in the output (`name`, e.g. fraction~0.1/seed~0), its metrics
    file `target` staged under `staging` (a resume.checkpoint_dir; the target's folder is
    published), and what identifies it in the log."""

    name: str
    target: Path
    staging: Path
    keys: dict


def run_plan(cells: list[Cell], compute: Callable[[Cell], dict], out: Path, label: str,
             log: RunLog | None = None, report: Callable[[Cell, dict], None] | None = None) -> list[dict]:
    """The cell runner of a job: `compute(cell)` (which writes `cell.target`) for every cell whose
    metrics file is not staged yet, then `report(cell, metrics)`; once all are there, each cell's
    folder is copied to `<out>/<cell.name>` atomically (the output appears complete or not at
    all) and the staging folders are cleared. Finished cells survive a kill in their staging
    folder, so a re-run resumes at the cell. The new cells' metrics."""
    results = []
    for i, c in enumerate(cells):
        print(f"[{i + 1}/{len(cells)}] {label} {c.name.replace('/', ' ')}", flush=True)
        if c.target.is_file():  # finished before a kill: kept
            if log:
                log.event("cell_reused", **c.keys)
            continue
        metrics = compute(c)
        results.append(metrics)
        if report:
            report(c, metrics)
    with atomic_directory(out) as tmp:
        for c in cells:
            shutil.copytree(c.target.parent, tmp / c.name)
    for staging in dict.fromkeys(c.staging for c in cells):
        clear_checkpoints(staging)
    return results


def fraction_cells(staging: Path, init: str, cells) -> list[Cell]:
    """The Cells of (fraction, seed) pairs of one init, named fraction~F/seed~S."""
    return [Cell(f"fraction~{f:g}/seed~{s}", cell_dir(staging, init, s, f) / "metrics.json", staging,
                 {"init": init, "fraction": f, "seed": s}) for f, s in cells]


def report_cell(log: RunLog | None) -> Callable[[Cell, dict], None]:
    """Logs a fine-tuning or frozen cell's result."""
    def report(c: Cell, metrics: dict) -> None:
        if log:
            log.event("cell", **{k: metrics[k] for k in ("init", "fraction", "seed", "metric", "test", "val", "seconds")})
    return report


def run_cells(plan: list[tuple[float, int, Path]], compute, out: Path, staging: Path, label: str, init: str,
              log: RunLog | None = None) -> list[dict]:
    """run_plan over [(fraction, seed, staged target)] with compute(fraction, seed, target)."""
    cells = fraction_cells(staging, init, [(f, s) for f, s, _ in plan])
    return run_plan(cells, lambda c: compute(c.keys["fraction"], c.keys["seed"], c.target), out, label, log,
                    report_cell(log))


def run_grid(params: dict, task: str, init: str, pretrained: Path, data: Path, splits: Path, out: Path,
             log: RunLog | None = None) -> list[dict]:
    weights = backbone_file(pretrained, init, task)
    if weights is not None and not weights.is_file():
        raise HcmocoError(f"{weights}: backbone file not found (the grid of init {init!r})")
    staging = checkpoint_dir(out, {"finetune": params["finetune"], "preset": params["pretrain"]["backbone"],
                                   "task": task, "init": init},
                             {"data": data, "splits": splits, "backbone": weights}, "hcmoco.train.grid")

    def compute(c: Cell) -> dict:
        return finetune(params, task, init, c.keys["fraction"], c.keys["seed"], data, splits, weights, c.target,
                        c.target.with_name("curves"), log)

    return run_plan(fraction_cells(staging, init, finetune_cells(params, init, task)), compute, out,
                    f"{task} init~{init}", log, report_cell(log))


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
