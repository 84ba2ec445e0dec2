"""DensePose-COCO whole images for DensePose R-CNN: canvas geometry, per-person targets (people
without DensePose labels are detector targets with no points, crowds are not), and ground truth
the evaluator reads in the same frame (detections built from it score GPS AP 1)."""
import json

import numpy as np
import pytest

from hcmoco.processed.shards import ProcessedSplit
from hcmoco.prepare import densepose_coco_detection as det
from hcmoco.eval import evaluate_densepose
from tests.fixtures.raw_formats import write_densepose

RES = 64  # the fixture's images are 90 x 100: scale 0.64


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("densepose_det")
    write_densepose(root / "raw")
    counts = det.prepare(root / "raw", root / "out", RES)
    return root / "out", counts


def test_images_fields_and_canvas(prepared):
    out, counts = prepared
    assert counts == {"train": 2, "test": 1}
    train = ProcessedSplit(out / "train")
    assert train.index["domain"] == det.DOMAIN and train.index["dp_max_people"] == 2
    assert train.fields["boxes"] == {"dtype": "float32", "shape": [2, 4]}
    assert train.fields["dp_xy"] == {"dtype": "float32", "shape": [2, 3, 2]}
    assert train.field("image_id").tolist() == [1, 2] and train.field("subject").tolist() == [1, 2]
    s = train[0]
    assert s["image_size"].tolist() == [58, 64] and float(s["scale"]) == pytest.approx(0.64)
    assert not s["rgb"][58:].any() and s["rgb"][:58].any()  # padding below the scaled image
    # the red mark at image (row 30, col 40) lands near (19.2, 25.6) on the canvas
    row, col = np.unravel_index(np.argmax(s["rgb"][..., 0].astype(int) - s["rgb"][..., 1]), (RES, RES))
    assert abs(row - 19.2) <= 1 and abs(col - 25.6) <= 1


def test_people_boxes_and_points(prepared):
    out, _ = prepared
    s = ProcessedSplit(out / "train")[0]
    assert int(s["box_count"]) == 2  # 101 (DensePose) and 102 (keypoints only)
    np.testing.assert_allclose(s["boxes"][0], np.array([20, 20, 60, 60]) * 0.64, rtol=1e-6)
    np.testing.assert_allclose(s["boxes"][1], np.array([60, 10, 90, 70]) * 0.64, rtol=1e-6)
    assert s["dp_count"].tolist() == [3, 0] and s["dp_part"][0].tolist() == [2, 1, 24]
    np.testing.assert_allclose(s["dp_xy"][0, 0], [(40.5 - 20) / 40 * 255, (30.5 - 20) / 40 * 255], rtol=1e-5)
    np.testing.assert_allclose(s["dp_uv"][0, 0], [0.25, 0.5])
    t = ProcessedSplit(out / "test")[0]
    assert int(t["box_count"]) == 1 and t["dp_count"].tolist() == [2, 0]  # the crowd is no target


def test_ground_truth_keeps_every_person_in_canvas_pixels(prepared):
    out, _ = prepared
    coco = json.loads((out / "train" / "densepose_coco.json").read_text())
    assert [im["id"] for im in coco["images"]] == [0, 1]
    assert [a["source"]["id"] for a in coco["annotations"]] == [101, 102, 201]
    p101, p102 = coco["annotations"][:2]
    assert p101["bbox"] == pytest.approx([12.8, 12.8, 25.6, 25.6]) and "dp_x" in p101 and len(p101["dp_masks"]) == 14
    assert "dp_x" not in p102 and "dp_masks" not in p102  # ignored by the evaluator
    test = json.loads((out / "test" / "densepose_coco.json").read_text())
    assert [(a["source"]["id"], a["iscrowd"]) for a in test["annotations"]] == [(301, 0), (302, 1)]


def test_detections_from_the_ground_truth_score_ap_one(prepared):
    out, _ = prepared
    coco = json.loads((out / "test" / "densepose_coco.json").read_text())
    dets = []
    for a in coco["annotations"]:
        if "dp_x" not in a:
            continue
        iuv = np.zeros((256, 256, 3))  # the box at 256 x 256: pixel floor(dp * 256 / 255)
        for x, y, i, u, v in zip(a["dp_x"], a["dp_y"], a["dp_I"], a["dp_U"], a["dp_V"]):
            iuv[int(y * 256 / 255), int(x * 256 / 255)] = (i, u, v)
        dets.append({"image_id": a["image_id"], "bbox": a["bbox"], "score": 0.9, "iuv": iuv})

    def exact(gi, gu, gv, di, du, dv):
        same = (gi == di) & np.isclose(gu, du) & np.isclose(gv, dv)
        return np.where(same, 0.0, np.inf)

    assert evaluate_densepose(coco, dets, exact)["AP"] == pytest.approx(1.0)
    shifted = [{**d, "bbox": [d["bbox"][0] + 3, *d["bbox"][1:]]} for d in dets]
    assert evaluate_densepose(coco, shifted, exact)["AP"] < 1.0


def test_cli_writes_both_splits(tmp_path):
    write_densepose(tmp_path / "raw")
    assert det.main(["--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "out"), "--resolution", "32",
                     "--workers", "1"]) == 0
    assert ProcessedSplit(tmp_path / "out/test").fields["rgb"]["shape"] == [32, 32, 3]
