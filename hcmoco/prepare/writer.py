"""Shared machinery of the real-data preprocessors: samples into shards, and their CLI.

A preprocessor lists its work as jobs (usually one source image each) and a function that
turns a job into zero or more samples (dicts of per-sample arrays). `write_split` runs the
jobs, in worker processes when asked, and cuts the samples into shards in job order, so the
bytes written do not depend on the number of workers.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from hcmoco.processed.shards import SplitWriter
from hcmoco.errors import HcmocoError
from hcmoco.runlog import RunLog, available_workers, log_path_for

SHARD_SIZE = 256
Sample = dict[str, np.ndarray]


def stack_samples(samples: list[Sample]) -> dict[str, np.ndarray]:
    return {k: np.stack([s[k] for s in samples]) for k in samples[0]}


def write_split(out: Path, meta: dict, jobs: Sequence, make: Callable[[object], list[Sample]],
                what: str, shard_size: int = SHARD_SIZE, workers: int = 1) -> int:
    """Write the samples of `jobs` (make(job) -> samples) as a processed split at `out`.

    `what` names the raw input in the error raised when no sample is usable. Returns the
    number of samples written.
    """
    def produce() -> Iterable[list[Sample]]:
        if workers <= 1 or len(jobs) < 2:
            yield from map(make, jobs)
            return
        with mp.get_context("fork").Pool(workers) as pool:
            yield from pool.imap(make, jobs, chunksize=4)

    total, pending = 0, []
    with SplitWriter(out, meta) as writer:
        for samples in produce():
            pending += samples
            while len(pending) >= shard_size:
                writer.add_shard(stack_samples(pending[:shard_size]))
                total, pending = total + shard_size, pending[shard_size:]
        if pending:
            writer.add_shard(stack_samples(pending))
            total += len(pending)
        if total == 0:
            raise HcmocoError(f"{what}: no usable sample for split {meta.get('split')!r}")
    return total


def prepare_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--raw", required=True, help="directory of the raw dataset (layout in the module doc)")
    parser.add_argument("--out", required=True, help="output directory: OUT/train and OUT/test are written")
    parser.add_argument("--resolution", type=int, required=True, help="side of the square crops, pixels")
    parser.add_argument("--shard-size", type=int, default=SHARD_SIZE, help="samples per shard (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: the job's cores)")
    return parser


def run_prepare_cli(parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace, int], dict],
                    argv: Sequence[str] | None = None) -> int:
    """Parse and run body(args, workers) -> counts; expected failures: one `error:` line, exit 2.

    A JSONL log (options, git revision, sample counts) is written beside the output
    (hcmoco.runlog.log_path_for).
    """
    args = parser.parse_args(argv)
    try:
        if args.resolution < 8 or args.shard_size < 1:
            raise HcmocoError("--resolution must be >= 8 and --shard-size >= 1")
        workers = args.workers or available_workers()
        log = RunLog(log_path_for(args.out), dict(vars(args)), workers=workers)
        counts = body(args, workers)
        log.event("done", samples=counts, seconds=round(log.elapsed(), 3))
    except HcmocoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def check_resolution(resolution: int) -> None:
    if int(resolution) < 8:
        raise HcmocoError(f"resolution must be >= 8, got {resolution}")


def require_file(path: Path, what: str) -> Path:
    if not Path(path).is_file():
        raise HcmocoError(f"{path}: missing ({what})")
    return Path(path)
