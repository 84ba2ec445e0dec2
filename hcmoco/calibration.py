"""The calibration study of a profile: scratch at 100% labels on each task, per operating point.

    python -m hcmoco.bench calibrate --profile default [--points params/calibration.yaml] [--only base r96]

An operating point overlays dotted params keys on the profile (resolution, backbone preset,
fine-tuning steps, learning rate, class weights, ...). For each point and task the task's domain
is rendered and split (cached by the content of the params they read), then `scratch` is
fine-tuned on the whole training pool (fraction 1.0, seed 0), selected on validation and tested
once, exactly as a grid cell. Runs go to a process pool (one thread each, `--workers` at once);
the table gives the test metric and the run's wall time. The default profile's sizes were
chosen from this table (params/README.md).
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import yaml

from hcmoco.config import ParamsError, check_references, get, validate


def _metric_label(task: str) -> str:
    """The task's main metric as its tables name it (hcmoco.tasks)."""
    from hcmoco.tasks import get as get_task
    return get_task(task).metrics[0][1]


def overlay(params: dict, point: dict, name: str) -> dict:
    """The profile's params with the point's dotted keys set; validated like any params."""
    out = copy.deepcopy(params)
    for dotted, value in point.items():
        get(out, dotted)  # an unknown key is one ParamsError naming it
        *parents, last = dotted.split(".")
        node = out
        for part in parents:
            node = node[part]
        node[last] = value
    source = f"calibration point {name}"
    validate(out, source)
    check_references(out, source)
    return out


def read_points(path: Path) -> dict[str, dict]:
    try:
        points = yaml.safe_load(Path(path).read_text())["points"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as err:
        raise ParamsError(f"{path}: not a calibration file with `points` ({err})") from None
    if not isinstance(points, dict) or not all(isinstance(v, dict) for v in points.values()):
        raise ParamsError(f"{path}: points: a mapping of name -> {{dotted key: value}}")
    return points


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def prepare(params: dict, task: str, work: Path) -> tuple[Path, Path]:
    """Render the task's domain and write its splits, once per content of the params they read."""
    from hcmoco.synth.generate import generate_domain
    from hcmoco.processed.splits import write_splits

    domain = params["splits"]["tasks"][task]["domain"]
    synth = {k: v for k, v in params["synth"].items() if k != "domains"}
    spec = params["synth"]["domains"][domain]
    data = work / "data" / _digest(synth, spec) / domain
    if not (data / "test/index.json").is_file():
        generate_domain(domain, params["synth"], data, workers=2)
    splits = work / "splits" / _digest(synth, spec, params["splits"], task) / task
    if not (splits / "test.json").is_file():
        write_splits(task, domain, data, params["splits"], splits)
    return data, splits


def run_point(job: tuple[str, str, dict, str, str, str]) -> dict:
    """One (point, task): scratch at 100% labels, seed 0; returns the metrics (cached on disk)."""
    name, task, params, data, splits, out = job
    from hcmoco.train.finetune import finetune

    out = Path(out)
    if not out.is_file():
        finetune(params, task, "scratch", 1.0, 0, Path(data), Path(splits), None, out, None)
    metrics = json.loads(out.read_text())
    return {"point": name, "task": task, "metric": _metric_label(task), "test": metrics["test"],
            "val": metrics["val"], "steps": metrics["steps"], "seconds": metrics["seconds"],
            "details": metrics["test_details"]}


def calibrate(params: dict, points: dict[str, dict], tasks: list[str], work: Path, workers: int) -> list[dict]:
    """Every (point, task) run; data are prepared here first, one domain at a time, so that no
    two runs ever render the same folder."""
    jobs = []
    for name, point in points.items():
        p = overlay(params, point, name)
        p["finetune"]["threads"] = 1  # one thread per run: `workers` runs fill the cores
        for task in tasks:
            data, splits = prepare(p, task, work)
            out = work / "runs" / _digest(p["synth"], p["splits"], p["finetune"], p["pretrain"]["backbone"], task)
            jobs.append((name, task, p, str(data), str(splits), str(out / "metrics.json")))
    os.environ["OMP_NUM_THREADS"] = "1"
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run_point, jobs))


def table(rows: list[dict], points: dict[str, dict]) -> str:
    """Markdown: one line per point, test metric (%) and seconds per task."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    head = "| point | settings | " + " | ".join(f"{t} {_metric_label(t)} (s)" for t in tasks) + " |"
    lines = [head, "|" + "---|" * (2 + len(tasks))]
    for name, point in points.items():
        cells = []
        for t in tasks:
            r = next((r for r in rows if r["point"] == name and r["task"] == t), None)
            cells.append("n/a" if r is None or r["test"] is None else f"{100 * r['test']:.1f} ({r['seconds']:.0f})")
        settings = ", ".join(f"{k}={v}" for k, v in point.items()) or "the profile as it is"
        lines.append(f"| {name} | {settings} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
