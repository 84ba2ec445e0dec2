"""`torchrun --nproc-per-node 2 -m hcmoco.train.pretrain` (gloo, CPU) against one process on the
same global batch: same losses, same update, same memory bank; process 0 alone writes."""
import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from hcmoco.config import load_params
from hcmoco.models import read_backbone
from hcmoco.train import pretrain as trainer
from tests.cli.conftest import REPO

# What one process and two processes must agree on is the arithmetic, not the kernels: the same
# loss and the same update up to rounding. Two choices keep rounding a rounding difference:
# - SGD, not AdamW: Adam's first steps divide each gradient element by its own magnitude, so
#   rounding-level differences of (mathematically) zero gradients, e.g. of a bias before
#   BatchNorm, become lr-sized steps;
# - float64 (precision fp64): the smoke HRNet's last branch normalises 4 depth samples on a 1x1
#   map, where 1/sqrt(var + eps) amplifies the rounding of the sums by up to 1/sqrt(eps) = 316
#   per layer; in float32 (unit roundoff 6e-8) that made the update differ by 2e-4 on AVX2 CPUs
#   and 1.6e-2 on AVX-512 ones, whose kernels sum in another order. In float64 (unit roundoff
#   1.1e-16) the same amplification stays below 1e-9 on any CPU and thread count.
OVERRIDES = {"sample_contrast": "bank", "optimizer": "sgd", "lr": 1e-3, "lr_min": 1e-3, "precision": "fp64",
             "threads": 1, "stage1_steps": 1, "stage2_steps": 2, "checkpoint_every": 1}


@pytest.fixture
def params_file(tmp_path):
    """params.yaml with a `dist` profile: smoke sizes plus OVERRIDES."""
    (tmp_path / "params/profiles").mkdir(parents=True)
    (tmp_path / "params/params.yaml").write_text((REPO / "params/params.yaml").read_text())
    smoke = yaml.safe_load((REPO / "params/profiles/smoke.yaml").read_text())
    smoke["pretrain"] = {**smoke["pretrain"], **OVERRIDES}
    (tmp_path / "params/profiles/dist.yaml").write_text(yaml.safe_dump(smoke))
    return tmp_path / "params/params.yaml"


def cli_args(params_file, smoke_data, out, init=None):
    stage = ["--stage", "2", "--variant", "hcmoco", "--init", str(init)] if init else ["--stage", "1"]
    return ["--params", str(params_file), "--profile", "dist", *stage,
            "--data", str(smoke_data / "synth_ntu"), str(smoke_data / "synth_mpii"), "--out", str(out),
            "--curves", str(out) + "_curves"]


def weights_of(run_dir):
    state = torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)
    return state["model"], state["bank"]


def params_only(state):
    return {k: v for k, v in state.items() if "running" not in k and "num_batches" not in k}


def relative(a, b, ref):
    num = sum(((a[k] - b[k]) ** 2).sum() for k in a)
    return float((num / sum(((b[k] - ref[k]) ** 2).sum() for k in b)).sqrt())


def test_an_indivisible_global_batch_is_refused(tmp_path, smoke_data, params_file, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert trainer.main(cli_args(params_file, smoke_data, tmp_path / "x")) == 2
    assert "pretrain.batch_size: 8 (the global batch) is not divisible by the 3 processes" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_two_processes_resume_and_match_one(tmp_path, smoke_data, params_file, monkeypatch):
    """One process runs stage 2 for two steps (A) and, separately, stops after the checkpoint of
    step 1 (B); torchrun then resumes B on two processes for step 2, from exactly A's state
    after step 1, so the two-process step is held to rounding-level tolerances in float64:
    - loss terms: relative 1e-9 (the same sums in another order; measured 5e-15);
    - the step-2 update and the running stats: relative 1e-6 (the float32 runs' worst case,
      1.6e-2, scaled by the ratio of the unit roundoffs is 3e-11; measured 5e-13 and 2e-14);
    - the memory bank rows written from the gathered embeddings: absolute 1e-9 (measured 2e-14).
    Comparing many steps from scratch would compare chaos: at smoke sizes, two single-process
    runs that differ only in thread count part by ~10% of the update within 2-4 steps."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as torchrun's processes
    assert trainer.main(cli_args(params_file, smoke_data, tmp_path / "stage1")) == 0
    assert trainer.main(cli_args(params_file, smoke_data, tmp_path / "A", tmp_path / "stage1")) == 0
    cfg = load_params(params_file, "dist")["pretrain"]
    stopped = trainer.pretrain(cfg, 2, cfg["variants"]["hcmoco"], [smoke_data / "synth_ntu", smoke_data / "synth_mpii"],
                               tmp_path / "B", None, tmp_path / "stage1", stop_after=1)
    assert stopped == {"stopped_at": 1}
    [checkpoint] = (tmp_path / "checkpoints").rglob("last.pt")
    after_step1 = params_only(torch.load(checkpoint, weights_only=True)["model"])

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "hcmoco.train.pretrain", *cli_args(params_file, smoke_data, tmp_path / "B",
                                                                    tmp_path / "stage1")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]

    metrics = json.loads((tmp_path / "B/metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["resumed_from"] == 1
    one = json.loads((tmp_path / "A_curves/history.json").read_text())
    two = json.loads((tmp_path / "B_curves/history.json").read_text())
    assert two[0] == one[0]  # step 1 comes from the checkpoint
    assert two[1].keys() == one[1].keys() == {"step", "lr", "loss", "sample", "dense", "sparse_intra", "sparse_inter"}
    for key, value in one[1].items():
        assert two[1][key] == pytest.approx(value, rel=1e-9), key

    (model_a, bank_a), (model_b, bank_b) = weights_of(tmp_path / "A"), weights_of(tmp_path / "B")
    assert model_a.keys() == model_b.keys() and bank_a.keys() == bank_b.keys()
    assert model_a["rgb_encoder.conv1.weight"].dtype == torch.float64
    assert relative(params_only(model_b), params_only(model_a), after_step1) < 1e-6
    running = [k for k in model_a if "running" in k]
    assert relative({k: model_b[k] for k in running}, {k: model_a[k] for k in running},
                    {k: torch.zeros_like(model_a[k]) for k in running}) < 1e-6
    assert all(torch.allclose(bank_a[k], bank_b[k], rtol=0, atol=1e-9) for k in bank_a)
    assert read_backbone(tmp_path / "B/depth_backbone.pt")[2] == "depth"

    # process 0 alone logged; the checkpoint is gone once the outputs exist
    events = [json.loads(line)["event"] for line in (tmp_path / "B.log.jsonl").read_text().splitlines()]
    assert events.count("start") == 1 and events.count("done") == 1
    assert not list((tmp_path / "checkpoints").rglob("last.pt"))
