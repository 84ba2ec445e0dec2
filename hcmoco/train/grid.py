"""The fine-tuning grid of one task: every init x fraction x seed cell, one job.

    python -m hcmoco.train.grid --profile default --task parsing --pretrained models/default/pretrain \\
        --data data/default/synth/synth_h36m --splits data/default/splits/parsing \\
        --out results/default/finetune/parsing

For `scratch` and each of `finetune.inits`, runs `hcmoco.train.finetune` on every cell of
`finetune_cells(params, init)` (finetune.fractions x finetune.seeds, or the init's
finetune.grids entry) and writes `<out>/init~I/fraction~F/seed~S/{metrics.json,curves/}`.
`scratch` starts from random weights; an init I loads the task's modality backbone
(`<pretrained>/I/rgb_backbone.pt` or `depth_backbone.pt`) strictly. One process runs the cells
in turn: torch starts once per task rather than once per cell, which is most of a cell's cost
at small sizes. Finished cells are kept in a staging folder under `checkpoints/` (keyed by the
configuration and the backbone's digest) and the output directory appears complete at the end,
so a killed job resumes at the cell, and within it at the last checkpoint.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Sequence

from hcmoco.atomic import atomic_directory
from hcmoco.cli_common import base_parser, run_cli
from hcmoco.config import finetune_cells, task_domain
from hcmoco.errors import HcmocoError
from hcmoco.runlog import RunLog, log_path_for
from hcmoco.train.finetune import finetune
from hcmoco.train.resume import checkpoint_dir, clear_checkpoints
from hcmoco.train.task_data import TASK_MODALITY


def cell_dir(root: Path, fraction: float, seed: int) -> Path:
    return root / f"fraction~{fraction:g}" / f"seed~{seed}"


def backbone_file(pretrained: Path, init: str, task: str) -> Path | None:
    """None for scratch, else the task's modality backbone of the pre-training output `init`."""
    return None if init == "scratch" else pretrained / init / f"{TASK_MODALITY[task]}_backbone.pt"


def inits(params: dict) -> list[str]:
    return ["scratch", *params["finetune"]["inits"]]


def run_grid(params: dict, task: str, pretrained: Path, data: Path, splits: Path, out: Path,
             log: RunLog | None = None) -> list[dict]:
    plan = []  # (init, fraction, seed, backbone file, staged metrics path)
    for init in inits(params):
        weights = backbone_file(pretrained, init, task)
        if weights is not None and not weights.is_file():
            raise HcmocoError(f"{weights}: backbone file not found (finetune.inits names {init!r})")
        staging = checkpoint_dir(out / f"init~{init}", {
            "finetune": params["finetune"], "preset": params["pretrain"]["backbone"], "task": task, "init": init},
            {"data": data, "splits": splits, "backbone": weights}, "hcmoco.train.grid")
        plan += [(init, f, s, weights, cell_dir(staging, f, s) / "metrics.json") for f, s in finetune_cells(params, init, task)]
    results = []
    for i, (init, fraction, seed, weights, target) in enumerate(plan):
        print(f"[{i + 1}/{len(plan)}] {task} init~{init} fraction~{fraction:g} seed~{seed}", flush=True)
        if target.is_file():  # finished before a kill: kept
            if log:
                log.event("cell_reused", init=init, fraction=fraction, seed=seed)
            continue
        metrics = finetune(params, task, init, fraction, seed, data, splits, weights, target,
                           target.with_name("curves"), log)
        results.append(metrics)
        if log:
            log.event("cell", **{k: metrics[k] for k in ("init", "fraction", "seed", "metric", "test", "val", "seconds")})
    with atomic_directory(out) as tmp:
        for init, fraction, seed, _, target in plan:
            shutil.copytree(target.parent, cell_dir(tmp / f"init~{init}", fraction, seed))
    for *_, target in plan:
        clear_checkpoints(target.parents[2])
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--task", required=True, help="downstream task (params splits.tasks)")
    parser.add_argument("--pretrained", required=True, help="folder of the pre-training outputs (finetune.inits)")
    parser.add_argument("--data", required=True, help="processed domain directory (train/ and test/)")
    parser.add_argument("--splits", required=True, help="the task's split directory")
    parser.add_argument("--out", required=True, help="output directory of the grid")

    def body(args, params):
        task_domain(params, args.task)
        out = Path(args.out)
        log = RunLog(log_path_for(out), params, task=args.task)
        run_grid(params, args.task, Path(args.pretrained), Path(args.data), Path(args.splits), out, log)
        cells = sum(len(finetune_cells(params, init, args.task)) for init in inits(params))
        log.event("done", cells=cells)
        print(f"{out}: {cells} cells")

    return run_cli(parser, body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
