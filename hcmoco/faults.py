"""Fault campaign: random SIGKILLs of a whole workflow run, each followed by the documented
recovery, and the final results compared with an uninterrupted run.

    python -m hcmoco.faults --profile smoke --rounds 2 --kills 5 [--seed 0] [--work /tmp/faults]

Each round clones the repository's committed HEAD into a fresh folder and runs
`snakemake --workflow-profile workflow/profiles/local --cores 2 --config profile=P`; at a random
moment the whole process group (Snakemake and its jobs) gets SIGKILL, as from a power loss or
the OOM killer. The recovery is the one the README gives: `snakemake --unlock`, then the same
command again, which may itself be killed by the round's next kill (kills fall at random
times, spread over about one uninterrupted run). After the round's last kill
the run goes to the end. A kill is survived when its recovery runs on without an error of its
own; a round is correct when its tables are byte-identical to the reference run's and every
metrics file equals the reference's apart from timings and the resume step.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

from hcmoco.config import REPO_ROOT

VOLATILE = {"seconds", "git", "resumed_from", "samples_per_s", "data_wait_fraction", "precision_why"}


def clone(dst: Path, profile: str, commit: str) -> Path:
    """A fresh clone at `commit` (every round runs the code of the reference run)."""
    shutil.rmtree(dst, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(dst)], check=True)
    subprocess.run(["git", "-C", str(dst), "checkout", "-q", commit], check=True)
    params = dst / "params/params.yaml"
    params.write_text(params.read_text().replace("profile: default", f"profile: {profile}", 1))
    return dst


def snakemake(repo: Path, profile: str, log) -> subprocess.Popen:
    return subprocess.Popen(["snakemake", "--workflow-profile", "workflow/profiles/local", "--cores", "2",
                             "--config", f"profile={profile}"], cwd=repo, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # its own process group: the kill takes every job


def outcome(repo: Path, profile: str) -> dict[str, object]:
    """Tables byte for byte; metrics files without timings and resume steps."""
    root = repo / "results" / profile
    out: dict[str, object] = {str(p.relative_to(root)): p.read_bytes() for p in sorted((root / "tables").iterdir())}
    for path in sorted(root.rglob("metrics.json")):
        value = json.loads(path.read_text())
        out[str(path.relative_to(root))] = {k: v for k, v in value.items() if k not in VOLATILE} \
            if isinstance(value, dict) else value
    return out


def run_round(repo: Path, profile: str, kills: int, rng: random.Random, span: float, log) -> list[dict]:
    events = []
    for k in range(kills + 1):
        if k:
            unlock = subprocess.run(["snakemake", "--unlock", "--config", f"profile={profile}"], cwd=repo,
                                    stdout=log, stderr=subprocess.STDOUT)
            events[-1]["unlock_rc"] = unlock.returncode
        proc = snakemake(repo, profile, log)
        if k == kills:
            rc = proc.wait()
            events.append({"final_rc": rc})
            break
        # the kills spread over about one uninterrupted run's time (each re-run resumes)
        delay = rng.uniform(2.0, 2.0 * span / (kills + 1))
        try:
            rc = proc.wait(timeout=delay)  # finished before the kill: the round is over
            events.append({"delay_s": round(delay, 1), "finished_first": True, "final_rc": rc})
            break
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            events.append({"delay_s": round(delay, 1), "killed": True})
    return events


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--kills", type=int, default=5, help="kills per round")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default="/tmp/hcmoco-faults")
    args = parser.parse_args(argv)
    work, rng = Path(args.work), random.Random(args.seed)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    work.mkdir(parents=True, exist_ok=True)
    with open(work / "reference.log", "w") as log:
        ref_repo = clone(work / "reference", args.profile, commit)
        start = time.perf_counter()
        if snakemake(ref_repo, args.profile, log).wait() != 0:
            print(f"error: the uninterrupted run failed; see {work / 'reference.log'}", file=sys.stderr)
            return 1
        span = time.perf_counter() - start
    reference = outcome(ref_repo, args.profile)
    print(f"reference run: {span:.0f} s, {len(reference)} files compared", flush=True)
    tried = survived = correct = 0
    for r in range(args.rounds):
        repo = clone(work / f"round{r}", args.profile, commit)
        with open(work / f"round{r}.log", "w") as log:
            events = run_round(repo, args.profile, args.kills, rng, span, log)
        kills = [e for e in events if e.get("killed")]
        ok_final = events[-1].get("final_rc") == 0
        same = ok_final and outcome(repo, args.profile) == reference
        tried += len(kills)
        survived += sum(1 for e in kills if e.get("unlock_rc") == 0) if ok_final else 0
        correct += same
        print(f"round {r}: {len(kills)} kills at {[e['delay_s'] for e in kills]} s, final run rc "
              f"{events[-1].get('final_rc')}, results {'identical to' if same else 'DIFFERENT from'} the reference",
              flush=True)
    print(f"kills survived / tried: {survived} / {tried}; rounds identical to the reference: {correct} / {args.rounds}")
    return 0 if survived == tried and correct == args.rounds else 1


if __name__ == "__main__":
    raise SystemExit(main())
