"""Snakefile and dvc.yaml describe the same DAG: same commands, inputs and outputs."""
from tests.workflow.dag import dvc_jobs, snakemake_jobs


def test_snakemake_and_dvc_agree(repo_root, venv_env):
    snake = snakemake_jobs(repo_root, venv_env, "--config", "profile=default")
    dvc = dvc_jobs(repo_root)
    assert snake, "no Snakemake jobs parsed"
    assert set(snake) == set(dvc), (
        f"only in Snakemake: {sorted(set(snake) - set(dvc))}\nonly in DVC: {sorted(set(dvc) - set(snake))}")
    for cmd, job in snake.items():
        assert job["inputs"] == dvc[cmd]["inputs"], f"{dvc[cmd]['stage']}: inputs differ\n{cmd}"
        assert job["outputs"] == dvc[cmd]["outputs"], f"{dvc[cmd]['stage']}: outputs differ\n{cmd}"


def test_dvc_stages_track_their_params_in_both_files(repo_root):
    for cmd, job in dvc_jobs(repo_root).items():
        files = set(job["params"])
        assert files == {"params/params.yaml", "params/profiles/default.yaml"}, f"{job['stage']}: {files}"
