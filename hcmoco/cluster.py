"""Jobs SLURM killed for their limits, told in the workflow's terms: which resource to raise.

SLURM ends a job that outgrows what it asked for. Past its time limit the job is cancelled
(state TIMEOUT; its log says `CANCELLED ... DUE TO TIME LIMIT`). Over its memory it is killed:
state OUT_OF_MEMORY where cgroups enforce memory; where slurmd's accounting enforces it
(JobAcctGatherParams=OverMemoryKill) the step is killed, the job ends FAILED and its log says
`Exceeded job memory limit`. A resubmitted job fails the same way, so `retries` cannot help:
the rule's `mem_mb` or `runtime` has to be raised.

snakemake-executor-plugin-slurm writes each failed job into Snakemake's log: an `Error in rule`
block with the SLURM job id and state and the job's SLURM log file. `limit_failures` reads that
log (and the SLURM logs it names) and returns one line per rule killed for a limit. The
Snakefile's `onerror` handler prints them at the end of a failed run;
`python -m hcmoco.cluster <snakemake log>` prints them for an earlier run
(`.snakemake/log/*.snakemake.log`).
"""
from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

PROFILE_FILE = "workflow/profiles/slurm/config.yaml"

_BLOCK = re.compile(r"^Error in rule (\w+):\n((?:[ \t]+.*\n?)*)", re.M)
_STATE = re.compile(r"SLURM-job '([\w.]+)' failed, SLURM status is: '(\w+)'")
_LOG = re.compile(r"^\s+log: (.*?)(?: \(check log file\(s\) for error details\))?$", re.M)
MEMORY_STATES = {"OUT_OF_MEMORY"}
TIME_STATES = {"TIMEOUT"}
# what slurmstepd writes into a job's output when it kills the job for a limit
MEMORY_MARKERS = ("exceeded job memory limit", "exceeded memory limit", "oom-kill event", "oom_kill event",
                  "out of memory")
TIME_MARKERS = ("due to time limit",)
RESOURCE = {"memory": ("mem_mb", "memory", "MB"), "time": ("runtime", "time limit", "minutes")}


@dataclass
class LimitFailure:
    rule: str
    kind: str                      # "memory" or "time"
    jobs: list[str] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    current: int | None = None     # the resource's value in the killed job, when its log shows it

    def message(self) -> str:
        name, what, unit = RESOURCE[self.kind]
        now = f" ({name}={self.current} {unit})" if self.current is not None else ""
        suggest = f"{2 * self.current}" if self.current is not None else f"<{unit}>"
        jobs = ", ".join(f"{j} ({s})" for j, s in zip(self.jobs, self.states))
        return (f"rule {self.rule}: SLURM killed job {jobs} for exceeding its {what}{now}: raise {name} of "
                f"{self.rule} (set-resources: {self.rule}: {name} in {PROFILE_FILE} or your copy of it, "
                f"or --set-resources {self.rule}:{name}={suggest})")


def _slurm_logs(block: str, job: str) -> list[Path]:
    match = _LOG.search(block)
    if not match:
        return []
    return [Path(p) for p in match.group(1).split(", ") if Path(p).name == f"{job}.log"]


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _kind(state: str, slurm_log: str) -> str | None:
    text = slurm_log.lower()
    if state in MEMORY_STATES or any(m in text for m in MEMORY_MARKERS):
        return "memory"
    if state in TIME_STATES or any(m in text for m in TIME_MARKERS):
        return "time"
    return None


def _current(kind: str, slurm_log: str) -> int | None:
    """The resource's value printed by Snakemake inside the job (`resources: ..., mem_mb=6000, ...`)."""
    name = RESOURCE[kind][0]
    found = re.findall(rf"^\s+resources: .*?\b{name}=(\d+)\b", slurm_log, re.M)
    return int(found[-1]) if found else None


def limit_failures(snakemake_log: str) -> list[LimitFailure]:
    """Rules whose SLURM jobs were killed for their memory or time limit, in the order of the log."""
    found: dict[tuple[str, str], LimitFailure] = {}
    for rule, block in _BLOCK.findall(snakemake_log):
        state = _STATE.search(block)
        if not state:
            continue  # not a SLURM job's failure (e.g. the command's own error inside a job)
        job, status = state.groups()
        logs = "\n".join(_read(p) for p in _slurm_logs(block, job))
        kind = _kind(status, logs)
        if kind is None:
            continue
        failure = found.setdefault((rule, kind), LimitFailure(rule, kind))
        failure.jobs.append(job)
        failure.states.append(status)
        failure.current = _current(kind, logs) or failure.current
    return list(found.values())


def report_limits(log: str | Path | Sequence[str | Path] | None, stream=None) -> list[str]:
    """Print (to stderr) one line per rule killed for a limit, from Snakemake's log file(s) (the
    Snakefile's `onerror` handler passes its `log`, a list of paths)."""
    paths = [log] if isinstance(log, (str, Path)) else list(log or [])
    text = "\n".join(_read(Path(p)) for p in paths if Path(p).is_file())
    lines = [f.message() for f in limit_failures(text)]
    for line in lines:
        print(line, file=stream or sys.stderr)
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", help="a Snakemake log (.snakemake/log/<time>.snakemake.log)")
    args = parser.parse_args(argv)
    if not Path(args.log).is_file():
        print(f"error: {args.log}: no such Snakemake log", file=sys.stderr)
        return 2
    if not report_limits(args.log, sys.stdout):
        print(f"{args.log}: no SLURM job was killed for its memory or time limit")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
