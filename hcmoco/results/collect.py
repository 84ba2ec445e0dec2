"""Read the metrics of exactly the runs a profile's params define into flat records.

Nothing is globbed: a folder left by a killed job is never read, and a run the params define but
the folder lacks is an error naming the file. Layout read (what the workflow writes):
    finetune/<task>/init~<init>/fraction~<F>/seed~<S>/metrics.json
    frozen/<task>/init~<init>/fraction~<F>/seed~<S>/metrics.json
    versatility/<experiment>/init~<init>/seed~<S>/metrics.json
    pretrain/retrieval.json, pretrain/<run>/curves/history.json
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

from hcmoco.config import cell_dir
from hcmoco.errors import HcmocoError
from hcmoco.tasks import TASKS

# (key, label) of the metrics tabulated per task, the first the paper's main metric; and its title
# (the task definitions, hcmoco.tasks)
TASK_METRICS = {name: list(task.metrics) for name, task in TASKS.items()}
TASK_TITLES = {name: task.title for name, task in TASKS.items()}


def _read(path: Path) -> dict:
    if not path.is_file():
        raise HcmocoError(f"{path}: expected run missing (the params define it; re-run its rule)")
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise HcmocoError(f"{path}: unreadable metrics file ({err})") from None


def _number(value, key: str, path: Path) -> float:
    """A tabulated value must be a finite number: NaN (written as null) is an error, never "n/a"."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise HcmocoError(f"{path}: {key} is {value!r}, not a finite number (a diverged or broken run)")
    return float(value)


def _value(metrics: dict, key: str, path: Path) -> float:
    if key == metrics.get("metric"):
        return _number(metrics.get("test"), "test", path)
    details = metrics.get("test_details", {})
    if key not in details:
        raise HcmocoError(f"{path}: no {key!r} in the metrics (test_details)")
    return _number(details[key], f"test_details.{key}", path)


def _check(metrics: dict, expected: dict, path: Path) -> None:
    for key, value in expected.items():
        if metrics.get(key) != value:
            raise HcmocoError(f"{path}: {key} is {metrics.get(key)!r}, the run's place says {value!r}")


def finetune_records(root: Path, plan: Iterable[tuple[str, str, float, int]], folder: str = "finetune") -> list[dict]:
    """One record per (run, metric) of exactly the planned runs (config.finetune_plan, or
    config.frozen_plan with folder "frozen"): task, init, fraction, seed, metric, value. A
    planned run without its file is an error."""
    records = []
    for task, init, fraction, seed in plan:
        path = cell_dir(root / folder / task, init, seed, fraction) / "metrics.json"
        m = _read(path)
        _check(m, {"task": task, "init": init, "seed": seed}, path)
        for key, _ in TASK_METRICS.get(task, []):
            records.append({"task": task, "init": init, "fraction": float(fraction), "seed": int(seed),
                            "metric": key, "value": _value(m, key, path), "seconds": m.get("seconds")})
    return records


def versatility_records(root: Path, plan: Iterable[tuple[str, str, int]]) -> list[dict]:
    """One record per (run, setting) of exactly the planned runs (config.versatility_plan):
    experiment, init, seed, setting ('rgb->depth', ...), value."""
    records = []
    for experiment, init, seed in plan:
        path = cell_dir(root / "versatility" / experiment, init, seed) / "metrics.json"
        m = _read(path)
        _check(m, {"experiment": experiment, "init": init, "seed": seed}, path)
        for setting, value in m["results"].items():
            records.append({"experiment": experiment, "init": init, "seed": int(seed), "setting": setting,
                            "value": _number(value, f"results.{setting}", path), "seconds": m.get("seconds")})
    return records


def retrieval_records(root: Path) -> list[dict]:
    path = root / "pretrain/retrieval.json"
    if not path.is_file():
        return []
    return [{"model": model, "pair": pair, **stats, "samples": m["samples"]}
            for model, m in _read(path).items() for pair, stats in m["pairs"].items()]


def pretrain_histories(root: Path, runs: Iterable[str]) -> dict[str, list[dict]]:
    """The loss history of each pre-training run named (stage1 and the variants)."""
    return {run: _read(root / "pretrain" / run / "curves/history.json") for run in runs}
