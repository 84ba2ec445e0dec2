"""Writing the real-data preprocessors' output: samples into the shards of the processed
format, the worker processes, and the command line they share.

A preprocessor lists its work as jobs (an image, a video, a frame) and a function that turns a
job into samples (dicts of per-sample arrays). `parallel_map` runs the jobs, in worker
processes when asked, and yields the results in job order, so the bytes written do not depend
on the number of workers. Two writers take the samples: `write_split` writes one split from a
list of jobs; `SplitsWriter` collects the samples of both splits (train/test) as they come,
for preprocessors whose jobs yield samples of either split.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from hcmoco.atomic import atomic_directory
from hcmoco.processed.shards import SplitWriter, stack_samples
from hcmoco.errors import HcmocoError
from hcmoco.runlog import RunLog, available_workers, log_path_for

SHARD_SIZE = 256
SPLITS = ("train", "test")
SAMPLE_LIST = "samples.txt"  # one raw sample id per line, in sample order, beside index.json
Sample = dict[str, np.ndarray]


def write_split(out: Path, meta: dict, jobs: Sequence, make: Callable[[object], list[Sample]],
                what: str, shard_size: int = SHARD_SIZE, workers: int = 1) -> int:
    """Write the samples of `jobs` (make(job) -> samples) as a processed split at `out`.

    `what` names the raw input in the error raised when no sample is usable. Returns the
    number of samples written.
    """
    total, pending = 0, []
    with SplitWriter(out, meta) as writer:
        for samples in parallel_map(make, jobs, workers if len(jobs) > 1 else 1):
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


class SplitsWriter:
    """Collects per-sample dicts into `out/{train,test}` shards, atomically for the whole `out`.

    Each split also gets `samples.txt`: the raw id of every sample, in order (provenance).
    """

    def __init__(self, out: str | Path, meta: dict, shard_size: int):
        if shard_size < 1:
            raise HcmocoError(f"--shard-size must be >= 1, got {shard_size}")
        self.out, self.meta, self.shard_size = Path(out), meta, shard_size
        self._atomic = atomic_directory(self.out)
        self.counts = {s: 0 for s in SPLITS}

    def __enter__(self) -> "SplitsWriter":
        tmp = self._atomic.__enter__()
        self._writers = {s: SplitWriter(tmp / s, {**self.meta, "split": s}) for s in SPLITS}
        for w in self._writers.values():
            w.__enter__()
        self._pending = {s: [] for s in SPLITS}
        self._ids = {s: [] for s in SPLITS}
        return self

    def add(self, split: str, sample_id: str, sample: dict[str, np.ndarray]) -> None:
        self._pending[split].append(sample)
        self._ids[split].append(sample_id)
        self.counts[split] += 1
        if len(self._pending[split]) == self.shard_size:
            self._flush(split)

    def update_meta(self, **items) -> None:
        """Add index entries known only at the end (e.g. fitted calibrations)."""
        for w in self._writers.values():
            w.meta.update(items)

    def _flush(self, split: str) -> None:
        pending = self._pending[split]
        if pending:
            self._writers[split].add_shard(stack_samples(pending))
            self._pending[split] = []

    def _finish(self) -> None:
        empty = [s for s in SPLITS if self.counts[s] == 0]
        if empty:
            raise HcmocoError(f"{self.out}: no samples for split(s) {', '.join(empty)} "
                              f"(check the raw layout and the subject split)")
        for s in SPLITS:
            self._flush(s)
            (self._writers[s].tmp / SAMPLE_LIST).write_text("".join(i + "\n" for i in self._ids[s]))

    def _close(self, exc_type, exc, tb) -> bool | None:
        for w in self._writers.values():
            w.__exit__(exc_type, exc, tb)
        return self._atomic.__exit__(exc_type, exc, tb)

    def __exit__(self, exc_type, exc, tb) -> bool | None:
        if exc_type is None:
            try:
                self._finish()
            except BaseException:
                self._close(*sys.exc_info())
                raise
        return self._close(exc_type, exc, tb)


def parallel_map(func: Callable, jobs: Iterable, workers: int) -> Iterator:
    """`map` in order; with workers > 1 in forked processes (results still in job order)."""
    if workers <= 1:
        yield from map(func, jobs)
        return
    with mp.get_context("fork").Pool(workers, initializer=_single_threaded) as pool:
        yield from pool.imap(func, jobs, chunksize=4)


def _single_threaded() -> None:
    os.environ["OMP_NUM_THREADS"] = os.environ["OPENBLAS_NUM_THREADS"] = "1"


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
