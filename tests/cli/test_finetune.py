"""Fine-tuning CLI: every task end to end, strict backbone loading, frozen backbone, model
selection on val, determinism and resume."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from hcmoco.config import load_params
from hcmoco.processed.keypoints import COMMON_EDGES
from hcmoco.processed.shards import ProcessedSplit
from hcmoco.processed.splits import write_splits
from hcmoco.models import HCMoCo, HRNetConfig, read_backbone, save_backbone
from hcmoco.train import finetune as ft
from tests.cli.conftest import REPO

torch.set_num_threads(1)

TINY = {"batch_size": 4, "eval_batch_size": 8, "min_steps": 4, "max_steps": 4, "eval_every": 2,
        "checkpoint_every": 2, "tasks": {"pose3d": {"a2j_channels": 8, "a2j_convs": 1}}}
DOMAINS = {"parsing": "synth_h36m", "depth_parsing": "synth_parsing4k", "pose3d": "synth_itop",
           "densepose": "synth_densepose"}


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(base.get(k, {}), v) if isinstance(v, dict) else v
    return out


@pytest.fixture(scope="module")
def setup(tmp_path_factory, smoke_data):
    """A params file with a `tiny` profile (smoke + TINY fine-tuning), and split files."""
    root = tmp_path_factory.mktemp("finetune")
    base = yaml.safe_load((REPO / "params/params.yaml").read_text())
    smoke = yaml.safe_load((REPO / "params/profiles/smoke.yaml").read_text())
    smoke["finetune"] = _merge(smoke.get("finetune") or {}, TINY)
    (root / "params/profiles").mkdir(parents=True)
    (root / "params/params.yaml").write_text(yaml.safe_dump(base))
    (root / "params/profiles/tiny.yaml").write_text(yaml.safe_dump(smoke))
    params = load_params(root / "params/params.yaml", "tiny")
    for task, domain in DOMAINS.items():
        write_splits(task, domain, smoke_data / domain, params["splits"], root / "splits" / task)
    model = HCMoCo(HRNetConfig.preset(params["pretrain"]["backbone"]), 14, COMMON_EDGES)
    for modality in ("rgb", "depth"):
        save_backbone(root / f"{modality}_backbone.pt", model, modality)
    return {"root": root, "params": params, "data": smoke_data}


def cli(setup, task, out, *extra, init="scratch", fraction="1.0"):
    root = setup["root"]
    return ft.main(["--params", str(root / "params/params.yaml"), "--profile", "tiny", "--task", task,
                    "--init", init, "--fraction", fraction, "--seed", "0",
                    "--data", str(setup["data"] / DOMAINS[task]), "--splits", str(root / "splits" / task),
                    "--out", str(out), *extra])


def run(setup, task, out, **kw):
    """The library entry point with the tiny params, optionally changed by `kw` (finetune keys)."""
    params = {**setup["params"], "finetune": {**setup["params"]["finetune"], **kw.pop("cfg", {})}}
    return ft.finetune(params, task, kw.pop("init", "scratch"), kw.pop("fraction", 1.0), 0,
                       setup["data"] / DOMAINS[task], setup["root"] / "splits" / task, kw.pop("backbone_file", None),
                       out, kw.pop("curves", None), **kw)


@pytest.mark.parametrize("task, init, modality", [("parsing", "hcmoco", "rgb"), ("depth_parsing", "scratch", None),
                                                  ("pose3d", "hcmoco", "depth"), ("densepose", "scratch", None)])
def test_each_task_writes_metrics_curves_and_log(tmp_path, setup, monkeypatch, task, init, modality):
    monkeypatch.chdir(tmp_path)
    out = Path("results/tiny/finetune") / task / f"init~{init}/fraction~0.1/seed~0/metrics.json"
    extra = ["--backbone-file", str(setup["root"] / f"{modality}_backbone.pt")] if modality else []
    assert cli(setup, task, out, *extra, init=init, fraction="0.1") == 0
    m = json.loads(out.read_text())
    assert m["task"] == task and m["init"] == init and m["fraction"] == 0.1 and m["seed"] == 0
    assert m["metric"] == {"parsing": "miou", "depth_parsing": "miou", "pose3d": "map_10cm",
                           "densepose": "gps_ap"}[task]
    assert np.isfinite(m["test"]) and 0 <= m["test"] <= 1 and np.isfinite(m["val"])
    assert m["steps"] == 4 and m["best_step"] in (2, 4) and [e["step"] for e in m["val_history"]] == [2, 4]
    assert m["train_size"] >= 1 and m["val_size"] >= 1 and m["test_size"] == 12
    assert m["git"] and m["seconds"] > 0 and m["test_details"]["num_samples"] == 12
    detail = {"parsing": "per_class_iou", "depth_parsing": "per_class_iou", "pose3d": "per_joint",
              "densepose": "gpsm_ap"}[task]
    assert detail in m["test_details"]
    assert (out.parent / "curves" / "history.json").is_file()
    assert list((out.parent / "curves").rglob("loss.tsv"))
    # the selected state's predictions of the first 4 test samples, drawable (hcmoco.results.qualitative)
    with np.load(out.parent / "predictions.npz") as npz:
        pred = dict(npz)
    test = ProcessedSplit(setup["data"] / DOMAINS[task] / "test")
    h, w = test.fields["rgb" if task in ("parsing", "densepose") else "depth"]["shape"][:2]
    shapes = {"parsing": {"parsing": ((4, h, w), np.uint8)}, "depth_parsing": {"parsing": ((4, h, w), np.uint8)},
              "densepose": {"iuv": ((4, h, w, 3), np.uint8)},
              "pose3d": {"kp3d": ((4, 15, 3), np.float32), "kp2d": ((4, 15, 2), np.float32)}}[task]
    assert pred.keys() == {"index", *shapes} and pred["index"].tolist() == [0, 1, 2, 3]
    assert {k: (pred[k].shape, pred[k].dtype) for k in shapes} == shapes
    assert all(np.isfinite(pred[k]).all() for k in shapes)
    if task in ("parsing", "depth_parsing"):
        assert pred["parsing"].max() < 25
    if task == "densepose":
        assert pred["iuv"][..., 0].max() <= 24
    log = [json.loads(line) for line in Path("logs", str(out) + ".jsonl").read_text().splitlines()]
    assert log[0]["event"] == "start" and log[-1]["event"] == "done"
    assert not list(Path("checkpoints").rglob("last.pt"))  # cleared once complete


def test_backbone_file_with_missing_key_fails_with_one_clear_error(tmp_path, setup, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    payload = torch.load(setup["root"] / "rgb_backbone.pt", weights_only=True)
    dropped = sorted(payload["state_dict"])[3]
    del payload["state_dict"][dropped]
    torch.save(payload, tmp_path / "broken.pt")
    assert cli(setup, "parsing", tmp_path / "m.json", "--backbone-file", str(tmp_path / "broken.pt"), init="hcmoco") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "missing" in err and dropped in err
    assert not (tmp_path / "m.json").exists()
    # the depth backbone for an RGB task, a config other than the params' preset, no file at all
    assert cli(setup, "parsing", tmp_path / "m.json", "--backbone-file", str(setup["root"] / "depth_backbone.pt"),
               init="hcmoco") == 2
    assert "holds the depth backbone" in capsys.readouterr().err
    payload = torch.load(setup["root"] / "rgb_backbone.pt", weights_only=True)
    payload["config"]["stem_width"] = 16
    torch.save(payload, tmp_path / "other.pt")
    assert cli(setup, "parsing", tmp_path / "m.json", "--backbone-file", str(tmp_path / "other.pt"), init="hcmoco") == 2
    assert "differs from the params' backbone preset" in capsys.readouterr().err
    assert cli(setup, "parsing", tmp_path / "m.json", init="hcmoco") == 2
    assert "needs the pre-trained rgb backbone file" in capsys.readouterr().err


def test_frozen_backbone_stays_bit_identical_while_the_head_trains(tmp_path, setup, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seen = []
    real = ft.evaluate

    def spy(task, model, *args, **kw):
        seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return real(task, model, *args, **kw)

    monkeypatch.setattr(ft, "evaluate", spy)
    loaded, _, _ = read_backbone(setup["root"] / "depth_backbone.pt")
    run(setup, "depth_parsing", tmp_path / "m.json", cfg={"freeze_backbone": True}, init="hcmoco",
        backbone_file=setup["root"] / "depth_backbone.pt")
    assert len(seen) == 3  # val at steps 2 and 4, test once
    for state in seen:
        backbone = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
        assert backbone.keys() == loaded.keys()
        assert all(torch.equal(backbone[k], loaded[k]) for k in loaded)  # BN statistics included
    head = [k for k in seen[0] if k.startswith("head.") and seen[0][k].is_floating_point()]
    assert any(not torch.equal(seen[1][k], seen[0][k]) for k in head)  # the head did train


def test_model_selection_reads_val_and_tests_only_the_selected_state(tmp_path, setup, monkeypatch):
    monkeypatch.chdir(tmp_path)
    val_values, calls = iter([0.2, 0.7, 0.4, 0.1]), []

    def fake(task, model, data, indices, **kw):
        split = data.split.index["split"]
        calls.append((split, next(iter(model.parameters())).detach().clone()))
        # the test split would prefer the last state: selecting on it would pick step 8
        return {"metric": "miou", "value": next(val_values) if split == "train" else 0.9, "num_samples": len(indices)}

    monkeypatch.setattr(ft, "evaluate", fake)
    m = run(setup, "parsing", tmp_path / "m.json", cfg={"min_steps": 8, "max_steps": 8})
    assert [c[0] for c in calls] == ["train"] * 4 + ["test"]  # val (a carve of train) 4x, test once at the end
    assert m["best_step"] == 4 and m["val"] == 0.7 and m["test"] == 0.9
    assert torch.equal(calls[-1][1], calls[1][1]) and not torch.equal(calls[-1][1], calls[3][1])
    # a tie on the main metric (a GPS AP still 0) goes to the better tiebreak, not the first state
    tied = iter([(0.0, 0.1), (0.0, 0.3), (0.0, 0.2)])

    def flat(task, model, data, indices, **kw):
        value, tiebreak = next(tied) if data.split.index["split"] == "train" else (0.5, None)
        return {"metric": "gps_ap", "value": value, "tiebreak": tiebreak, "num_samples": len(indices)}

    monkeypatch.setattr(ft, "evaluate", flat)
    assert run(setup, "parsing", tmp_path / "m2.json", cfg={"min_steps": 6, "max_steps": 6})["best_step"] == 4


def test_same_seed_same_metrics_and_resume_is_bit_identical(tmp_path, setup, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = {"min_steps": 6, "max_steps": 6, "eval_every": 3, "checkpoint_every": 2}
    a = run(setup, "pose3d", Path("a/metrics.json"), cfg=cfg, curves=Path("a/curves"))
    b = run(setup, "pose3d", Path("b/metrics.json"), cfg=cfg, curves=Path("b/curves"))
    assert run(setup, "pose3d", Path("c/metrics.json"), cfg=cfg, curves=Path("c/curves"), stop_after=5) \
        == {"stopped_at": 5}
    assert not Path("c/metrics.json").exists() and list(Path("checkpoints").rglob("last.pt"))
    c = run(setup, "pose3d", Path("c/metrics.json"), cfg=cfg, curves=Path("c/curves"))
    assert c["resumed_from"] == 4
    drop = ("seconds", "git", "resumed_from")
    assert {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in b.items() if k not in drop}
    assert {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in c.items() if k not in drop}
    history = [json.loads(Path(d, "curves/history.json").read_text()) for d in "abc"]
    assert history[0] == history[1] == history[2]
    shown = [dict(np.load(Path(d, "predictions.npz"))) for d in "abc"]
    assert all(np.array_equal(shown[0][k], s[k]) for s in shown[1:] for k in ("index", "kp3d", "kp2d"))


@pytest.fixture(scope="module")
def detection(tmp_path_factory, setup):
    """SynthHuman's DensePose domain in the whole-image format, with its splits."""
    from hcmoco.processed.densepose_detection import convert

    root = tmp_path_factory.mktemp("detection")
    convert(setup["data"] / "synth_densepose", root / "synth_densepose_detection")
    params = {**setup["params"], "splits": {**setup["params"]["splits"],
                                            "tasks": {"densepose": {"domain": "synth_densepose_detection"}}}}
    params["finetune"] = {**params["finetune"], "tasks": {**params["finetune"]["tasks"], "densepose": {
        **params["finetune"]["tasks"]["densepose"], "rcnn": {
            **params["finetune"]["tasks"]["densepose"]["rcnn"], "fpn_channels": 16, "representation_size": 32,
            "head_convs": 1, "head_channels": 16, "batch_size": 2,
            "detector": {"rpn_post_nms_top_n_train": 50, "rpn_post_nms_top_n_test": 20,
                         "box_batch_size_per_image": 32, "box_detections_per_img": 3}}}}}
    write_splits("densepose", "synth_densepose_detection", root / "synth_densepose_detection", params["splits"],
                 root / "splits")
    return {"params": params, "data": root / "synth_densepose_detection", "splits": root / "splits"}


def test_detection_format_carries_the_annotations(setup, detection):
    from hcmoco.processed.shards import ProcessedSplit

    for name in ("train", "test"):
        split = ProcessedSplit(detection["data"] / name)
        coco = json.loads((split.path / "densepose_coco.json").read_text())
        dense = ProcessedSplit(setup["data"] / "synth_densepose" / name)
        assert len(split) == len(dense) and np.array_equal(split.field("rgb"), dense.field("rgb"))
        assert split.index["generator"] == dense.index["generator"]  # scored with the same distance
        for ann in coco["annotations"][:5]:
            s = split[ann["image_id"]]
            x, y, w, h = ann["bbox"]
            assert int(s["box_count"]) == 1
            np.testing.assert_allclose(s["boxes"][0], [x, y, x + w, y + h], rtol=1e-6)
            n = len(ann["dp_x"])
            assert int(s["dp_count"][0]) == n
            np.testing.assert_allclose(s["dp_xy"][0, :n, 0], ann["dp_x"], rtol=1e-6)
            np.testing.assert_array_equal(s["dp_part"][0, :n], np.round(ann["dp_I"]))


def test_densepose_rcnn_resumes_bit_identically_and_keeps_a_frozen_backbone(tmp_path, setup, detection,
                                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)

    def go(out, **kw):
        params = {**detection["params"], "finetune": {**detection["params"]["finetune"], **kw.pop("cfg", {})}}
        return ft.finetune(params, "densepose", kw.pop("init", "scratch"), 1.0, 0, detection["data"],
                           detection["splits"], kw.pop("backbone_file", None), Path(out), None, **kw)

    cfg = {"min_steps": 4, "max_steps": 4, "eval_every": 2, "checkpoint_every": 2}
    a = go("a/metrics.json", cfg=cfg)
    assert go("c/metrics.json", cfg=cfg, stop_after=3) == {"stopped_at": 3}
    c = go("c/metrics.json", cfg=cfg)
    assert c["resumed_from"] == 2 and a["test_details"]["setting"] == "detection"
    assert not Path("a/predictions.npz").exists()  # drawn for the dense heads only
    drop = ("seconds", "git", "resumed_from")
    assert {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in c.items() if k not in drop}
    assert a["test_details"]["num_detections"] > 0

    seen, real = [], ft.evaluate
    monkeypatch.setattr(ft, "evaluate", lambda task, model, *args, **kw: (
        seen.append({k: v.detach().clone() for k, v in model.state_dict().items()}), real(task, model, *args, **kw))[1])
    loaded, _, _ = read_backbone(setup["root"] / "rgb_backbone.pt")
    go("f/metrics.json", cfg={**cfg, "freeze_backbone": True}, init="hcmoco",
       backbone_file=setup["root"] / "rgb_backbone.pt")
    for state in seen:
        body = {k[len("backbone.body."):]: v for k, v in state.items() if k.startswith("backbone.body.")}
        assert body.keys() == loaded.keys() and all(torch.equal(body[k], loaded[k]) for k in loaded)
    neck = [k for k in seen[0] if k.startswith("backbone.neck.") and seen[0][k].is_floating_point()]
    assert neck and any(not torch.equal(seen[1][k], seen[0][k]) for k in neck)  # the neck is not frozen


def test_detection_converter_needs_the_coco_annotations(tmp_path, setup, capsys):
    from hcmoco.processed import densepose_detection

    assert densepose_detection.main(["--data", str(setup["data"] / "synth_h36m"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "synth_h36m/train/densepose_coco.json: missing" in err
    assert not (tmp_path / "o").exists()
