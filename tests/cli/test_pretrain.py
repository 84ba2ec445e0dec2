import json

import pytest
import torch

from hcmoco.models import CheckpointMismatchError, HRNet, load_backbone, read_backbone
from hcmoco.train import pretrain as trainer
from tests.cli.conftest import REPO


def sources(smoke_data):
    return [smoke_data / "synth_ntu", smoke_data / "synth_mpii"]


def weights_of(run_dir):
    state = torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)
    return {**{f"model.{k}": v for k, v in state["model"].items()}, **{f"bank.{k}": v for k, v in state["bank"].items()}}


@pytest.mark.parametrize("stage, contrast", [(1, "batch"), (1, "bank"), (2, "bank")])
def test_resumed_run_ends_bit_identical(tmp_path, smoke_data, smoke_params, monkeypatch, stage, contrast):
    monkeypatch.chdir(tmp_path)
    cfg = {**smoke_params["pretrain"], "stage1_steps": 6, "stage2_steps": 6, "checkpoint_every": 3,
           "sample_contrast": contrast}
    weights = trainer.STAGE1_WEIGHTS if stage == 1 else cfg["variants"]["hcmoco"]
    init = None
    if stage == 2:
        trainer.pretrain(cfg, 1, trainer.STAGE1_WEIGHTS, sources(smoke_data), tmp_path / "stage1", None)
        init = tmp_path / "stage1"
    trainer.pretrain(cfg, stage, weights, sources(smoke_data), tmp_path / "straight", tmp_path / "c1", init)
    # killed after step 4: the checkpoint of step 3 survives, the outputs do not exist yet
    stopped = trainer.pretrain(cfg, stage, weights, sources(smoke_data), tmp_path / "resumed", tmp_path / "c2", init,
                               stop_after=4)
    assert stopped == {"stopped_at": 4} and not (tmp_path / "resumed").exists()
    assert list((tmp_path / "checkpoints").rglob("last.pt"))
    metrics = trainer.pretrain(cfg, stage, weights, sources(smoke_data), tmp_path / "resumed", tmp_path / "c2", init)
    assert metrics["resumed_from"] == 3
    a, b = weights_of(tmp_path / "straight"), weights_of(tmp_path / "resumed")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]
    assert (json.loads((tmp_path / "c1/history.json").read_text())
            == json.loads((tmp_path / "c2/history.json").read_text()))
    assert not list((tmp_path / "checkpoints").rglob("last.pt"))  # cleared once complete


def test_a_checkpoint_resumes_only_the_same_computation(tmp_path, smoke_data, smoke_params, monkeypatch):
    """Killed after its first checkpoint, then the data re-rendered with another synth.seed at the
    same path: the re-run starts over. Back on the first data, it resumes. A changed code
    version (any module the command imports) starts over too."""
    import shutil

    from hcmoco.synth.generate import generate_domain
    from hcmoco.train import resume

    monkeypatch.chdir(tmp_path)
    cfg = {**smoke_params["pretrain"], "stage1_steps": 6, "checkpoint_every": 3}
    data = [tmp_path / "data/synth_ntu", tmp_path / "data/synth_mpii"]
    for src, dst in zip(sources(smoke_data), data):
        shutil.copytree(src, dst)
    run = lambda **kw: trainer.pretrain(cfg, 1, trainer.STAGE1_WEIGHTS, data, tmp_path / "out", None, **kw)  # noqa: E731
    assert run(stop_after=4) == {"stopped_at": 4}
    shutil.move(data[0], tmp_path / "first_ntu")
    generate_domain("synth_ntu", {**smoke_params["synth"], "seed": 1}, data[0], workers=1)
    assert run(stop_after=1) == {"stopped_at": 1}  # new data: from step 0, nothing resumed
    assert len(list((tmp_path / "checkpoints").rglob("last.pt"))) == 1  # only the first run's
    shutil.rmtree(data[0])
    shutil.move(tmp_path / "first_ntu", data[0])
    monkeypatch.setattr(resume, "code_digest", lambda module: "edited")
    assert run()["resumed_from"] == 0  # same data, other code: starts over
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    assert run()["resumed_from"] == 3  # same data, same code: resumes


def test_stage2_changes_the_weights_and_exports_strict_backbones(tmp_path, smoke_data, smoke_params, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = {**smoke_params["pretrain"], "stage1_steps": 2, "stage2_steps": 2}
    trainer.pretrain(cfg, 1, trainer.STAGE1_WEIGHTS, sources(smoke_data), tmp_path / "s1", None)
    metrics = trainer.pretrain(cfg, 2, cfg["variants"]["hcmoco"], sources(smoke_data), tmp_path / "s2", None,
                               init=tmp_path / "s1")
    assert set(metrics["final"]) >= {"sample", "dense", "sparse_intra", "sparse_inter"}
    s1, s2 = weights_of(tmp_path / "s1"), weights_of(tmp_path / "s2")
    assert any(not torch.equal(s1[k], s2[k]) for k in s1)
    state, config, modality = read_backbone(tmp_path / "s2" / "depth_backbone.pt")
    assert modality == "depth"
    net = HRNet(config)
    load_backbone(net, state)
    assert torch.equal(net.state_dict()["conv1.weight"], s2["model.depth_encoder.conv1.weight"])
    state.pop(next(iter(state)))
    with pytest.raises(CheckpointMismatchError, match="missing"):
        load_backbone(HRNet(config), state)


def test_stage2_without_init_is_refused(tmp_path, smoke_data, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = trainer.main(["--params", str(REPO / "params/params.yaml"), "--profile", "smoke", "--stage", "2",
                         "--variant", "hcmoco", "--data", str(smoke_data / "synth_ntu"), "--out", "x"])
    assert code == 2 and "stage 2 needs --init" in capsys.readouterr().err


@pytest.mark.slow
def test_pretraining_aligns_modalities_on_held_out_people(tmp_path, smoke_params, monkeypatch):
    """Stage 1 on a few hundred pairs beats random weights at retrieving held-out pairs."""
    from hcmoco.synth.generate import generate_domain
    from hcmoco.eval.retrieval import evaluate

    monkeypatch.chdir(tmp_path)
    synth = {**smoke_params["synth"], "resolution": 32, "shard_size": 256, "domains": {
        "synth_ntu": {"train": 600, "test": 64, "subjects_train": 30, "subjects_test": 8},
        "synth_mpii": {"train": 300, "test": 16, "subjects_train": 15, "subjects_test": 2}}}
    for domain in synth["domains"]:
        generate_domain(domain, synth, tmp_path / domain, workers=2)
    cfg = {**smoke_params["pretrain"], "batch_size": 32, "stage1_steps": 150, "checkpoint_every": 1000}
    trainer.pretrain(cfg, 1, trainer.STAGE1_WEIGHTS, [tmp_path / "synth_ntu", tmp_path / "synth_mpii"],
                     tmp_path / "stage1", None)
    trained = evaluate(str(tmp_path / "stage1"), cfg, tmp_path / "synth_ntu")["pairs"]
    scratch = evaluate("scratch", cfg, tmp_path / "synth_ntu")
    chance = scratch["chance"]["median_rank"]
    scratch = scratch["pairs"]
    # random weights rank the true pair near the middle; trained ones far ahead of it
    assert min(p["median_rank"] for p in scratch.values()) > 0.6 * chance
    assert trained["depth->keypoints"]["median_rank"] < 0.5 * chance
    assert trained["keypoints->depth"]["median_rank"] < 0.5 * chance
    mean = lambda pairs: sum(p["median_rank"] for p in pairs.values()) / len(pairs)  # noqa: E731
    assert mean(trained) < mean(scratch)


def test_stage1_starts_both_encoders_from_imagenet_weights(tmp_path, smoke_data, smoke_params, monkeypatch):
    from hcmoco.models import HRNetConfig
    from hcmoco.models import imagenet
    from tests.unit.test_imagenet_init import official_file

    monkeypatch.chdir(tmp_path)
    weights = tmp_path / "hrnet_imagenet.pth"
    official_file(weights, HRNetConfig.preset(smoke_params["pretrain"]["backbone"]))
    loaded = []

    def load_and_record(net, path):
        result = imagenet.load_imagenet(net, path)
        loaded.append((net, {k: v.clone() for k, v in net.state_dict().items()}))
        return result

    monkeypatch.setattr(trainer, "load_imagenet", load_and_record)
    cfg = {**smoke_params["pretrain"], "stage1_steps": 1, "init_weights": str(weights)}
    trainer.pretrain(cfg, 1, trainer.STAGE1_WEIGHTS, sources(smoke_data), tmp_path / "stage1", None)
    assert len(loaded) == 2 and loaded[0][0] is not loaded[1][0]  # the RGB and the depth encoder
    reference = imagenet.read_state(weights)
    for _, state in loaded:
        assert torch.equal(state["conv1.weight"], reference["conv1.weight"])
