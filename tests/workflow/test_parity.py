"""The root dvc.yaml is generated from the stage table (hcmoco/stages.py) that Snakemake's rules
read too: it is up to date, both tools plan the same jobs (commands, inputs, outputs), DVC tracks
the params keys the table names, and the Snakemake-only rules are the table's."""
import csv
import subprocess
import sys

import pytest
import yaml

from hcmoco.stages import STAGES, WRITE_COMMAND
from tests.workflow.conftest import copy_repo
from tests.workflow.dag import assert_same_dag, dvc_jobs, snakemake_jobs


def check(repo, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hcmoco.stages", "--check"], cwd=repo, env=env,
                          capture_output=True, text=True)


def test_dvc_yaml_is_what_the_table_gives(repo_root, venv_env):
    out = check(repo_root, venv_env)
    assert out.returncode == 0, out.stderr  # the message names the command that regenerates it
    text = (repo_root / "dvc.yaml").read_text()
    assert text.startswith("# Generated from hcmoco/stages.py by `python -m hcmoco.stages --write`")


def test_a_stale_dvc_yaml_fails_with_the_command_that_regenerates_it(tmp_path, repo_root, venv_env):
    repo = copy_repo(repo_root, tmp_path / "repo")
    dvc_yaml = repo / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text().replace("- synth.shard_size\n", "", 1))
    out = check(repo, venv_env)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        f"error: dvc.yaml: stale, not what hcmoco/stages.py gives; run `{WRITE_COMMAND}` (or `make dvc-yaml`)"]
    written = subprocess.run([sys.executable, "-m", "hcmoco.stages", "--write"], cwd=repo, env=venv_env,
                             capture_output=True, text=True)
    assert written.returncode == 0, written.stderr
    assert check(repo, venv_env).returncode == 0 and "- synth.shard_size\n" in dvc_yaml.read_text()


def test_snakemake_and_dvc_agree(repo_root, venv_env):
    snake = snakemake_jobs(repo_root, venv_env, "--config", "profile=default")
    dvc = dvc_jobs(repo_root)
    assert_same_dag(snake, dvc)
    # the rules DVC runs are the table's rules with DVC groups (fetch, prepare, imagenet_init: the
    # paper's real data, hcmoco.dvc_export; jobs: Snakemake's benchmark files, no command)
    assert {job["rule"] for job in snake.values()} == {s.name for s in STAGES if s.dvc}
    groups = {g.name: s.name for s in STAGES for g in s.dvc}
    assert {groups[job["stage"].split("@")[0]] for job in dvc.values()} == {s.name for s in STAGES if s.dvc}


def test_dvc_stages_track_the_table_keys_in_both_files(repo_root):
    base = yaml.safe_load((repo_root / "params/params.yaml").read_text())
    keys = {s.name: s.params for s in STAGES}
    groups = {g.name: s.name for s in STAGES for g in s.dvc}
    for job in dvc_jobs(repo_root).values():
        files = job["params"]
        assert set(files) == {"params/params.yaml", "params/profiles/default.yaml"}, job["stage"]
        rule = groups[job["stage"].split("@")[0]]
        assert len(files["params/params.yaml"]) == len(keys[rule]), job["stage"]
        assert files["params/profiles/default.yaml"] == {k.split(".")[0] for k in keys[rule]}
        for key in files["params/params.yaml"]:  # each resolved key exists (DVC fails on an absent one)
            node = base
            for part in key.split("."):
                node = node[part]


def dry_run(repo, env, *extra: str) -> dict[str, dict]:
    """rule -> list of (benchmark file, inputs) of each job in Snakemake's plan."""
    out = subprocess.run(["snakemake", "-n", "--nocolor", "--forceall", *extra], cwd=repo, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    jobs, current = [], None
    for line in (out.stdout + out.stderr).splitlines():
        if line.startswith(("rule ", "localrule ")):
            current = {"rule": line.split()[1].rstrip(":"), "benchmark": None, "inputs": []}
            jobs.append(current)
        elif current is not None and line.startswith("    input: "):
            current["inputs"] = line[len("    input: "):].split(", ")
        elif current is not None and line.startswith("    benchmark: "):
            current["benchmark"] = line[len("    benchmark: "):]
    return jobs


def test_jobs_gathers_the_benchmark_file_of_every_job(repo_root, venv_env):
    jobs = dry_run(repo_root, venv_env)
    gather = [job for job in jobs if job["rule"] == "jobs"]
    assert len(gather) == 1
    others = [job for job in jobs if job["rule"] not in ("jobs", "all")]
    assert all(job["benchmark"] for job in others)
    assert sorted(gather[0]["inputs"]) == sorted(job["benchmark"] for job in others)
    assert "results/default/jobs.csv" in next(job for job in jobs if job["rule"] == "all")["inputs"]


BENCH_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def test_jobs_table_has_one_row_per_job(tmp_path, monkeypatch, repo_root):
    from hcmoco.config import load_params
    from hcmoco.stages import BY_NAME, jobs_table, path, planned_jobs

    params = load_params(repo_root / "params/params.yaml", "smoke")
    monkeypatch.chdir(tmp_path)
    jobs = planned_jobs(params)
    for n, (rule, wildcards) in enumerate(jobs):
        file = tmp_path / path(BY_NAME[rule].benchmark, "smoke", wildcards)
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(BENCH_HEADER + f"{n + 0.5}\t0:00:01\t{100 + n}.25\t1\t1\t1\t0\t0\t50\t{2 * n}\n")
    assert jobs_table(params, "smoke", "jobs.csv", "jobs.md") == len(jobs)
    rows = list(csv.DictReader((tmp_path / "jobs.csv").open()))
    assert [r["rule"] for r in rows] == [rule for rule, _ in jobs]
    stage2 = next(r for r in rows if r["rule"] == "pretrain_stage2")
    n = jobs.index(("pretrain_stage2", {"variant": "sample"}))
    assert stage2 == {"rule": "pretrain_stage2", "wildcards": "variant=sample", "runtime_s": f"{n + 0.5:.2f}",
                      "max_rss_mb": f"{100 + n}.2", "cpu_time_s": f"{2 * n:.2f}"}
    assert (tmp_path / "jobs.md").read_text().count("\n| ") == len(jobs) + 1  # header + one row per job
    (tmp_path / path(BY_NAME["aggregate"].benchmark, "smoke")).write_text("")
    with pytest.raises(ValueError, match="tables.tsv: no benchmark row"):
        jobs_table(params, "smoke", "jobs.csv", "jobs.md")


@pytest.mark.slow
def test_the_smoke_run_measured_every_job(built, venv_env):
    rows = list(csv.DictReader((built / "results/smoke/jobs.csv").open()))
    plan = dry_run(built, venv_env)
    assert len(rows) == len([j for j in plan if j["rule"] not in ("jobs", "all")])
    assert all(float(r["runtime_s"]) > 0 for r in rows)
    # Snakemake samples memory while a job runs: a job of seconds shows its model in memory (a job
    # that ends before the first sample may read NA)
    assert all(float(r["max_rss_mb"]) > 50 for r in rows if r["rule"].startswith("pretrain_stage"))
    assert "| pretrain_stage1 | - |" in (built / "results/smoke/jobs.md").read_text()
