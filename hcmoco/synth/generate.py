"""Render one SynthHuman domain (train and test splits) into the processed format.

    python -m hcmoco.synth.generate --profile default --domain synth_ntu --out data/default/synth/synth_ntu

Shards are rendered in parallel worker processes; shard boundaries depend on the sizes alone
and every sample is a pure function of (seed, domain, split, index), so the bytes written do not
depend on the number of workers. The domain directory appears only once complete.
"""
from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from hcmoco.atomic import atomic_directory
from hcmoco.cli_common import base_parser, run_cli
from hcmoco.config import ParamsError
from hcmoco.processed.shards import SplitWriter, shard_ranges
from hcmoco.runlog import RunLog, available_workers, log_path_for

SPLITS = ("train", "test")
RENDER_CHUNK = 64  # samples per render_batch call: bounds worker memory, never changes results


def _render_shard(job: tuple) -> dict[str, np.ndarray]:
    from hcmoco.synth import render_batch

    domain, seed, split, start, stop, resolution, subjects = job
    chunks = [render_batch(domain, seed, split, np.arange(lo, min(lo + RENDER_CHUNK, stop)),
                           resolution, subjects)
              for lo in range(start, stop, RENDER_CHUNK)]
    return {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}


def _init_worker() -> None:
    # one process per core: keep numpy's own thread pools out of the way
    os.environ["OMP_NUM_THREADS"] = os.environ["OPENBLAS_NUM_THREADS"] = "1"


def split_meta(domain: str, split: str, synth: dict) -> dict:
    from hcmoco.synth import DOMAINS, LAYOUTS

    spec = DOMAINS[domain]
    sizes = synth["domains"][domain]
    return {"domain": domain, "split": split, "source": f"SynthHuman ({spec.source})",
            "layout": spec.layout, "joints": LAYOUTS[spec.layout], "depth_kind": spec.depth_kind,
            "resolution": synth["resolution"],
            "generator": {"name": "synthhuman", "seed": synth["seed"],
                          "subjects": {"train": sizes["subjects_train"], "test": sizes["subjects_test"]}}}


def generate_domain(domain: str, synth: dict, out: Path, workers: int, log: RunLog | None = None) -> None:
    """Render both splits of `domain` into `out/{train,test}` (atomically: all or nothing)."""
    from hcmoco.processed.densepose_coco import write_densepose_coco
    from hcmoco.synth import DOMAINS

    if domain not in DOMAINS:
        raise ParamsError(f"--domain: unknown domain {domain!r} (known: {', '.join(DOMAINS)})")
    sizes = synth["domains"][domain]
    subjects = {"train": sizes["subjects_train"], "test": sizes["subjects_test"]}
    ctx = mp.get_context("fork")
    with atomic_directory(out) as tmp:
        with ctx.Pool(workers, initializer=_init_worker) as pool:
            for split in SPLITS:
                jobs = [(domain, synth["seed"], split, a, b, synth["resolution"], subjects)
                        for a, b in shard_ranges(sizes[split], synth["shard_size"])]
                with SplitWriter(tmp / split, split_meta(domain, split, synth)) as writer:
                    bar = tqdm(total=sizes[split], desc=f"{domain}/{split}", unit="sample", leave=False)
                    for arrays in pool.imap(_render_shard, jobs):
                        writer.add_shard(arrays)
                        bar.update(len(arrays["subject"]))
                    bar.close()
                if "iuv" in DOMAINS[domain].fields:
                    write_densepose_coco(tmp / split, synth["densepose_points_per_part"], synth["seed"])
                if log:
                    log.event("split_done", split=split, samples=sizes[split], seconds=round(log.elapsed(), 3))


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--domain", required=True, help="SynthHuman domain, e.g. synth_ntu")
    parser.add_argument("--out", required=True, help="output directory of the domain")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: the job's cores)")

    def body(args, params):
        workers = args.workers or available_workers()
        log = RunLog(log_path_for(args.out), params, domain=args.domain, workers=workers)
        generate_domain(args.domain, params["synth"], Path(args.out), workers, log)
        log.event("done", seconds=round(log.elapsed(), 3))

    return run_cli(parser, body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
