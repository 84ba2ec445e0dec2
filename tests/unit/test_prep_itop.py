import numpy as np
import pytest

from hcmoco.processed.shards import ProcessedSplit
from hcmoco.synth import LAYOUTS
from hcmoco.prepare import itop
from hcmoco.errors import HcmocoError
from tests.fixtures.raw_formats import write_itop

RESOLUTION = 64


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("itop")
    facts = write_itop(root / "raw")
    counts = itop.prepare(root / "raw", root / "out", RESOLUTION)
    return root, facts, counts


def test_valid_frames_only_with_synthhuman_fields_and_units(prepared):
    root, facts, counts = prepared
    assert counts == {"train": 3, "test": 2}
    for split in ("train", "test"):
        data = ProcessedSplit(root / "out" / split)
        assert data.field("image_id").tolist() == facts[split]["valid"]
        assert set(data.field("subject").tolist()) == {facts[split]["subject"]}
        assert data.index["layout"] == "itop15" and data.index["joints"] == LAYOUTS["itop15"]
        assert data.index["depth_kind"] == "background"
        assert data.fields["depth"] == {"dtype": "uint16", "shape": [RESOLUTION, RESOLUTION]}
        assert data.fields["kp3d"] == {"dtype": "float32", "shape": [15, 3]}
        assert data.fields["cam"] == {"dtype": "float32", "shape": [4]}
        # kp3d: camera millimetres, y down (ITOP's y points up)
        xyz = facts[split]["real_world_coordinates"][facts[split]["valid"]]
        np.testing.assert_allclose(data.field("kp3d"), xyz * [1000, -1000, 1000], rtol=1e-5, atol=0.05)
        depth = data.field("depth")
        assert 4400 <= np.percentile(depth[depth > 0], 90) <= 4600  # the wall at 4.5 m, in mm


def test_cam_projects_kp3d_onto_kp2d_and_every_joint_is_in_the_crop(prepared):
    root, _, _ = prepared
    for split in ("train", "test"):
        data = ProcessedSplit(root / "out" / split)
        kp3d, cam, kp2d = data.field("kp3d"), data.field("cam"), data.field("kp2d")
        uv = kp3d[..., :2] / kp3d[..., 2:] * cam[:, None, :2] + cam[:, None, 2:]
        scale = RESOLUTION / data.field("crop")[:, 2]
        # image_coordinates are the projection rounded to whole pixels
        assert np.all(np.abs(uv - kp2d[..., :2]) <= 0.5 * scale[:, None, None] + 1e-3)
        assert np.all(kp2d[..., 2] > 0)  # the label-free crop holds the whole person


def test_depth_marker_lands_on_the_head_joint(tmp_path):
    facts = write_itop(tmp_path / "raw")
    import h5py

    with h5py.File(tmp_path / "raw" / "ITOP_side_test_depth_map.h5", "r+") as f:
        data = f["data"][()]
        col, row = facts["test"]["image_coordinates"][0, 0]
        data[0, row - 3:row + 4, col - 3:col + 4] = 2.0  # a block nearer than the person
        f["data"][...] = data
    itop.prepare(tmp_path / "raw", tmp_path / "out", RESOLUTION)
    s = ProcessedSplit(tmp_path / "out" / "test")[0]
    rows, cols = np.nonzero(s["depth"] == 2000)
    assert len(rows) and abs(cols.mean() + 0.5 - s["kp2d"][0, 0]) <= 1 and abs(rows.mean() + 0.5 - s["kp2d"][0, 1]) <= 1


def test_test_inputs_do_not_depend_on_ground_truth_joints(prepared, tmp_path):
    root, _, _ = prepared
    write_itop(tmp_path / "raw", shift_test_joints=30)
    itop.prepare(tmp_path / "raw", tmp_path / "out", RESOLUTION)
    same, moved = ProcessedSplit(root / "out" / "test"), ProcessedSplit(tmp_path / "out" / "test")
    assert not np.allclose(same.field("kp2d"), moved.field("kp2d"))  # the labels did change
    assert not np.allclose(same.field("kp3d"), moved.field("kp3d"))
    for field in ("depth", "crop", "cam"):  # the input and its crop did not
        assert np.array_equal(same.field(field), moved.field(field)), field
    from hcmoco.tasks import person_depth_window  # background removal on the written crops: identical too

    for a, b in zip(same.field("depth"), moved.field("depth")):
        (cleared_a, z_a), (cleared_b, z_b) = person_depth_window(a), person_depth_window(b)
        assert np.array_equal(cleared_a, cleared_b) and z_a == z_b


def test_person_box_finds_an_off_centre_person_without_labels():
    depth = np.full((240, 320), 4500, np.uint16)
    depth[40:220, 230:270] = 2500  # person right of centre, 180 x 40 px, in front of a wall
    box = itop.person_box(depth)
    assert (box.left + box.side / 2, box.top + box.side / 2, box.side) == (250.0, 130.0, 1.2 * 180)
    depth[200:] = 2800  # a floor band at the person's depth spans every column: columns ignore it
    box = itop.person_box(depth)
    assert box.left + box.side / 2 == 250.0 and box.top <= 40 and box.top + box.side >= 220
    assert box.side <= 1.2 * 200
    empty = itop.person_box(np.zeros((240, 320), np.uint16))
    assert (empty.left, empty.top, empty.side) == (40.0, 0.0, 240.0)


def test_missing_label_dataset_is_one_error_naming_the_file(tmp_path, capsys):
    write_itop(tmp_path / "raw", drop="is_valid")
    with pytest.raises(HcmocoError, match="ITOP_side_train_labels.h5: missing dataset"):
        itop.prepare(tmp_path / "raw", tmp_path / "out", RESOLUTION)
    code = itop.main(["--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "out"), "--resolution", "64"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "ITOP_side_train_labels.h5" in err[0]
    assert not (tmp_path / "out").exists()
