import json
import shutil
import subprocess
from pathlib import Path

import pytest

TOP_LEVEL_SKIP = {".venv", ".git", "data", "logs", "results", "models", "checkpoints", ".snakemake", ".pytest_cache"}
ANYWHERE_SKIP = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.tmp-*")


def _ignore(root: Path):
    def ignore(directory: str, names: list[str]) -> set[str]:
        skip = set(ANYWHERE_SKIP(directory, names))
        if Path(directory) == root:
            skip |= TOP_LEVEL_SKIP & set(names)
        if Path(directory) == root / ".dvc":
            skip |= {"cache", "tmp"} & set(names)
        return skip
    return ignore


def copy_repo(src: Path, dst: Path, profile: str | None = None) -> Path:
    """A throwaway copy of the working tree (code, params, workflow) as a fresh git repo."""
    shutil.copytree(src, dst, ignore=_ignore(src))
    (dst / "results").mkdir(exist_ok=True)
    if profile:
        params = dst / "params" / "params.yaml"
        params.write_text(params.read_text().replace("profile: default", f"profile: {profile}", 1))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=dst, check=True)
    return dst


@pytest.fixture
def smoke_repo(tmp_path, repo_root) -> Path:
    return copy_repo(repo_root, tmp_path / "repo", profile="smoke")


def run(cmd, cwd, env):
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, " ".join(cmd) + "\n" + out.stdout[-4000:] + out.stderr[-4000:]
    return out.stdout + out.stderr


# timings, the checkout's commit, and the measured bf16 speed behind precision `auto` (the choice stays)
VOLATILE = {"seconds", "git", "samples_per_s", "data_wait_fraction", "precision_why"}


def computed(repo) -> dict[str, object]:
    """Every metrics file of the smoke run without its timings, and the aggregated outputs."""
    out = {}
    for path in sorted((repo / "results/smoke").rglob("*.json")):
        value = json.loads(path.read_text())
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in VOLATILE}
        out[str(path.relative_to(repo))] = value
    for path in sorted((repo / "results/smoke/tables").glob("*.csv")):
        out[str(path.relative_to(repo))] = path.read_text()
    return out


@pytest.fixture(scope="session")
def built(tmp_path_factory, repo_root, venv_env):
    """The smoke DAG run once by Snakemake (2 jobs at a time, local) in a fresh copy, shared by every
    test that compares against a local run."""
    repo = copy_repo(repo_root, tmp_path_factory.mktemp("e2e") / "repo", profile="smoke")
    run(["snakemake", "--cores", "2"], repo, venv_env)
    # what it computed, kept before any test edits params or re-runs stages in the copy
    (repo.parent / "computed.json").write_text(json.dumps(computed(repo)))
    return repo


@pytest.fixture(scope="session")
def built_results(built) -> dict[str, object]:
    """`computed` of the local smoke run, as it was right after the run."""
    return json.loads((built.parent / "computed.json").read_text())
