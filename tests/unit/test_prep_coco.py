import numpy as np
import pytest

from hcmoco.processed.shards import ProcessedSplit
from hcmoco.synth import LAYOUTS
from hcmoco.prepare import coco_keypoints
from hcmoco.prepare.crops import CropBox, crop_nearest, crop_rgb
from hcmoco.errors import HcmocoError
from tests.fixtures.raw_formats import write_coco_keypoints


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    facts = write_coco_keypoints(root / "raw")
    counts = coco_keypoints.prepare(root / "raw", root / "out", facts["resolution"])
    return root, facts, counts


def test_one_sample_per_usable_person_in_each_split(prepared):
    root, facts, counts = prepared
    assert counts == {"train": 2, "test": 1}
    for split, raw in (("train", "train2014"), ("test", "val2014")):
        data = ProcessedSplit(root / "out" / split)
        assert len(data) == len(facts[split])  # crowd and 3-keypoint persons skipped
        assert data.index["layout"] == "coco17" and data.index["joints"] == LAYOUTS["coco17"]
        assert data.index["split"] == split and data.index["resolution"] == 48 and data.index["depth_kind"] is None
        assert raw in data.index["source"]
        assert data.modalities == {"rgb": True, "depth": False, "kp2d": True, "kp3d": False, "parsing": False,
                                   "iuv": False, "surface": False}
        assert data.fields["rgb"] == {"dtype": "uint8", "shape": [48, 48, 3]}
        assert data.fields["kp2d"] == {"dtype": "float32", "shape": [17, 3]}
    assert ProcessedSplit(root / "out" / "train").field("subject").tolist() == [1, 2]  # COCO image ids


def test_marked_keypoints_land_on_their_crop_pixels(prepared):
    root, facts, _ = prepared
    for (split, i, joint), ((x, y), channel) in facts["marks"].items():
        s = ProcessedSplit(root / "out" / split)[i]
        kp = s["kp2d"][joint]
        assert (int(kp[0]), int(kp[1])) == (x, y)
        row, col = np.unravel_index(np.argmax(s["rgb"][..., channel].astype(int)), (48, 48))
        assert (col, row) == (x, y), (split, i, joint)


def test_visibility_and_crop_geometry(prepared):
    root, _, _ = prepared
    s = ProcessedSplit(root / "out" / "train")[0]
    assert s["crop"].tolist() == [11.0, 6.0, 48.0]  # bbox (20, 10, 30, 40) squared, enlarged 1.2x
    assert s["kp2d"][0].tolist() == [19.5, 9.5, 2.0]  # nose (30, 15) + 0.5 - (11, 6)
    assert s["kp2d"][15, 2] == 1  # occluded stays occluded
    assert s["kp2d"][16].tolist() == [0.0, 0.0, 0.0]  # unlabelled
    t = ProcessedSplit(root / "out" / "train")[1]
    assert t["kp2d"][16, 2] == 0 and t["kp2d"][16, 1] >= 48  # labelled but outside the crop
    assert t["rgb"][:, :3].max() == 0  # crop columns 0-3 lie left of the image: black (3 blends)


def test_crop_helpers_keep_whole_pixels_at_integer_scales():
    image = np.arange(12 * 12, dtype=np.uint16).reshape(12, 12)
    box = CropBox(2.0, 3.0, 6.0)
    assert np.array_equal(crop_nearest(image, box, 6), image[3:9, 2:8])
    assert np.array_equal(crop_nearest(image, box, 12)[::2, ::2], image[3:9, 2:8])
    rgb = np.repeat((image % 256).astype(np.uint8)[..., None], 3, axis=2)
    assert np.array_equal(crop_rgb(rgb, box, 6), rgb[3:9, 2:8])
    assert crop_nearest(image, CropBox(-4.0, -4.0, 8.0), 8)[:4].max() == 0


def test_malformed_json_is_one_error_naming_the_file(tmp_path, capsys):
    write_coco_keypoints(tmp_path / "raw")
    bad = tmp_path / "raw" / "annotations" / "person_keypoints_val2014.json"
    bad.write_text(bad.read_text()[:100])
    with pytest.raises(HcmocoError, match="person_keypoints_val2014.json"):
        coco_keypoints.prepare(tmp_path / "raw", tmp_path / "out", 48)
    assert not (tmp_path / "out").exists()  # atomic: nothing half-written
    code = coco_keypoints.main(["--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "out"), "--resolution", "48"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "person_keypoints_val2014.json" in err[0]


def test_missing_image_names_the_file(tmp_path):
    write_coco_keypoints(tmp_path / "raw")
    (tmp_path / "raw" / "val2014" / "COCO_val2014_000000000003.jpg").unlink()
    with pytest.raises(HcmocoError, match="COCO_val2014_000000000003.jpg: missing"):
        coco_keypoints.prepare(tmp_path / "raw", tmp_path / "out", 48)


def test_bytes_do_not_depend_on_worker_count(tmp_path):
    write_coco_keypoints(tmp_path / "raw")

    def written(out, workers):
        coco_keypoints.prepare(tmp_path / "raw", tmp_path / out, 48, shard_size=1, workers=workers)
        return {p.relative_to(tmp_path / out).as_posix(): p.read_bytes()
                for p in sorted((tmp_path / out).rglob("*")) if p.is_file()}

    one = written("one", 1)
    assert len([name for name in one if name.startswith("train/rgb-")]) == 2  # one sample per shard
    assert one == written("two", 2)
