"""Read every run's metrics file under a profile's results folder into flat records.

Layout read (what the workflow writes):
    finetune/<task>/init~<init>/fraction~<F>/seed~<S>/metrics.json
    versatility/<experiment>/init~<init>/seed~<S>/metrics.json
    pretrain/retrieval.json, pretrain/<run>/curves/history.json
"""
from __future__ import annotations

import json
from pathlib import Path

from hcmoco.errors import HcmocoError

# (key, label) of the metrics tabulated per task; the first is the paper's main metric
TASK_METRICS = {
    "parsing": [("miou", "mIoU")],
    "depth_parsing": [("miou", "mIoU")],
    "pose3d": [("map_10cm", "mAP@10cm")],
    "densepose": [("gps_ap", "GPS AP"), ("gpsm_ap", "GPSm AP"), ("mean_gps", "mean GPS")],
}
TASK_TITLES = {"parsing": "RGB human parsing", "depth_parsing": "Depth human parsing",
               "pose3d": "3D pose estimation from depth", "densepose": "DensePose estimation"}


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise HcmocoError(f"{path}: unreadable metrics file ({err})") from None


def _value(metrics: dict, key: str, path: Path) -> float | None:
    if key == metrics.get("metric"):
        return metrics["test"]
    details = metrics.get("test_details", {})
    if key not in details:
        raise HcmocoError(f"{path}: no {key!r} in the metrics (test_details)")
    return details[key]


def finetune_records(root: Path) -> list[dict]:
    """One record per (run, metric): task, init, fraction, seed, metric, value (None = undefined)."""
    records = []
    for path in sorted(root.glob("finetune/*/init~*/fraction~*/seed~*/metrics.json")):
        m = _read(path)
        for key, _ in TASK_METRICS.get(m["task"], []):
            records.append({"task": m["task"], "init": m["init"], "fraction": float(m["fraction"]),
                            "seed": int(m["seed"]), "metric": key, "value": _value(m, key, path),
                            "seconds": m.get("seconds")})
    return records


def versatility_records(root: Path) -> list[dict]:
    """One record per (run, setting): experiment, init, seed, setting ('rgb->depth', ...), value."""
    records = []
    for path in sorted(root.glob("versatility/*/init~*/seed~*/metrics.json")):
        m = _read(path)
        for setting, value in m["results"].items():
            records.append({"experiment": m["experiment"], "init": m["init"], "seed": int(m["seed"]),
                            "setting": setting, "value": value, "seconds": m.get("seconds")})
    return records


def retrieval_records(root: Path) -> list[dict]:
    path = root / "pretrain/retrieval.json"
    if not path.is_file():
        return []
    return [{"model": model, "pair": pair, **stats, "samples": m["samples"]}
            for model, m in _read(path).items() for pair, stats in m["pairs"].items()]


def pretrain_histories(root: Path) -> dict[str, list[dict]]:
    return {p.parent.parent.name: _read(p) for p in sorted(root.glob("pretrain/*/curves/history.json"))}
