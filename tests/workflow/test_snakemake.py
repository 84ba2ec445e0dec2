import subprocess

import pytest

from tests.workflow.dag import snakemake_jobs


def run(cmd, cwd, env):
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    return out.stdout + out.stderr


# tasks x (scratch + finetune.inits), tasks x (scratch + frozen.inits)
@pytest.mark.parametrize("profile, finetune, frozen", [("smoke", 20, 12), ("default", 20, 12)])
def test_dry_run_plans_every_rule(repo_root, venv_env, profile, finetune, frozen):
    jobs = snakemake_jobs(repo_root, venv_env, "--config", f"profile={profile}")
    rules = {}
    for job in jobs.values():
        rules[job["rule"]] = rules.get(job["rule"], 0) + 1
    assert rules == {"generate": 6, "preview": 6, "split": 4, "pretrain_stage1": 1, "pretrain_stage2": 4,
                     "retrieval": 1, "finetune": finetune, "frozen": frozen, "versatility": 2, "aggregate": 1}
    assert all(any(f"{root}/{profile}/" in out for root in ("data", "results", "models") for out in job["outputs"])
               for job in jobs.values())


def test_bad_params_stop_before_any_job(smoke_repo, venv_env):
    overlay = smoke_repo / "params/profiles/smoke.yaml"
    overlay.write_text(overlay.read_text().replace("fractions: [0.1, 1.0]", "fractions: [0.1, 2.0]"))
    out = subprocess.run(["snakemake", "-n", "--cores", "1"], cwd=smoke_repo, env=venv_env,
                         capture_output=True, text=True)
    assert out.returncode != 0
    assert "error: params/params.yaml + params/profiles/smoke.yaml: splits.fractions.1: 2.0 is greater than the maximum of 1" in out.stderr


def test_unknown_config_key_is_refused(repo_root, venv_env):
    out = subprocess.run(["snakemake", "-n", "--config", "resolution=8"], cwd=repo_root, env=venv_env,
                         capture_output=True, text=True)
    assert out.returncode != 0 and "error: --config resolution: unknown key" in out.stderr


def test_lint_is_clean(repo_root, venv_env):
    out = run(["snakemake", "--lint"], repo_root, venv_env)
    assert "Congratulations, your workflow is in a good condition!" in out, out[-3000:]


def test_paper_profile_plans_real_data_instead_of_rendering(tmp_path, repo_root, venv_env):
    from tests.workflow.conftest import copy_repo
    repo = copy_repo(repo_root, tmp_path / "repo")
    weights = repo / "data/raw/imagenet/hrnetv2_w18_imagenet_pretrained.pth"  # placed by the user
    weights.parent.mkdir(parents=True)
    weights.touch()
    jobs = snakemake_jobs(repo, venv_env, "--config", "profile=paper")
    rules = {}
    for job in jobs.values():
        rules[job["rule"]] = rules.get(job["rule"], 0) + 1
    assert rules == {"fetch": 7, "prepare": 6, "imagenet_init": 1, "split": 4, "pretrain_stage1": 1,
                     "pretrain_stage2": 4, "retrieval": 1, "finetune": 24, "versatility": 2, "aggregate": 1,
                     # no frozen DensePose: the paper's runs DensePose R-CNN on whole images
                     "frozen": 3 * 4}
    itop = next(cmd for cmd, job in jobs.items() if job["outputs"] == {"data/paper/real/itop"})
    assert itop.startswith("python -m hcmoco.prepare.itop --raw data/raw/itop --out data/paper/real/itop")
    densepose = next(cmd for cmd, job in jobs.items()
                     if job["outputs"] == {"data/paper/real/densepose_coco_detection"})
    assert densepose.startswith("python -m hcmoco.prepare.densepose_coco_detection --raw data/raw/densepose_coco")
    assert "--resolution 800 " in densepose and densepose.endswith("--images data/raw/coco2014 >> logs/data/paper/real/densepose_coco_detection.log 2>&1")
    assert "--resolution 320 " in itop  # real.resolution where a dataset sets none
    assert "data/raw/coco2014/MANIFEST.json" in jobs[densepose]["inputs"]
    stage1 = next(cmd for cmd, job in jobs.items() if job["rule"] == "pretrain_stage1")
    assert "--data data/paper/real/ntu data/paper/real/mpii" in stage1
