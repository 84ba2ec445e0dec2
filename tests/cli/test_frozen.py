"""The frozen-feature job (hcmoco.train.frozen): the backbone never changes, its features are
computed once per (init, split) and recomputed when the backbone file changes, every planned
cell is written with fine-tuning's metrics keys, and a killed job resumes at the cell."""
import json

import pytest
import torch
import yaml

from hcmoco.config import frozen_cells, load_params
from hcmoco.processed.keypoints import COMMON_EDGES, COMMON_JOINTS
from hcmoco.processed.splits import write_splits
from hcmoco.models import HCMoCo, HRNet, HRNetConfig, read_backbone, save_backbone
from hcmoco.train import features, frozen
from tests.cli.conftest import REPO
from tests.cli.test_finetune import DOMAINS

torch.set_num_threads(1)
FINETUNE_KEYS = {"task", "metric", "test", "val", "best_step", "init", "fraction", "seed", "train_size", "val_size",
                 "test_size", "steps", "batch_size", "backbone", "freeze_backbone", "device", "precision", "seconds",
                 "git", "val_history", "test_details"}
STRIP = ("seconds", "git")


class Killed(Exception):
    """A simulated kill of the job."""


def save_model(folder, seed):
    torch.manual_seed(seed)
    model = HCMoCo(HRNetConfig.preset("narrow"), len(COMMON_JOINTS), COMMON_EDGES)
    folder.mkdir(parents=True, exist_ok=True)
    for modality in ("rgb", "depth"):
        save_backbone(folder / f"{modality}_backbone.pt", model, modality)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, smoke_data):
    """A `tiny` profile (smoke, frozen: 2 fractions x 2 seeds, 4 steps, init hcmoco), split files
    and a pre-training output `hcmoco` of random weights."""
    root = tmp_path_factory.mktemp("frozen")
    base = yaml.safe_load((REPO / "params/params.yaml").read_text())
    over = yaml.safe_load((REPO / "params/profiles/smoke.yaml").read_text())
    over["splits"]["seeds"] = [0, 1]
    over["finetune"]["tasks"] = {"pose3d": {"a2j_channels": 8, "a2j_convs": 1}}
    over["frozen"] = {"inits": ["hcmoco"], "fractions": [0.1, 1.0], "seeds": [0, 1], "steps": 4, "batch_size": 8,
                      "eval_every": 2}
    (root / "data").mkdir()
    (root / "data/synth").symlink_to(smoke_data)
    (root / "params/profiles").mkdir(parents=True)
    (root / "params/params.yaml").write_text(yaml.safe_dump(base))
    (root / "params/profiles/tiny.yaml").write_text(yaml.safe_dump(over))
    params = load_params(root / "params/params.yaml", "tiny")
    for task, domain in DOMAINS.items():
        write_splits(task, domain, smoke_data / domain, params["splits"], root / "splits" / task)
    save_model(root / "pretrain/hcmoco", seed=0)
    return {"root": root, "params": params}


def job(setup, out, task="depth_parsing", init="hcmoco", pretrained=None):
    root = setup["root"]
    return frozen.main(["--params", str(root / "params/params.yaml"), "--profile", "tiny", "--task", task,
                        "--init", init, "--pretrained", str(pretrained or root / "pretrain"),
                        "--data-root", str(root / "data"), "--splits", str(root / "splits" / task),
                        "--out", str(out)])


def cells(out) -> dict:
    return {(p.parts[-3], p.parts[-2]): json.loads(p.read_text())
            for p in sorted(out.glob("fraction~*/seed~*/metrics.json"))}


def stripped(found: dict) -> dict:
    return {k: {key: v for key, v in m.items() if key not in STRIP} for k, m in found.items()}


def staged(cwd) -> list:
    """Files a job left under checkpoints/ (beside the precision verdicts of hcmoco.train.runtime)."""
    return [p for p in (cwd / "checkpoints").rglob("*") if p.is_file() and "precision" not in p.parts]


@pytest.fixture
def forwards(monkeypatch):
    """Samples passed through any HRNet's forward."""
    seen, real = [], HRNet.forward

    def counting(self, x):
        seen.append(len(x))
        return real(self, x)

    monkeypatch.setattr(HRNet, "forward", counting)
    return seen


@pytest.mark.parametrize("task", list(DOMAINS))
def test_every_planned_cell_is_written_with_the_fine_tuning_keys(tmp_path, setup, monkeypatch, task):
    monkeypatch.chdir(tmp_path)
    assert job(setup, tmp_path / "out", task=task, init="scratch") == 0
    found = cells(tmp_path / "out")
    assert sorted(found) == sorted((f"fraction~{f:g}", f"seed~{s}") for f, s in frozen_cells(setup["params"]))
    for (fraction, seed), m in found.items():
        assert FINETUNE_KEYS <= set(m) and m["protocol"] == "frozen" and m["freeze_backbone"] is True
        place = (m["task"], m["init"], f"fraction~{m['fraction']:g}", f"seed~{m['seed']}")
        assert place == (task, "scratch", fraction, seed)
        assert m["test"] is not None and 0.0 <= m["test"] <= 1.0 and m["steps"] == 4
    assert staged(tmp_path) == []  # staging and feature cache cleared


def test_the_backbone_does_not_change(tmp_path, setup, monkeypatch):
    """MoCo's linear-evaluation sanity check: weights and BN statistics bit-identical."""
    monkeypatch.chdir(tmp_path)
    built, real = [], features.build_backbone

    def recording(*args):
        net = real(*args)
        built.append((net, {k: v.clone() for k, v in net.state_dict().items()}))
        return net

    monkeypatch.setattr(features, "build_backbone", recording)
    for init in ("scratch", "hcmoco"):
        assert job(setup, tmp_path / init, init=init) == 0
    assert len(built) == 2
    loaded, _, _ = read_backbone(setup["root"] / "pretrain/hcmoco/depth_backbone.pt")
    for net, before in built:
        after = net.state_dict()
        assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    hcmoco_net = built[1][0].state_dict()
    assert all(torch.equal(hcmoco_net[k], loaded[k].to(hcmoco_net[k].dtype)) for k in loaded)


def test_features_are_computed_once_and_a_killed_job_resumes_at_the_cell(tmp_path, setup, monkeypatch, forwards):
    monkeypatch.chdir(tmp_path)
    assert job(setup, tmp_path / "whole") == 0
    n_cells, once = len(frozen_cells(setup["params"])), sum(forwards)
    splits = setup["root"] / "splits/depth_parsing"
    pool, val, test = (json.loads((splits / name).read_text())["indices"]
                       for name in ("fraction~1/seed~0.json", "val.json", "test.json"))
    # one pass over the pool (every fraction lies inside it), val and test serves all 4 cells
    assert once == len(set(pool) | set(val)) + len(test)

    calls, real, killed = [], frozen.probe_cell, []

    def dies_on_the_second_cell(*args, **kw):
        calls.append(args[3:5])
        if len(calls) == 2 and not killed:
            killed.append(True)
            raise Killed
        return real(*args, **kw)

    monkeypatch.setattr(frozen, "probe_cell", dies_on_the_second_cell)
    forwards.clear()
    with pytest.raises(Killed):
        job(setup, tmp_path / "killed")
    assert not (tmp_path / "killed").exists() and sum(forwards) == once
    forwards.clear()
    calls.clear()
    assert job(setup, tmp_path / "killed") == 0
    assert forwards == []  # the cache of the killed attempt served the re-run
    assert calls == [(0.1, 1), (1.0, 0), (1.0, 1)] and len(calls) == n_cells - 1  # the first cell was kept
    assert stripped(cells(tmp_path / "killed")) == stripped(cells(tmp_path / "whole"))
    assert staged(tmp_path) == []


def test_a_changed_backbone_file_recomputes_the_features(tmp_path, setup, monkeypatch, forwards):
    monkeypatch.chdir(tmp_path)
    pretrained = tmp_path / "pretrain"
    save_model(pretrained / "hcmoco", seed=0)
    assert job(setup, tmp_path / "first", pretrained=pretrained) == 0
    first, done = sum(forwards), []
    real = frozen.probe_cell

    def dies_on_the_first_cell(*args, **kw):
        if not done:
            done.append(True)
            raise Killed
        return real(*args, **kw)

    monkeypatch.setattr(frozen, "probe_cell", dies_on_the_first_cell)
    with pytest.raises(Killed):  # leaves the features of the first backbone cached
        job(setup, tmp_path / "second", pretrained=pretrained)
    assert any(p.name == "meta.json" for p in staged(tmp_path))
    save_model(pretrained / "hcmoco", seed=1)  # a different backbone file at the same path
    forwards.clear()
    assert job(setup, tmp_path / "second", pretrained=pretrained) == 0
    assert sum(forwards) == first  # recomputed, not read from the stale cache
    a, b = cells(tmp_path / "first"), cells(tmp_path / "second")
    assert a.keys() == b.keys() and any(a[k]["val_history"] != b[k]["val_history"] for k in a)


def test_an_init_outside_frozen_inits_is_one_line(tmp_path, setup, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert job(setup, tmp_path / "x", init="sample") == 2
    assert capsys.readouterr().err.strip() == "error: --init: 'sample' is not scratch or one of frozen.inits (hcmoco)"
    assert job(setup, tmp_path / "x", pretrained=tmp_path / "nowhere") == 2
    assert "nowhere/hcmoco/depth_backbone.pt: backbone file not found (the frozen job of init 'hcmoco')" in \
        capsys.readouterr().err
