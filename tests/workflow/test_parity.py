"""Snakefile and dvc.yaml describe the same DAG: same commands, inputs and outputs."""
from tests.workflow.dag import assert_same_dag, dvc_jobs, snakemake_jobs


def test_snakemake_and_dvc_agree(repo_root, venv_env):
    assert_same_dag(snakemake_jobs(repo_root, venv_env, "--config", "profile=default"), dvc_jobs(repo_root))


def test_dvc_stages_track_their_params_in_both_files(repo_root):
    for cmd, job in dvc_jobs(repo_root).items():
        files = set(job["params"])
        assert files == {"params/params.yaml", "params/profiles/default.yaml"}, f"{job['stage']}: {files}"
