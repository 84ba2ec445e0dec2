"""hcmoco.dvc_export writes a profile's jobs from the stage table as a DVC pipeline that DVC
accepts and that is Snakemake's plan for the profile: the same commands, inputs and outputs."""
import subprocess
import sys
from pathlib import Path

import pytest

from tests.workflow.conftest import copy_repo
from tests.workflow.dag import assert_same_dag, dvc_jobs, snakemake_jobs

EXPORTED = "workflow/dvc/paper/dvc.yaml"
WEIGHTS = "data/raw/imagenet/hrnetv2_w18_imagenet_pretrained.pth"


def export(repo: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hcmoco.dvc_export", *args], cwd=repo, env=env,
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def paper_repo(tmp_path_factory, repo_root, venv_env) -> Path:
    """A repo copy with the user-placed ImageNet weights and the exported paper pipeline."""
    repo = copy_repo(repo_root, tmp_path_factory.mktemp("export") / "repo")
    (repo / WEIGHTS).parent.mkdir(parents=True)
    (repo / WEIGHTS).touch()
    out = export(repo, venv_env, "--profile", "paper")
    assert out.returncode == 0, out.stderr
    assert (repo / EXPORTED).is_file()
    return repo


def exported_stages(repo: Path) -> dict:
    """Stage name -> the DVC stage object, for the stages of the exported file only."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        return {stage.name: stage for stage in dvc_repo.index.stages
                if Path(stage.dvcfile.path).resolve() == (repo / EXPORTED).resolve()}


def test_exported_stages_are_the_snakemake_plan(paper_repo, venv_env):
    snake = snakemake_jobs(paper_repo, venv_env, "--config", "profile=paper")
    dvc = dvc_jobs(paper_repo, EXPORTED)
    assert_same_dag(snake, dvc)
    assert dvc_jobs(paper_repo).keys().isdisjoint(dvc)  # the root dvc.yaml's stages are apart

    stages = exported_stages(paper_repo)
    assert {"fetch@coco2014", "prepare@ntu", "imagenet_init", "pretrain_stage1", "pretrain_stage2@hcmoco",
            "finetune@parsing-hcmoco", "finetune@parsing-scratch", "versatility@missing", "aggregate"} <= set(stages)
    assert len(stages) == len(snake)
    aggregate = stages["aggregate"]
    assert [str(o.def_path) for o in aggregate.outs if o.metric] == ["results/paper/metrics.json"]
    assert str(aggregate.wdir) == str(paper_repo)


def test_stages_track_their_params_in_both_files(paper_repo):
    from dvc.dependency.param import ParamsDependency

    def tracked(stage) -> dict[str, list[str]]:
        return {str(d.def_path): list(d.params) for d in stage.deps if isinstance(d, ParamsDependency)}

    def covers(keys: list[str], key: str) -> bool:
        return any(key == k or key.startswith(k + ".") for k in keys)

    stages = exported_stages(paper_repo)
    finetune = tracked(stages["finetune@parsing-imagenet"])
    assert set(finetune) == {"params/params.yaml", "params/profiles/paper.yaml"}
    assert all(covers(keys, "finetune.tasks.parsing") for keys in finetune.values())
    assert covers(finetune["params/params.yaml"], "splits.tasks.parsing")
    prepare = tracked(stages["prepare@densepose_coco_detection"])
    assert "real.datasets.densepose_coco_detection" in prepare["params/profiles/paper.yaml"]
    assert not any(covers(keys, "real.datasets.ntu") for keys in prepare.values())
    assert tracked(stages["fetch@coco2014"]) == {} and tracked(stages["imagenet_init"]) == {}
    # every tracked key exists in its file: DVC fails on an absent one once a stage has run
    for name, stage in stages.items():
        for dep in stage.deps:
            if isinstance(dep, ParamsDependency):
                assert set(dep.params) <= set(dep.read_params()), f"{name}: {dep.def_path}"


def test_dvc_accepts_the_exported_pipeline(paper_repo, venv_env):
    status = subprocess.run(["dvc", "status", EXPORTED], cwd=paper_repo, env=venv_env, capture_output=True, text=True)
    assert status.returncode == 0, status.stderr[-3000:]
    for raw in ["coco2014", "densepose_coco", "h36m", "itop", "mpii", "ntu", "parsing4k"]:
        assert f"{EXPORTED}:fetch@{raw}:" in status.stdout
    dry = subprocess.run(["dvc", "repro", "--dry", f"{EXPORTED}:fetch"], cwd=paper_repo, env=venv_env,
                         capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert dry.stdout.count("Running stage") == 7 and "--dataset coco2014 --out data/raw/coco2014" in dry.stdout
    assert not (paper_repo / "data/raw/coco2014").exists()  # a dry run runs nothing


def test_export_is_deterministic_and_marked_generated(paper_repo, venv_env):
    first = (paper_repo / EXPORTED).read_text()
    assert first.startswith("# Generated from hcmoco/stages.py for profile `paper` by "
                            "`python -m hcmoco.dvc_export --profile paper`")
    out = export(paper_repo, venv_env, "--profile", "paper")
    assert out.returncode == 0, out.stderr
    assert (paper_repo / EXPORTED).read_text() == first


def test_missing_imagenet_weights_or_the_root_profile_give_one_error(tmp_path, repo_root, venv_env):
    repo = copy_repo(repo_root, tmp_path / "repo")
    out = export(repo, venv_env, "--profile", "paper")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and WEIGHTS in lines[0], out.stderr
    assert not (repo / EXPORTED).exists()
    # the root dvc.yaml already runs the default profile: the same outputs twice would break DVC
    out = export(repo, venv_env, "--profile", "default")
    assert out.returncode == 2 and "also an output of stage" in out.stderr, out.stderr
    assert not (repo / "workflow/dvc/default/dvc.yaml").exists()


def test_the_jobs_rule_reads_the_benchmark_of_every_job_of_the_plan(paper_repo, venv_env):
    """Snakemake-only (no stage here): its inputs, from hcmoco.stages.planned_jobs, are the
    benchmark files of exactly the jobs Snakemake plans for the profile."""
    from tests.workflow.test_parity import dry_run

    jobs = dry_run(paper_repo, venv_env, "--config", "profile=paper")
    gather = [job for job in jobs if job["rule"] == "jobs"]
    others = [job for job in jobs if job["rule"] not in ("jobs", "all")]
    assert len(gather) == 1 and len(others) == len(exported_stages(paper_repo))
    assert sorted(gather[0]["inputs"]) == sorted(job["benchmark"] for job in others)
