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
