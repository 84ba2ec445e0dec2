"""DensePose on DensePose-COCO crops: fine-tuning reads the sparse points (plus the coarse mask as
background), and the test split is scored with the SMPL geodesics of the official evaluator."""
import json

import numpy as np
import torch
import yaml

from hcmoco.config import load_params
from hcmoco.data.splits import write_splits
from hcmoco.datasets.densepose_coco_real import prepare
from hcmoco.tasks import IGNORE_INDEX, point_targets
from hcmoco.train import finetune as ft
from hcmoco.train.task_data import SPARSE_DENSEPOSE_FIELDS, TaskData
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


def test_densepose_coco_fine_tunes_and_scores_with_geodesics(tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    info = write_densepose(raw)
    (raw / "eval_data").mkdir()
    write_data(raw / "eval_data")
    prepare(raw, tmp_path / "processed", info["resolution"])
    base = yaml.safe_load((REPO / "params/params.yaml").read_text())
    over = yaml.safe_load((REPO / "params/profiles/smoke.yaml").read_text())
    over["real"] = {"datasets": {"densepose_coco": {"raw": "densepose_coco", "preprocessor": "densepose_coco_real"}}}
    over["splits"].update(fractions=[1.0], val_fraction=0.5,
                          tasks={"densepose": {"domain": "densepose_coco"}})
    over["finetune"].update(fractions=[1.0], batch_size=2, eval_batch_size=2)
    over["versatility"]["fraction"] = 1.0
    (tmp_path / "params/profiles").mkdir(parents=True)
    (tmp_path / "params/params.yaml").write_text(yaml.safe_dump(base))
    (tmp_path / "params/profiles/real.yaml").write_text(yaml.safe_dump(over))
    params = load_params(tmp_path / "params/params.yaml", "real")
    write_splits("densepose", "densepose_coco", tmp_path / "processed", params["splits"], tmp_path / "splits")
    assert TaskData("densepose", tmp_path / "processed/train").fields == SPARSE_DENSEPOSE_FIELDS
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run/metrics.json"
    assert ft.main(["--params", str(tmp_path / "params/params.yaml"), "--profile", "real", "--task", "densepose",
                    "--init", "scratch", "--fraction", "1.0", "--seed", "0", "--data", str(tmp_path / "processed"),
                    "--splits", str(tmp_path / "splits"), "--out", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["metric"] == "gps_ap" and metrics["test_size"] == 1
    details = metrics["test_details"]
    assert {"gps", "gpsm", "mean_gps"} <= set(details) and 0.0 <= details["mean_gps"] <= 1.0
