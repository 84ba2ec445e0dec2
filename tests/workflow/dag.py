"""Read the jobs of both workflow tools: (command, inputs, outputs) per job."""
from __future__ import annotations

import os
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


def dvc_jobs(repo: Path, dvcfile: str = "dvc.yaml") -> dict[str, dict]:
    """The resolved stages (foreach expanded) of one pipeline file, by default the root dvc.yaml
    (others, e.g. an exported workflow/dvc/<profile>/dvc.yaml, are left out): command, file deps,
    outs, params keys."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    jobs = {}
    with Repo(str(repo)) as dvc_repo:
        for stage in dvc_repo.index.stages:
            if os.path.relpath(stage.dvcfile.path, dvc_repo.root_dir) != os.path.normpath(dvcfile):
                continue
            files = {str(d.def_path) for d in stage.deps if not isinstance(d, ParamsDependency)}
            params = {str(d.def_path): set(d.params) for d in stage.deps if isinstance(d, ParamsDependency)}
            jobs[" ".join(stage.cmd.split())] = {"stage": stage.addressing, "inputs": files,
                                                 "outputs": {str(o.def_path) for o in stage.outs},
                                                 "params": params}
    return jobs


def assert_same_dag(snake: dict[str, dict], dvc: dict[str, dict]) -> None:
    """The same commands; per command, DVC's deps cover Snakemake's inputs and outputs agree."""
    assert snake, "no Snakemake jobs parsed"
    assert set(snake) == set(dvc), (
        f"only in Snakemake: {sorted(set(snake) - set(dvc))}\nonly in DVC: {sorted(set(dvc) - set(snake))}")
    for cmd, job in snake.items():
        deps = dvc[cmd]["inputs"]
        assert {covering(path, deps) for path in job["inputs"]} == deps, f"{dvc[cmd]['stage']}: inputs differ\n{cmd}"
        assert job["outputs"] == dvc[cmd]["outputs"], f"{dvc[cmd]['stage']}: outputs differ\n{cmd}"


def covering(path: str, deps: set[str]) -> str | None:
    """The DVC dependency that is `path` or a folder holding it (DVC hashes folders by content;
    Snakemake lists the files, since it compares modification times)."""
    for dep in deps:
        if path == dep or path.startswith(dep.rstrip("/") + "/"):
            return dep
    return None
