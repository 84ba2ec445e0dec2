"""A stage depends on the package files its command's module imports (hcmoco.stages.module_files,
the static import closure): Snakemake as `code` inputs, DVC as deps, so an edit of any of them
makes both tools run the stage again, and only the stages whose commands import it."""
import re
import subprocess

from hcmoco.stages import BY_NAME, STAGES, module_files
from tests.workflow.conftest import copy_repo, run
from tests.workflow.dag import dvc_jobs, snakemake_jobs

LAUNCH = "hcmoco/train/distributed.py"


def test_the_closure_holds_the_launch_and_detection_code(repo_root):
    assert LAUNCH in module_files("hcmoco.train.pretrain", repo_root)
    for module in ("hcmoco.train.grid", "hcmoco.train.frozen"):  # DensePose R-CNN
        assert "hcmoco/tasks/detection.py" in module_files(module, repo_root), module
    assert LAUNCH not in module_files("hcmoco.synth.generate", repo_root)
    files = module_files("hcmoco.processed.splits", repo_root)
    assert "hcmoco/processed/splits.py" in files and "hcmoco/__init__.py" in files  # parents run too


def test_an_unknown_module_is_one_error(repo_root):
    try:
        module_files("hcmoco.no_such_module", repo_root)
    except ValueError as err:
        assert "hcmoco.no_such_module: no such module" in str(err)
    else:
        raise AssertionError("no error")


def test_both_tools_depend_on_the_import_closure(repo_root, venv_env):
    snake = snakemake_jobs(repo_root, venv_env, "--config", "profile=default")
    dvc = dvc_jobs(repo_root)
    modules = {stage.name: stage.module for stage in STAGES}
    for cmd, job in snake.items():
        module = re.search(r" -m (\S+) ", cmd).group(1)
        assert module == modules[job["rule"]], cmd
        code = set(module_files(module, repo_root))
        assert {p for p in job["inputs"] if p.startswith("hcmoco/")} == code, job["rule"]
        assert {p for p in dvc[cmd]["inputs"] if p.startswith("hcmoco/")} == code, dvc[cmd]["stage"]


def job_counts(plan: str) -> dict[str, int]:
    if "Nothing to be done" in plan:
        return {}
    table = plan.split("Job stats:")[1].split("\n\n")[0]
    rows = [line.split() for line in table.splitlines()[3:]]
    return {r[0]: int(r[1]) for r in rows if len(r) == 2 and r[0] != "total"}


def test_editing_the_launch_code_reruns_pretraining_in_both_tools(tmp_path, repo_root, venv_env):
    """A tiny state instead of a run: stand-ins for the two rendered sources and the outputs of
    stage 1 and one stage 2, recorded as up to date by Snakemake (--touch) and by DVC (commit)."""
    repo = copy_repo(repo_root, tmp_path / "repo", profile="smoke")
    folders = ["data/smoke/synth/synth_ntu", "data/smoke/synth/synth_mpii", "models/smoke/pretrain/stage1",
               "results/smoke/pretrain/stage1/curves", "models/smoke/pretrain/hcmoco",
               "results/smoke/pretrain/hcmoco/curves"]
    for folder in folders:
        (repo / folder).mkdir(parents=True)
        (repo / folder / "part.bin").write_bytes(folder.encode())
    targets = ["models/smoke/pretrain/stage1", "models/smoke/pretrain/hcmoco"]
    stages = ["generate@synth_ntu", "generate@synth_mpii", "pretrain_stage1", "pretrain_stage2@hcmoco"]
    run(["snakemake", "--cores", "1", "--touch", *targets], repo, venv_env)
    assert "Nothing to be done" in run(["snakemake", "-n", "--cores", "1", *targets], repo, venv_env)
    run(["dvc", "commit", "--force", *stages], repo, venv_env)
    assert "up to date" in run(["dvc", "status", *stages], repo, venv_env)

    launch = repo / LAUNCH
    launch.write_text(launch.read_text() + "\n# edited\n")
    plan = run(["snakemake", "-n", "--cores", "1", *targets], repo, venv_env)
    assert job_counts(plan) == {"pretrain_stage1": 1, "pretrain_stage2": 1}, plan[-3000:]
    assert f"Updated input files: {LAUNCH}" in plan or LAUNCH in plan
    status = run(["dvc", "status", *stages], repo, venv_env)
    changed = re.findall(r"^(\S+):\s*$", status, flags=re.M)
    assert set(changed) == {"pretrain_stage1", "pretrain_stage2@hcmoco"}, status
    assert status.count(f"modified:           {LAUNCH}") == 2 or status.count(LAUNCH) == 2, status
