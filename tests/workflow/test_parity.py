"""Snakefile and dvc.yaml describe the same DAG: same commands, inputs and outputs."""
from tests.workflow.dag import dvc_jobs, snakemake_jobs


def test_snakemake_and_dvc_agree(repo_root, venv_env):
    snake = snakemake_jobs(repo_root, venv_env, "--config", "profile=default")
    dvc = dvc_jobs(repo_root)
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


def test_dvc_stages_track_their_params_in_both_files(repo_root):
    for cmd, job in dvc_jobs(repo_root).items():
        files = set(job["params"])
        assert files == {"params/params.yaml", "params/profiles/default.yaml"}, f"{job['stage']}: {files}"
