"""DensePose on DensePose-COCO crops: fine-tuning reads the sparse points (plus the coarse mask as
background), and the test split is scored with the SMPL geodesics of the official evaluator."""
import json

import numpy as np
import pytest
import torch
import yaml

from hcmoco.config import load_params
from hcmoco.processed.splits import write_splits
from hcmoco.prepare import densepose_coco_detection
from hcmoco.prepare.densepose_coco_real import prepare
from hcmoco.tasks import IGNORE_INDEX, densepose, point_targets
from hcmoco.train import finetune as ft
from hcmoco.tasks.detection import DETECTION_FIELDS
from hcmoco.train.task_data import TaskData
from tests.cli.conftest import REPO
from tests.fixtures.raw_formats import write_densepose
from tests.unit.test_densepose_geodesic import write_data

torch.set_num_threads(1)


def test_point_targets_label_points_background_and_ignore_the_rest():
    parsing = np.zeros((1, 4, 5), np.uint8)
    parsing[0, 1:3, 1:4] = 1  # body
    points = np.array([[[2.7, 1.2, 0.25, 0.5], [0.0, 0.0, 0.0, 0.0]]], np.float32)
    i, u, v = point_targets(parsing, points, np.array([[7, 0]]), np.array([1]))
    expected = np.zeros((4, 5), np.int64)
    expected[1:3, 1:4] = IGNORE_INDEX
    expected[1, 2] = 7  # the point's pixel; the padding row is not a point
    assert np.array_equal(i[0].numpy(), expected)
    assert u[0, 1, 2] == 0.25 and v[0, 1, 2] == 0.5 and float(u.sum()) == 0.25


def _prepared_run(tmp_path, monkeypatch, preprocessor: str, resolution: int, finetune: dict) -> dict:
    """The raw fixture (with the evaluator's files) prepared by `preprocessor` as a real
    dataset of that name, a `real` profile fine-tuning only it, its splits; then one scratch
    fine-tuning run through the CLI. Returns the metrics."""
    raw = tmp_path / "raw"
    write_densepose(raw)
    (raw / "eval_data").mkdir()
    write_data(raw / "eval_data")
    module = {"densepose_coco_real": prepare, "densepose_coco_detection": densepose_coco_detection.prepare}
    module[preprocessor](raw, tmp_path / "processed", resolution)
    base = yaml.safe_load((REPO / "params/params.yaml").read_text())
    over = yaml.safe_load((REPO / "params/profiles/smoke.yaml").read_text())
    domain = "densepose_coco" if preprocessor == "densepose_coco_real" else preprocessor
    over["real"] = {"datasets": {domain: {"raw": "densepose_coco", "preprocessor": preprocessor}}}
    over["splits"].update(fractions=[1.0], val_fraction=0.5, tasks={"densepose": {"domain": domain}})
    over["finetune"].update(fractions=[1.0], eval_batch_size=2, **finetune)
    over["versatility"]["fraction"] = 1.0
    over["frozen"] = {**over.get("frozen", {}), "fractions": [1.0]}
    (tmp_path / "params/profiles").mkdir(parents=True)
    (tmp_path / "params/params.yaml").write_text(yaml.safe_dump(base))
    (tmp_path / "params/profiles/real.yaml").write_text(yaml.safe_dump(over))
    params = load_params(tmp_path / "params/params.yaml", "real")
    write_splits("densepose", domain, tmp_path / "processed", params["splits"], tmp_path / "splits")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run/metrics.json"
    assert ft.main(["--params", str(tmp_path / "params/params.yaml"), "--profile", "real", "--task", "densepose",
                    "--init", "scratch", "--fraction", "1.0", "--seed", "0", "--data", str(tmp_path / "processed"),
                    "--splits", str(tmp_path / "splits"), "--out", str(out)]) == 0
    return json.loads(out.read_text())


def test_densepose_coco_fine_tunes_and_scores_with_geodesics(tmp_path, monkeypatch):
    metrics = _prepared_run(tmp_path, monkeypatch, "densepose_coco_real", 48, {"batch_size": 2})
    data = TaskData("densepose", tmp_path / "processed/train")
    assert data.task is densepose.SPARSE and data.fields == densepose.SPARSE_FIELDS
    assert metrics["metric"] == "gps_ap" and metrics["test_size"] == 1
    details = metrics["test_details"]
    assert {"gps", "gpsm", "mean_gps"} <= set(details) and 0.0 <= details["mean_gps"] <= 1.0


def test_densepose_coco_whole_images_train_densepose_rcnn(tmp_path, monkeypatch):
    """The detection setting: whole images -> DensePose R-CNN on the HRNet backbone, selected on
    val and scored on the test images with the geodesic GPS AP."""
    rcnn = {"fpn_channels": 16, "representation_size": 32, "head_convs": 1, "head_channels": 16, "batch_size": 1,
            "detector": {"rpn_pre_nms_top_n_train": 50, "rpn_post_nms_top_n_train": 20, "rpn_pre_nms_top_n_test": 50,
                         "rpn_post_nms_top_n_test": 20, "box_batch_size_per_image": 16, "box_score_thresh": 0.0,
                         "box_detections_per_img": 5}}
    metrics = _prepared_run(tmp_path, monkeypatch, "densepose_coco_detection", 64,
                            {"min_steps": 3, "max_steps": 3, "eval_every": 3, "tasks": {"densepose": {"rcnn": rcnn}}})
    data = TaskData("densepose", tmp_path / "processed/train")
    assert data.task is densepose.RCNN and not data.task.keeps_predictions and data.fields == DETECTION_FIELDS
    assert metrics["metric"] == "gps_ap" and metrics["steps"] == 3 and metrics["batch_size"] == 1
    details = metrics["test_details"]
    assert details["setting"] == "detection" and details["num_samples"] == 1
    assert 0 < details["num_detections"] <= 5  # score threshold 0: the detector always answers
    assert {"gps", "gpsm", "mean_gps", "gpsm_ap"} <= set(details) and 0.0 <= details["mean_gps"] <= 1.0
    train = json.loads((tmp_path / "run/curves/history.json").read_text())["train"]
    assert len(train) == 3 and all(np.isfinite(r["loss"]) and r["loss"] > 0 for r in train)


def test_detection_options_are_checked_by_name():
    from hcmoco.config import ParamsError
    from hcmoco.tasks.detection import detector_options

    assert detector_options({"detector": {"box_detections_per_img": 7}}) == {"box_detections_per_img": 7}
    with pytest.raises(ParamsError, match="rcnn.detector.box_detection_per_img"):
        detector_options({"detector": {"box_detection_per_img": 7}})
    with pytest.raises(ParamsError, match="rcnn.detector.min_size"):  # fixed by the data's resolution
        detector_options({"detector": {"min_size": 800}})
