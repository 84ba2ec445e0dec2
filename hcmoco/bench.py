"""Benchmarks (ratios and rates measured in one run; never timed assertions in tests).

    python -m hcmoco.bench render [--resolution 64] [--samples 128]
    python -m hcmoco.bench pretrain [--profile default] [--steps 8]
    python -m hcmoco.bench calibrate [--profile default] [--points params/calibration.yaml] [--only P ...]

`render`: SynthHuman samples per second on one core, per domain.
`pretrain`: on the profile's pre-training data, the median time of a full stage-2 step
(encoders, heads, all losses, bank, optimiser) against a step of the two backbones alone
(forward, backward, optimiser) on the same batch, and the share of a step spent loading data.
`calibrate`: the calibration study (hcmoco/calibration.py): per operating point and task,
scratch fine-tuned at 100% labels, test metric and wall time.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Sequence

import numpy as np


def bench_render(resolution: int, samples: int) -> dict[str, float]:
    from hcmoco.synth import DOMAINS, render_batch

    rates = {}
    for domain in DOMAINS:
        render_batch(domain, 0, "train", np.arange(4), resolution, {"train": 10, "test": 2})  # warm-up
        start = time.perf_counter()
        for lo in range(0, samples, 32):
            render_batch(domain, 0, "train", np.arange(lo, min(lo + 32, samples)), resolution,
                         {"train": 10, "test": 2})
        rates[domain] = samples / (time.perf_counter() - start)
    return rates


def bench_pretrain(params: dict, data_root: str, steps: int) -> dict[str, float]:
    import torch

    from hcmoco.losses import MemoryBank
    from hcmoco.train.pretrain import build_model, make_optimizer, step_losses
    from hcmoco.processed.pretrain_data import PretrainingData

    cfg = params["pretrain"]
    data = PretrainingData([f"{data_root}/synth_ntu/train", f"{data_root}/synth_mpii/train"])
    model = build_model(cfg, data.num_joints).to(memory_format=torch.channels_last)
    bank = MemoryBank(len(data), cfg["embed_dim"]) if cfg["sample_contrast"] == "bank" else None
    opt = make_optimizer(cfg, model.parameters())
    backbone_opt = make_optimizer(cfg, [*model.rgb_encoder.parameters(), *model.depth_encoder.parameters()])
    weights = params["pretrain"]["variants"]["hcmoco"]
    times = {"data": [], "full_step": [], "backbones": []}
    for step in range(steps + 1):
        t0 = time.perf_counter()
        batch = data.batch(data.draw(cfg["seed"], step, cfg["batch_size"]))
        t1 = time.perf_counter()
        terms, g = step_losses(model, bank, batch, weights, cfg, torch.Generator().manual_seed(step))
        opt.zero_grad()
        sum(terms.values()).backward()
        opt.step()
        if bank is not None:
            bank.update(batch["index"], g, {"depth": batch["has_depth"]})
        t2 = time.perf_counter()
        # the two backbones alone on the same batch (depth only where there is depth)
        depth = batch["depth"][batch["has_depth"]]
        feats = model.rgb_encoder(batch["rgb"]) + model.depth_encoder(depth)
        backbone_opt.zero_grad()
        sum(f.mean() for f in feats).backward()
        backbone_opt.step()
        t3 = time.perf_counter()
        if step > 0:  # step 0 warms up kernels
            times["data"].append(t1 - t0)
            times["full_step"].append(t2 - t1)
            times["backbones"].append(t3 - t2)
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {"batch_size": cfg["batch_size"], "data_s": med["data"], "full_step_s": med["full_step"],
            "backbones_s": med["backbones"], "full_over_backbones": med["full_step"] / med["backbones"],
            "data_fraction": med["data"] / (med["data"] + med["full_step"]),
            "samples_per_s": cfg["batch_size"] / (med["data"] + med["full_step"])}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    render = sub.add_parser("render")
    render.add_argument("--resolution", type=int, default=64)
    render.add_argument("--samples", type=int, default=128)
    pre = sub.add_parser("pretrain")
    pre.add_argument("--params", default="params/params.yaml")
    pre.add_argument("--profile", default=None)
    pre.add_argument("--steps", type=int, default=8)
    cal = sub.add_parser("calibrate", help="scratch at 100%% labels per task and operating point (metric vs time)")
    cal.add_argument("--params", default="params/params.yaml")
    cal.add_argument("--profile", default=None)
    cal.add_argument("--points", default="params/calibration.yaml", help="operating points (dotted keys per name)")
    cal.add_argument("--only", nargs="+", help="these points only")
    cal.add_argument("--tasks", nargs="+", default=None, help="default: every task of the registry (hcmoco.tasks)")
    cal.add_argument("--work", default="data/calibration", help="cache of data, splits and runs")
    cal.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    cal.add_argument("--out", help="also write the table (Markdown) and the rows (JSON) beside it")
    args = parser.parse_args(argv)
    if args.what == "calibrate":
        return _calibrate(args)
    if args.what == "render":
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        for domain, rate in bench_render(args.resolution, args.samples).items():
            print(f"{domain:16s} {rate:7.1f} samples/s on one core at {args.resolution} px")
    else:
        import torch

        from hcmoco.config import load_params

        params = load_params(args.params, args.profile)
        torch.set_num_threads(len(os.sched_getaffinity(0)))
        result = bench_pretrain(params, f"data/{params['profile']}/synth", args.steps)
        for key, value in result.items():
            print(f"{key:20s} {value:.4g}")
    return 0


def _calibrate(args) -> int:
    from pathlib import Path

    from hcmoco.calibration import calibrate, read_points, table
    from hcmoco.config import load_params
    from hcmoco.errors import HcmocoError

    try:
        params = load_params(args.params, args.profile)
        points = read_points(Path(args.points))
        if unknown := sorted(set(args.only or []) - set(points)):
            raise HcmocoError(f"--only: {unknown[0]!r} is not a point of {args.points}")
        points = {k: v for k, v in points.items() if not args.only or k in args.only}
        from hcmoco.tasks import TASKS
        rows = calibrate(params, points, args.tasks or list(TASKS), Path(args.work), args.workers)
    except HcmocoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    text = table(rows, points)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
        Path(args.out).with_suffix(".json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
