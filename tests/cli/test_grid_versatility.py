"""The fine-tuning grid job (every fraction x seed cell of one task and init, resumable at the
cell) and the versatility experiments (cross-modality supervision, missing-modality inference)."""
import json

import pytest
import torch
import yaml

from hcmoco.config import finetune_cells, load_params
from hcmoco.processed.keypoints import COMMON_EDGES, COMMON_JOINTS
from hcmoco.processed.shards import ProcessedSplit
from hcmoco.processed.splits import write_splits
from hcmoco.models import HCMoCo, HRNetConfig, save_backbone
from hcmoco.train import grid, versatility
from tests.cli.conftest import REPO
from tests.cli.test_finetune import TINY, _merge

torch.set_num_threads(1)


class Killed(Exception):
    """A simulated kill of the job."""


@pytest.fixture(scope="module")
def setup(tmp_path_factory, smoke_data):
    root = tmp_path_factory.mktemp("grid")
    base = yaml.safe_load((REPO / "params/params.yaml").read_text())
    over = yaml.safe_load((REPO / "params/profiles/smoke.yaml").read_text())
    over["finetune"] = _merge(over["finetune"], {**TINY, "inits": ["hcmoco"], "fractions": [0.1, 1.0], "seeds": [0, 1],
                                                 "grids": {}})
    over["finetune"]["grids"] = {"hcmoco": {"fractions": [1.0], "seeds": [1]}}
    over["versatility"] = {"inits": ["hcmoco"], "seeds": [0], "steps": 3, "batch_size": 4, "eval_every": 3}
    over["splits"]["seeds"] = [0, 1]
    (root / "data").mkdir()
    (root / "data/synth").symlink_to(smoke_data)  # the profile's data root
    (root / "params/profiles").mkdir(parents=True)
    (root / "params/params.yaml").write_text(yaml.safe_dump(base))
    (root / "params/profiles/tiny.yaml").write_text(yaml.safe_dump(over))
    params = load_params(root / "params/params.yaml", "tiny")
    for task, domain in (("pose3d", "synth_itop"), ("depth_parsing", "synth_parsing4k")):
        write_splits(task, domain, smoke_data / domain, params["splits"], root / "splits" / task)
    model = HCMoCo(HRNetConfig.preset(params["pretrain"]["backbone"]), len(COMMON_JOINTS), COMMON_EDGES)
    (root / "pretrain/hcmoco").mkdir(parents=True)
    torch.save({"model": model.state_dict()}, root / "pretrain/hcmoco/model.pt")
    for modality in ("rgb", "depth"):
        save_backbone(root / f"pretrain/hcmoco/{modality}_backbone.pt", model, modality)
    return {"root": root, "params": params, "data": smoke_data}


def grid_cli(setup, out, pretrained=None, inits=("scratch", "hcmoco")):
    """The grid jobs of `inits` for pose3d, into <out>/init~I; the first non-zero exit code."""
    root = setup["root"]
    for init in inits:
        code = grid.main(["--params", str(root / "params/params.yaml"), "--profile", "tiny", "--task", "pose3d",
                          "--init", init, "--pretrained", str(pretrained or root / "pretrain"),
                          "--data-root", str(root / "data"), "--splits", str(root / "splits/pose3d"),
                          "--out", str(out / f"init~{init}")])
        if code:
            return code
    return 0


def cells_of(out):
    found = []
    for p in out.glob("init~*/fraction~*/seed~*/metrics.json"):
        m = json.loads(p.read_text())
        assert p.parts[-4] == f"init~{m['init']}" and p.parts[-3] == f"fraction~{m['fraction']:g}"
        found.append((m["init"], m["fraction"], m["seed"]))
    return sorted(found)


def test_grid_runs_every_cell_of_every_init_and_nothing_else(tmp_path, setup, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert grid_cli(setup, tmp_path / "pose3d") == 0
    # scratch: fractions x seeds; hcmoco: its finetune.grids entry replaces both
    assert cells_of(tmp_path / "pose3d") == [("hcmoco", 1.0, 1), ("scratch", 0.1, 0), ("scratch", 0.1, 1),
                                             ("scratch", 1.0, 0), ("scratch", 1.0, 1)]
    assert finetune_cells(setup["params"], "hcmoco") == [(1.0, 1)]
    assert (tmp_path / "pose3d/init~scratch/fraction~0.1/seed~1/curves").is_dir()
    left = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "checkpoints").iterdir())
    assert left == ["checkpoints/precision"]  # staging and checkpoints cleared; the precision cache stays


def test_killed_grid_resumes_at_the_cell_and_matches_an_uninterrupted_run(tmp_path, setup, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert grid_cli(setup, tmp_path / "whole") == 0
    calls, real, killed = [], grid.finetune, []

    def dies_on_the_third_cell(*args, **kw):
        calls.append(args[3:5])
        if len(calls) == 3 and not killed:
            killed.append(True)
            raise Killed
        return real(*args, **kw)

    monkeypatch.setattr(grid, "finetune", dies_on_the_third_cell)
    with pytest.raises(Killed):
        grid_cli(setup, tmp_path / "killed")
    assert not (tmp_path / "killed/init~scratch").exists()  # nothing half-written
    calls.clear()
    assert grid_cli(setup, tmp_path / "killed") == 0
    assert calls == [(1.0, 0), (1.0, 1), (1.0, 1)]  # scratch's two finished cells were kept
    strip = ("seconds", "git", "resumed_from")
    for path in (tmp_path / "whole").glob("init~*/fraction~*/seed~*/metrics.json"):
        a = json.loads(path.read_text())
        b = json.loads((tmp_path / "killed" / path.relative_to(tmp_path / "whole")).read_text())
        assert {k: v for k, v in a.items() if k not in strip} == {k: v for k, v in b.items() if k not in strip}


def test_grid_names_a_missing_pre_training_output(tmp_path, setup, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert grid_cli(setup, tmp_path / "x", pretrained=tmp_path / "nowhere", inits=["hcmoco"]) == 2
    err = capsys.readouterr().err
    assert "nowhere/hcmoco/depth_backbone.pt: backbone file not found (the grid of init 'hcmoco')" in err
    assert not (tmp_path / "x/init~hcmoco").exists()


def test_an_init_outside_the_params_is_one_line(tmp_path, setup, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert grid_cli(setup, tmp_path / "x", inits=["sample"]) == 2
    assert capsys.readouterr().err.strip() == "error: --init: 'sample' is not scratch or one of finetune.inits (hcmoco)"


@pytest.mark.parametrize("experiment,keys", [("crossmodal", {"rgb->rgb", "rgb->depth", "depth->depth", "depth->rgb"}),
                                             ("missing", {"rgbd->rgbd", "rgbd->rgb", "rgbd->depth"})])
def test_versatility_cli_writes_each_result(tmp_path, setup, monkeypatch, experiment, keys):
    monkeypatch.chdir(tmp_path)
    root = setup["root"]
    code = versatility.main(["--params", str(root / "params/params.yaml"), "--profile", "tiny",
                             "--experiment", experiment, "--pretrained", str(root / "pretrain"),
                             "--data", str(setup["data"] / "synth_parsing4k"),
                             "--splits", str(root / "splits/depth_parsing"), "--out", str(tmp_path / "out")])
    assert code == 0
    for init in ("scratch", "hcmoco"):
        metrics = json.loads((tmp_path / f"out/init~{init}/seed~0/metrics.json").read_text())
        assert set(metrics["results"]) == keys and (metrics["experiment"], metrics["init"]) == (experiment, init)
        assert all(0.0 <= v <= 1.0 for v in metrics["results"].values())


def test_crossmodal_training_leaves_encoders_and_dense_heads_unchanged(setup):
    torch.manual_seed(0)
    net = versatility.load_parser(setup["params"], str(setup["root"] / "pretrain/hcmoco"))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    split = ProcessedSplit(setup["data"] / "synth_parsing4k/train")
    cfg = {"lr": 0.05, "lr_min": 0.0, "weight_decay": 0.0, "steps": 3, "batch_size": 4, "eval_every": 3,
           "miou": "present"}
    pool, val = torch.arange(8).numpy(), torch.arange(8, 12).numpy()
    versatility.train(net, split, pool, val, ["rgb"], cfg, 0, None, versatility.frozen_embeddings(net, split, pool, val))
    after = net.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"classifier.weight", "classifier.bias"}


def test_max_fusion_is_the_elementwise_max_of_the_normalised_dense_maps(setup):
    torch.manual_seed(0)
    net = versatility.load_parser(setup["params"], str(setup["root"] / "pretrain/hcmoco")).eval()
    rgb, depth = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        fused = net({"rgb": rgb, "depth": depth})
        expected = net.classify(torch.maximum(net.embed("rgb", rgb), net.embed("depth", depth)), (32, 32))
        only_rgb = net({"rgb": rgb})
    torch.testing.assert_close(fused, expected)
    assert not torch.allclose(fused, only_rgb)
    norms = net.embed("depth", depth).norm(dim=1)
    torch.testing.assert_close(norms, torch.ones_like(norms))
