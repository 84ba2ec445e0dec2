"""Sharing a run through a DVC remote: the smoke run's outputs are recorded as DVC's, pushed to a
local-path remote, and a second clone pulls them and has nothing to compute."""
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.workflow.conftest import computed, run

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]


def commit(repo: Path, message: str, env) -> None:
    run(["git", "add", "-A"], repo, env)
    run([*GIT, "commit", "--allow-empty", "-qm", message], repo, env)


def files(root: Path) -> dict[str, bytes]:
    """Every file under root (a directory output or a single file) by relative path, with its bytes;
    Snakemake's empty `.snakemake_timestamp` markers left out, as .dvcignore leaves them out of DVC's
    hashes (a folder made by Snakemake and the same folder made by `dvc repro` are one object)."""
    if root.is_file():
        return {"": root.read_bytes()}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".snakemake_timestamp"}


def lock_outs(repo: Path) -> list[str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return sorted({out["path"] for stage in lock["stages"].values() for out in stage.get("outs", [])})


def cache_objects(root: Path) -> set[str]:
    """The content-addressed objects of a DVC cache or local remote (files/md5/xx/yyyy...)."""
    return {str(p.relative_to(root)) for p in (root / "files").rglob("*") if p.is_file()}


@pytest.mark.slow
def test_a_second_clone_pulls_the_run_from_a_remote_and_has_nothing_to_compute(built, tmp_path, venv_env):
    # A copy of the shared run, taken now: other tests record `built` as DVC's and run experiments in
    # it, so working on the copy keeps this test (and theirs) independent of the order they run in.
    # Whatever state the copy is in, it is committed as one consistent revision before the push.
    # DVC's cache and experiment queue (.dvc/cache, .dvc/tmp) stay behind: the push then holds exactly
    # what `dvc commit` records from the outputs, and Snakemake's metadata is not part of a share.
    skip = {built / ".dvc": {"cache", "tmp"}, built: {".snakemake"}}
    origin = tmp_path / "origin"
    shutil.copytree(built, origin, symlinks=True,
                    ignore=lambda d, names: skip.get(Path(d), set()) & set(names))
    store = tmp_path / "store"
    commit(origin, "run", venv_env)

    # an absolute path: the remote is written to .dvc/config and travels with the git history
    run(["dvc", "remote", "add", "-d", "store", str(store)], origin, venv_env)
    # record the Snakemake outputs as DVC's: the same commands made them
    run(["dvc", "commit", "--force"], origin, venv_env)
    commit(origin, "record the run", venv_env)
    start = time.monotonic()
    pushed = run(["dvc", "push"], origin, venv_env)
    seconds = time.monotonic() - start
    size = sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
    print(f"dvc push: {pushed.strip().splitlines()[-1]}, {size / 2**20:.1f} MiB in the remote, {seconds:.1f} s")

    # What a group needs to share a run: every out of dvc.yaml is cached (none is `cache: false`), so
    # the rendered data, the split files, the pre-trained models and every result are pushed; the
    # remote then holds every object of the cache, nothing less.
    outs = lock_outs(origin)
    for prefix in ("data/smoke/synth/", "data/smoke/splits/", "models/smoke/pretrain/", "results/smoke/finetune/",
                   "results/smoke/frozen/", "results/smoke/versatility/", "results/smoke/tables",
                   "results/smoke/metrics.json"):
        assert any(out.startswith(prefix) for out in outs), prefix
    assert not any(out.startswith(("checkpoints", "logs")) for out in outs), outs
    assert cache_objects(store) == cache_objects(origin / ".dvc/cache") != set()

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(origin), str(clone)], tmp_path, venv_env)
    assert not (clone / "models").exists() and not (clone / "results/smoke").exists()
    run(["dvc", "pull"], clone, venv_env)

    # every output arrived, byte for byte; resume state (checkpoints/) and logs are not outputs: they
    # stay on the machine that computed them (a checkpoint is only read to resume a killed job there,
    # and checkpoints/precision holds a benchmark of that machine's CPU)
    for out in outs:
        assert files(clone / out) == files(origin / out), out
    assert not (clone / "checkpoints").exists() and not (clone / "logs").exists()
    assert computed(clone) == computed(origin)

    # nothing to compute in the clone, and its cache is the remote's
    assert "Data and pipelines are up to date" in run(["dvc", "status"], clone, venv_env)
    repro = run(["dvc", "repro"], clone, venv_env)
    assert "Running stage" not in repro and "didn't change, skipping" in repro, repro[-3000:]
    assert "Cache and remote 'store' are in sync" in run(["dvc", "status", "-c"], clone, venv_env)
    assert subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True,
                          check=True).stdout == ""
