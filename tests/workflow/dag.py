"""Read the jobs of both workflow tools: (command, inputs, outputs) per job."""
from __future__ import annotations

import subprocess
from pathlib import Path


def snakemake_jobs(repo: Path, env: dict, *extra: str) -> dict[str, dict]:
    """Dry-run the whole DAG and parse each job's command, inputs and outputs."""
    out = subprocess.run(["snakemake", "-n", "-p", "--nocolor", "--forceall", *extra], cwd=repo, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:] + out.stdout[-3000:]
    jobs, current = {}, None
    for line in (out.stdout + out.stderr).splitlines():
        if line.startswith(("rule ", "localrule ")):
            current = {"rule": line.split()[1].rstrip(":"), "inputs": set(), "outputs": set()}
        elif current is not None and line.startswith("    input: "):
            current["inputs"] = set(line[len("    input: "):].split(", "))
        elif current is not None and line.startswith("    output: "):
            current["outputs"] = set(line[len("    output: "):].split(", "))
        elif current is not None and line.startswith("Shell command: "):
            cmd = " ".join(line[len("Shell command: "):].split())
            if cmd != "None":  # the target rule `all` runs nothing
                jobs[cmd] = current
            current = None
    return jobs


def dvc_jobs(repo: Path) -> dict[str, dict]:
    """Every resolved DVC stage (foreach expanded): command, file deps, outs, params keys."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    jobs = {}
    with Repo(str(repo)) as dvc_repo:
        for stage in dvc_repo.index.stages:
            files = {str(d.def_path) for d in stage.deps if not isinstance(d, ParamsDependency)}
            params = {str(d.def_path): set(d.params) for d in stage.deps if isinstance(d, ParamsDependency)}
            jobs[" ".join(stage.cmd.split())] = {"stage": stage.addressing, "inputs": files,
                                                 "outputs": {str(o.def_path) for o in stage.outs},
                                                 "params": params}
    return jobs
