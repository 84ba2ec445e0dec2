"""Run provenance: a JSONL log per job with the resolved params, git revision and progress.

The log lives under `logs/`, mirroring the job's output path, not inside the output: a
timestamp or revision inside a DVC-tracked output would change its hash on every run.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from hcmoco.config import REPO_ROOT


def git_revision() -> str:
    """HEAD's hash, with '+dirty' when tracked files differ; 'unknown' outside a checkout."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def log_path_for(output: str | Path) -> Path:
    """`data/default/synth/x` -> `logs/data/default/synth/x.jsonl` (relative outputs only)."""
    output = Path(output)
    if output.is_absolute():
        return output.with_name(output.name + ".log.jsonl")
    return Path("logs") / output.with_name(output.name + ".jsonl")


def available_workers() -> int:
    """Cores this job may use: Snakemake exports the job's threads as OMP_NUM_THREADS."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return len(os.sched_getaffinity(0))


class RunLog:
    """Append-only JSON-lines log; each event carries the seconds since the run started."""

    def __init__(self, path: str | Path, params: dict, **context):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.start = time.perf_counter()  # appended to: a killed attempt's events stay above the re-run's
        self.event("start", argv=sys.argv, git=git_revision(), host=platform.node(),
                   python=sys.version.split()[0], params=params, **context)

    def event(self, kind: str, **fields) -> None:
        record = {"event": kind, "t": round(time.perf_counter() - self.start, 3), **fields}
        with self.path.open("a") as fh:
            fh.write(json.dumps(record, default=str) + "\n")

    def elapsed(self) -> float:
        return time.perf_counter() - self.start
