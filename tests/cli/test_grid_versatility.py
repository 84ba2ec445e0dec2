"""The fine-tuning grid job (every fraction x seed cell of one task and init, resumable at the
cell) and the versatility experiments (cross-modality supervision, missing-modality inference)."""
import json

import pytest
import torch
import yaml

from hcmoco.config import finetune_cells, load_params
from hcmoco.data.keypoints import COMMON_EDGES, COMMON_JOINTS
from hcmoco.data.shards import ProcessedSplit
from hcmoco.data.splits import write_splits
from hcmoco.models import HCMoCo, HRNetConfig, save_backbone
from hcmoco.train import grid, versatility
from tests.cli.conftest import REPO
from tests.cli.test_finetune import TINY, _merge

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, smoke_data):
    root = tmp_path_factory.mktemp("grid")
    base = yaml.safe_load((REPO / "params/params.yaml").read_text())
    over = yaml.safe_load((REPO / "params/profiles/smoke.yaml").read_text())
    over["finetune"] = _merge(over["finetune"], {**TINY, "fractions": [0.1, 1.0], "seeds": [0, 1],
                                                 "grids": {"hcmoco": {"fractions": [1.0], "seeds": [1]}}})
    over["versatility"] = {"seeds": [0], "steps": 3, "batch_size": 4, "eval_every": 3}
    over["splits"]["seeds"] = [0, 1]
    (root / "params/profiles").mkdir(parents=True)
    (root / "params/params.yaml").write_text(yaml.safe_dump(base))
    (root / "params/profiles/tiny.yaml").write_text(yaml.safe_dump(over))
    params = load_params(root / "params/params.yaml", "tiny")
    for task, domain in (("pose3d", "synth_itop"), ("depth_parsing", "synth_parsing4k")):
        write_splits(task, domain, smoke_data / domain, params["splits"], root / "splits" / task)
    model = HCMoCo(HRNetConfig.preset(params["pretrain"]["backbone"]), len(COMMON_JOINTS), COMMON_EDGES)
    (root / "model").mkdir()
    torch.save({"model": model.state_dict()}, root / "model/model.pt")
    for modality in ("rgb", "depth"):
        save_backbone(root / f"model/{modality}_backbone.pt", model, modality)
    return {"root": root, "params": params, "data": smoke_data}


def grid_cli(setup, out, init="scratch", model="scratch"):
    root = setup["root"]
    return grid.main(["--params", str(root / "params/params.yaml"), "--profile", "tiny", "--task", "pose3d",
                      "--init", init, "--model", model, "--data", str(setup["data"] / "synth_itop"),
                      "--splits", str(root / "splits/pose3d"), "--out", str(out)])


def cells_of(out):
    return sorted((json.loads(p.read_text())["fraction"], json.loads(p.read_text())["seed"])
                  for p in out.glob("fraction~*/seed~*/metrics.json"))


def test_grid_runs_every_cell_of_the_init_and_nothing_else(tmp_path, setup, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert grid_cli(setup, tmp_path / "scratch") == 0
    assert cells_of(tmp_path / "scratch") == [(0.1, 0), (0.1, 1), (1.0, 0), (1.0, 1)]
    assert (tmp_path / "scratch/fraction~0.1/seed~1/curves").is_dir()
    # an init's grids entry replaces the default fractions and seeds
    assert grid_cli(setup, tmp_path / "hcmoco", "hcmoco", str(setup["root"] / "model")) == 0
    assert cells_of(tmp_path / "hcmoco") == [(1.0, 1)] == finetune_cells(setup["params"], "hcmoco")
    assert json.loads((tmp_path / "hcmoco/fraction~1/seed~1/metrics.json").read_text())["init"] == "hcmoco"


def test_killed_grid_resumes_at_the_cell_and_matches_an_uninterrupted_run(tmp_path, setup, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert grid_cli(setup, tmp_path / "whole") == 0
    calls, real = [], grid.finetune

    def dies_on_the_third_cell(*args, **kw):
        calls.append(args[3:5])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(grid, "finetune", dies_on_the_third_cell)
    with pytest.raises(KeyboardInterrupt):
        grid_cli(setup, tmp_path / "killed")
    assert not (tmp_path / "killed").exists()  # nothing half-written
    calls.clear()
    assert grid_cli(setup, tmp_path / "killed") == 0
    assert calls == [(1.0, 0), (1.0, 1)]  # the two finished cells were kept
    strip = ("seconds", "git", "resumed_from")
    for path in (tmp_path / "whole").glob("fraction~*/seed~*/metrics.json"):
        a = json.loads(path.read_text())
        b = json.loads((tmp_path / "killed" / path.relative_to(tmp_path / "whole")).read_text())
        assert {k: v for k, v in a.items() if k not in strip} == {k: v for k, v in b.items() if k not in strip}


def test_grid_refuses_a_model_for_scratch(tmp_path, setup, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert grid_cli(setup, tmp_path / "x", "scratch", str(setup["root"] / "model")) == 2
    assert "--model: init 'scratch' needs scratch" in capsys.readouterr().err


@pytest.mark.parametrize("experiment,keys", [("crossmodal", {"rgb->rgb", "rgb->depth", "depth->depth", "depth->rgb"}),
                                             ("missing", {"rgbd->rgbd", "rgbd->rgb", "rgbd->depth"})])
def test_versatility_cli_writes_each_result(tmp_path, setup, monkeypatch, experiment, keys):
    monkeypatch.chdir(tmp_path)
    root = setup["root"]
    code = versatility.main(["--params", str(root / "params/params.yaml"), "--profile", "tiny",
                             "--experiment", experiment, "--init", "hcmoco", "--model", str(root / "model"),
                             "--data", str(setup["data"] / "synth_parsing4k"),
                             "--splits", str(root / "splits/depth_parsing"), "--out", str(tmp_path / "out")])
    assert code == 0
    metrics = json.loads((tmp_path / "out/seed~0/metrics.json").read_text())
    assert set(metrics["results"]) == keys and metrics["experiment"] == experiment
    assert all(0.0 <= v <= 1.0 for v in metrics["results"].values())


def test_crossmodal_training_leaves_encoders_and_dense_heads_unchanged(setup):
    torch.manual_seed(0)
    net = versatility.load_parser(setup["params"], str(setup["root"] / "model"))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    split = ProcessedSplit(setup["data"] / "synth_parsing4k/train")
    cfg = {"lr": 0.05, "lr_min": 0.0, "weight_decay": 0.0, "steps": 3, "batch_size": 4, "eval_every": 3}
    pool, val = torch.arange(8).numpy(), torch.arange(8, 12).numpy()
    versatility.train(net, split, pool, val, ["rgb"], cfg, 0, None, frozen=True)
    after = net.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"classifier.weight", "classifier.bias"}


def test_max_fusion_is_the_elementwise_max_of_the_normalised_dense_maps(setup):
    torch.manual_seed(0)
    net = versatility.load_parser(setup["params"], str(setup["root"] / "model")).eval()
    rgb, depth = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        fused = net({"rgb": rgb, "depth": depth})
        expected = net.classify(torch.maximum(net.embed("rgb", rgb), net.embed("depth", depth)), (32, 32))
        only_rgb = net({"rgb": rgb})
    torch.testing.assert_close(fused, expected)
    assert not torch.allclose(fused, only_rgb)
    norms = net.embed("depth", depth).norm(dim=1)
    torch.testing.assert_close(norms, torch.ones_like(norms))
