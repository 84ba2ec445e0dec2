import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from hcmoco.processed import preview
from hcmoco.processed.shards import ProcessedSplit
from tests.cli.conftest import REPO


@pytest.mark.parametrize("domain", ["synth_ntu", "synth_itop", "synth_densepose"])
def test_preview_writes_a_png(tmp_path, smoke_data, domain, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = preview.main(["--params", str(REPO / "params/params.yaml"), "--profile", "smoke",
                         "--data", str(smoke_data / domain), "--out", "sheet.png"])
    assert code == 0
    from matplotlib.image import imread

    image = imread(tmp_path / "sheet.png")
    assert image.shape[0] > 100 and image.shape[1] > 300
    assert image[..., :3].std() > 0.05  # not blank


def test_densepose_annotations_match_the_labels(smoke_data):
    split_dir = smoke_data / "synth_densepose" / "test"
    coco = COCO(str(split_dir / "densepose_coco.json"))
    data = ProcessedSplit(split_dir)
    assert sorted(coco.getImgIds()) == list(range(len(data)))
    for ann in coco.loadAnns(coco.getAnnIds()):
        s = data[ann["image_id"]]
        x0, y0, w, h = ann["bbox"]
        assert np.array_equal(mask_utils.decode(ann["segmentation"]).astype(bool), s["parsing"] > 0)
        xs = np.floor(x0 + np.asarray(ann["dp_x"]) / 255.0 * w).astype(int)
        ys = np.floor(y0 + np.asarray(ann["dp_y"]) / 255.0 * h).astype(int)
        assert np.array_equal(s["iuv"][ys, xs, 0], np.asarray(ann["dp_I"]).astype(np.uint8))
        assert np.allclose(s["iuv"][ys, xs, 1] / 255.0, ann["dp_U"])
        assert len(ann["dp_masks"]) == 14
        present = {int(c) for c in np.unique(s["parsing"]) if c > 0}
        assert any(ann["dp_masks"]) and len(ann["dp_I"]) >= len(present)
        assert ann["num_keypoints"] == int((s["kp2d"][:, 2] > 0).sum())
