import json

import numpy as np
import pytest

from hcmoco.processed.shards import ProcessedSplit
from hcmoco.synth import LAYOUTS
from hcmoco.prepare import densepose_coco_real
from hcmoco.errors import HcmocoError
from hcmoco.eval.densepose import gt_mask
from tests.fixtures.raw_formats import write_densepose


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("densepose")
    facts = write_densepose(root / "raw")
    counts = densepose_coco_real.prepare(root / "raw", root / "out", facts["resolution"])
    return root / "out", facts, counts


def test_densepose_people_only_with_train_and_valminusminival_merged(prepared):
    out, facts, counts = prepared
    assert counts == {"train": 2, "test": 1}
    for split in ("train", "test"):
        data = ProcessedSplit(out / split)
        assert data.index["layout"] == "coco17" and data.index["joints"] == LAYOUTS["coco17"]
        assert data.index["parsing_classes"][0] == "background" and len(data.index["parsing_classes"]) == 15
        assert data.fields["dp_points"] == {"dtype": "float32", "shape": [facts["max_points"], 4]}
        assert data.fields["dp_part"] == {"dtype": "uint8", "shape": [facts["max_points"]]}
        assert data.fields["parsing"] == {"dtype": "uint8", "shape": [48, 48]}
        coco = json.loads((out / split / "densepose_coco.json").read_text())
        assert [a["source"]["id"] for a in coco["annotations"]] == facts[split]
        assert [im["id"] for im in coco["images"]] == list(range(len(data)))
    assert ProcessedSplit(out / "train").field("image_id").tolist() == [1, 2]


def test_points_parsing_and_marks_in_crop_coordinates(prepared):
    out, facts, _ = prepared
    for (split, i, point), (x, y) in facts["marks"].items():
        s = ProcessedSplit(out / split)[i]
        assert (int(s["dp_points"][point, 0]), int(s["dp_points"][point, 1])) == (x, y)
        row, col = np.unravel_index(np.argmax(s["rgb"][..., 0].astype(int)), (48, 48))
        assert (col, row) == (x, y)
    s = ProcessedSplit(out / "train")[0]
    assert int(s["dp_count"]) == 3 and s["dp_part"].tolist() == [2, 1, 24]
    np.testing.assert_allclose(s["dp_points"][0], [24.5, 14.5, 0.25, 0.5], atol=1e-4)
    t = ProcessedSplit(out / "train")[1]
    assert int(t["dp_count"]) == 1 and t["dp_part"][1:].tolist() == [0, 0] and not t["dp_points"][1:].any()
    # torso: box rows/cols 64..192 of 256 over bbox (20, 20, 40, 40) -> crop [14, 34); head (label 14) above
    expected = np.zeros((48, 48), np.uint8)
    expected[14:34, 14:34] = 1
    expected[4:14, 19:29] = 14
    assert np.array_equal(s["parsing"], expected)


def test_crop_annotations_describe_the_crops(prepared):
    out, _, _ = prepared
    coco = json.loads((out / "train" / "densepose_coco.json").read_text())
    ann = coco["annotations"][0]
    assert ann["bbox"] == [4.0, 4.0, 40.0, 40.0] and ann["image_id"] == 0
    x = ann["bbox"][0] + np.asarray(ann["dp_x"]) / 255.0 * ann["bbox"][2]
    s = ProcessedSplit(out / "train")[0]
    np.testing.assert_allclose(x, s["dp_points"][:3, 0], atol=1e-4)
    mask = gt_mask(ann, 48, 48)
    parsing = s["parsing"] > 0
    assert (mask & parsing).sum() / (mask | parsing).sum() > 0.9  # the evaluator sees the same person
    np.testing.assert_allclose(np.asarray(ann["keypoints"]).reshape(17, 3), s["kp2d"], atol=1e-3)


def test_malformed_masks_are_one_error_naming_the_file(tmp_path, capsys):
    write_densepose(tmp_path / "raw", masks=13)
    with pytest.raises(HcmocoError, match="densepose_coco_2014_train.json: annotation 101 needs 14 dp_masks"):
        densepose_coco_real.prepare(tmp_path / "raw", tmp_path / "out", 48)
    code = densepose_coco_real.main(["--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "out"),
                                     "--resolution", "48"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "densepose_coco_2014_train.json" in err[0]
    assert not (tmp_path / "out").exists()
