"""Data-efficient splits: a subject-disjoint validation carve and nested, stratified label fractions.

    python -m hcmoco.processed.splits --profile default --task parsing \
        --data data/default/synth/synth_h36m --out data/default/splits/parsing

Writes `val.json` (held-out training subjects, for model selection), `test.json` (the whole test
split) and `fraction~<f>/seed~<s>.json` for every fraction and seed. For a given seed the subsets
are prefixes of one stratified ordering, so the 1% subset lies inside the 10% subset, and so on.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from hcmoco.atomic import atomic_directory
from hcmoco.cli_common import base_parser, run_cli
from hcmoco.config import ParamsError, task_domain
from hcmoco.processed.shards import ProcessedSplit
from hcmoco.errors import HcmocoError
from hcmoco.runlog import RunLog, log_path_for


def carve_validation(subjects: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hold out whole subjects: returns (pool indices, validation indices), both sorted.

    ceil(val_fraction * #subjects) subjects go to validation, at least one, and at least one
    subject stays in the pool.
    """
    people = np.unique(subjects)
    if len(people) < 2:
        raise ParamsError(f"splits.val_fraction: need >= 2 training subjects to carve a validation split, "
                          f"found {len(people)}")
    n_val = min(max(1, math.ceil(val_fraction * len(people))), len(people) - 1)
    rng = np.random.default_rng([seed, 0x5A1])
    val_people = rng.permutation(people)[:n_val]
    is_val = np.isin(subjects, val_people)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def stratified_order(pool: np.ndarray, subjects: np.ndarray, seed: int) -> np.ndarray:
    """Order `pool` so that every prefix is balanced over subjects.

    Each subject's samples are shuffled, the subjects are shuffled, then samples are dealt
    round-robin (one per subject per round): a prefix of length n holds floor or ceil of
    n / #subjects samples of each subject (while a subject has samples left).
    """
    rng = np.random.default_rng([seed, 0x0DE])
    people = rng.permutation(np.unique(subjects[pool]))
    queues = [rng.permutation(pool[subjects[pool] == p]) for p in people]
    rounds = max(len(q) for q in queues)
    dealt = [q[r] for r in range(rounds) for q in queues if r < len(q)]
    return np.asarray(dealt, dtype=np.int64)


def subset_size(fraction: float, pool_size: int) -> int:
    """round(fraction * pool), at least one sample; monotone in fraction, so subsets nest."""
    if not 0 < fraction <= 1:
        raise ParamsError(f"splits.fractions: {fraction} outside (0, 1]")
    return max(1, min(pool_size, int(round(fraction * pool_size))))


def fraction_file(out: Path, fraction: float, seed: int) -> Path:
    return out / f"fraction~{fraction:g}" / f"seed~{seed}.json"


def write_splits(task: str, domain: str, data: Path, splits_cfg: dict, out: Path) -> dict:
    """Write all split files of one task into `out` (atomically); returns a summary."""
    train = ProcessedSplit(data / "train")
    if train.index["domain"] != domain:
        raise ParamsError(f"{data / 'train' / 'index.json'}: domain {train.index['domain']!r}, "
                          f"but task {task!r} uses {domain!r}")
    train_subjects = train.field("subject")
    n_test = len(ProcessedSplit(data / "test"))
    pool, val = carve_validation(train_subjects, splits_cfg["val_fraction"], splits_cfg["seed"])
    header = {"task": task, "domain": domain, "data": str(data)}

    def dump(path: Path, split: str, indices: np.ndarray, **extra) -> None:
        record = {**header, "split": split, **extra, "num_samples": int(len(indices)),
                  "num_subjects": int(len(np.unique(train_subjects[indices]))) if split != "test" else None,
                  "indices": [int(i) for i in np.sort(indices)]}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))

    with atomic_directory(out) as tmp:
        dump(tmp / "val.json", "val", val)
        dump(tmp / "test.json", "test", np.arange(n_test))
        for seed in splits_cfg["seeds"]:
            order = stratified_order(pool, train_subjects, seed)
            for fraction in splits_cfg["fractions"]:
                chosen = order[:subset_size(fraction, len(order))]
                dump(fraction_file(tmp, fraction, seed), "train", chosen, fraction=fraction, seed=seed)
    return {"pool": int(len(pool)), "val": int(len(val)), "test": n_test}


def load_split(path: str | Path, data: ProcessedSplit | None = None) -> np.ndarray:
    """Sample indices of a split file written by `write_splits`; with `data` (the processed
    split they index), each is checked to lie in it, so a split made for other data fails
    here, naming the split file, rather than mid-training."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: split file not found")
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise HcmocoError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(record, dict) or "indices" not in record:
        raise HcmocoError(f"{path}: indices: missing (not a split file written by hcmoco.processed.splits)")
    indices = record["indices"]
    if not isinstance(indices, list) or not all(type(i) is int for i in indices):
        raise HcmocoError(f"{path}: indices: not a list of integers")
    try:
        indices = np.asarray(indices, dtype=np.int64)
    except OverflowError:
        raise HcmocoError(f"{path}: indices: a value does not fit in 64 bits") from None
    if data is not None and indices.size and (indices.min() < 0 or indices.max() >= len(data)):
        bad = int(indices[(indices < 0) | (indices >= len(data))][0])
        raise HcmocoError(f"{path}: indices: {bad} is outside the {len(data)} samples of {data.path} "
                          f"(a split made for other data? write the splits again)")
    return indices


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--task", required=True, help="downstream task, e.g. parsing")
    parser.add_argument("--data", required=True, help="processed domain directory (with train/ and test/)")
    parser.add_argument("--out", required=True, help="output directory of the task's split files")

    def body(args, params):
        domain = task_domain(params, args.task)
        log = RunLog(log_path_for(args.out), params, task=args.task)
        summary = write_splits(args.task, domain, Path(args.data), params["splits"], Path(args.out))
        log.event("done", **summary)
        print(f"{args.task}: pool {summary['pool']}, val {summary['val']}, test {summary['test']}")

    return run_cli(parser, body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
