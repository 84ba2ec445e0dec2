"""Downstream-task batches (inputs and targets per task) and the evaluation wiring on them."""
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from hcmoco.config import load_params
from hcmoco.synth.generate import generate_domain
from hcmoco.processed.transforms import normalise_depth, normalise_rgb
from hcmoco.errors import HcmocoError
from hcmoco.tasks import anchor_grid, densepose, uvd_to_xyz_mm
from hcmoco.tasks.parsing import NUM_CLASSES
from hcmoco.train.task_data import TaskData
from hcmoco.train.task_eval import evaluate
from tests.conftest import REPO

torch.set_num_threads(1)
DOMAINS = ("synth_h36m", "synth_parsing4k", "synth_itop", "synth_densepose")
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("taskdata")
    synth = load_params(REPO / "params/params.yaml", "smoke")["synth"]
    synth = {**synth, "resolution": 32, "shard_size": 8,
             "domains": {d: {"train": 12, "test": 6, "subjects_train": 3, "subjects_test": 2} for d in DOMAINS}}
    for domain in DOMAINS:
        generate_domain(domain, synth, root / domain, workers=1)
    return root


def test_pose3d_input_is_built_without_the_joints(data, tmp_path):
    """Corrupting kp3d / kp2d on disk changes the targets, never the network input."""
    shutil.copytree(data / "synth_itop/train", tmp_path / "train")
    for name in ("kp3d", "kp2d"):
        for f in (tmp_path / "train").glob(f"{name}-*.npy"):
            a = np.load(f)
            np.save(f, (a + np.float32(250.0)) * np.float32(1.5))
    idx = np.arange(10)
    clean, broken = TaskData("pose3d", data / "synth_itop/train").batch(idx), TaskData("pose3d", tmp_path / "train").batch(idx)
    assert torch.equal(clean["input"], broken["input"]) and torch.equal(clean["z_ref"], broken["z_ref"])
    assert not torch.equal(clean["target_xy"], broken["target_xy"])
    assert not torch.equal(clean["target_depth"], broken["target_depth"])


def test_pose3d_targets_reproject_onto_the_joints_and_background_is_cleared(data):
    td = TaskData("pose3d", data / "synth_itop/train")
    idx = np.arange(len(td))
    b = td.batch(idx)
    raw = td.split.take(idx, ["depth", "kp2d"])
    assert b["input"].shape == (len(idx), 3, 32, 32) and b["visible"].all()
    torch.testing.assert_close(b["target_xy"], torch.from_numpy(raw["kp2d"][..., :2]), atol=1e-3, rtol=0)
    xyz = uvd_to_xyz_mm(b["target_xy"], b["z_ref"][:, None] + b["target_depth"], b["cam"])
    torch.testing.assert_close(xyz, b["kp3d"], atol=0.5, rtol=0)
    valid = b["input"][:, 0] != 0
    assert valid.sum() < (raw["depth"] > 0).sum()  # some background went
    assert b["input"][:, 0][valid].min() >= -0.6 - 1e-4 and b["input"][:, 0][valid].max() <= 0.8 + 1e-4
    # the person's reference depth lies among the joints' depths
    z = b["kp3d"][..., 2] / 1000
    assert ((b["z_ref"] > z.min(1).values - 0.3) & (b["z_ref"] < z.max(1).values + 0.3)).float().mean() >= 0.9


def test_parsing_and_densepose_batches(data):
    idx = np.array([3, 0, 5])
    for task, domain, norm, field in (("parsing", "synth_h36m", normalise_rgb, "rgb"),
                                      ("depth_parsing", "synth_parsing4k", normalise_depth, "depth")):
        td = TaskData(task, data / domain / "train")
        b, raw = td.batch(idx), td.split.take(idx, [field, "parsing"])
        assert torch.equal(b["input"], norm(raw[field]))
        assert b["parsing"].dtype == torch.int64 and torch.equal(b["parsing"], torch.from_numpy(raw["parsing"]).long())
    td = TaskData("densepose", data / "synth_densepose/train")
    b, raw = td.batch(idx), td.split.take(idx, ["iuv"])["iuv"]
    assert torch.equal(b["part"], torch.from_numpy(raw[..., 0]).long())
    torch.testing.assert_close(b["u"], torch.from_numpy(raw[..., 1]).float() / 255)
    assert b["part"].max() <= 24 and (b["part"] > 0).any()


def test_missing_field_and_unknown_task_are_clear_errors(data):
    with pytest.raises(HcmocoError, match="task pose3d needs field.*depth"):
        TaskData("pose3d", data / "synth_h36m/train")
    with pytest.raises(HcmocoError, match="unknown task"):
        TaskData("segmentation", data / "synth_h36m/train")


def test_class_counts_and_densepose_annotations_of_a_subset(data):
    td = TaskData("depth_parsing", data / "synth_parsing4k/train")
    idx = np.array([1, 4, 7])
    counts = td.class_counts(idx, chunk=2)
    assert counts.shape == (NUM_CLASSES,) and counts.sum() == 3 * 32 * 32
    assert counts[0] == (td.split.take(idx, ["parsing"])["parsing"] == 0).sum()
    gt = densepose.ground_truth(TaskData("densepose", data / "synth_densepose/train"), idx)
    assert [im["id"] for im in gt["images"]] == [1, 4, 7]
    assert {a["image_id"] for a in gt["annotations"]} <= {1, 4, 7}


class Oracle(nn.Module):
    """Returns stored outputs for inputs it has seen (keyed by the input's bytes)."""

    def __init__(self, pairs):
        super().__init__()
        self.table = {x.numpy().tobytes(): y for x, y in pairs}
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        outs = [self.table[s.numpy().tobytes()] for s in x]
        if isinstance(outs[0], dict):
            return {k: (outs[0][k] if k == "anchors" else torch.stack([o[k] for o in outs])) for k in outs[0]}
        return torch.stack(outs)


def _oracle(task, td, idx):
    b = td.batch(idx)
    pairs = []
    for i in range(len(idx)):
        if task in ("parsing", "depth_parsing"):
            y = 10.0 * nn.functional.one_hot(b["parsing"][i], NUM_CLASSES).permute(2, 0, 1).float()
        elif task == "pose3d":
            anchors = anchor_grid(2, 2)  # 32 px crop, stride-16 map
            logits = torch.zeros(len(anchors), 15)
            logits[0] = 60.0
            y = {"logits": logits, "anchors": anchors,
                 "offsets": (b["target_xy"][i] - anchors[0])[None].expand(len(anchors), 15, 2).clone(),
                 "depth": b["target_depth"][i][None].expand(len(anchors), 15).clone()}
        else:
            part = 10.0 * nn.functional.one_hot(b["part"][i], NUM_CLASSES).permute(2, 0, 1).float()
            y = {"part": part, "u": b["u"][i][None].expand(24, -1, -1).clone(),
                 "v": b["v"][i][None].expand(24, -1, -1).clone()}
        pairs.append((b["input"][i], y))
    return Oracle(pairs)


@pytest.mark.parametrize("task, domain, key", [("parsing", "synth_h36m", "miou"),
                                               ("depth_parsing", "synth_parsing4k", "miou"),
                                               ("pose3d", "synth_itop", "map_10cm"),
                                               ("densepose", "synth_densepose", "gps_ap")])
def test_perfect_predictions_score_one(data, task, domain, key):
    """Ground truth fed through each task's decoding and metric scores (close to) perfectly:
    the geometry (crop pixels, z_ref, intrinsics) and the DensePose detections are wired right."""
    td = TaskData(task, data / domain / "test")
    idx = np.arange(len(td))
    m = evaluate(task, _oracle(task, td, idx), td, idx, device=CPU, batch_size=4)
    assert m["metric"] == key and m["num_samples"] == len(idx)
    assert m["value"] == pytest.approx(1.0)
    if task == "pose3d":
        assert m["mean_error_mm"] < 1.0
    if task == "densepose":
        assert m["num_detections"] == len(idx) and m["gpsm_ap"] > 0.5 and m["mean_gps"] == pytest.approx(1.0)
