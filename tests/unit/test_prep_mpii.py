import numpy as np
import pytest
from scipy.io import savemat

from hcmoco.processed.shards import ProcessedSplit
from hcmoco.synth import LAYOUTS
from hcmoco.prepare import mpii
from hcmoco.errors import HcmocoError
from tests.fixtures.raw_formats import write_mpii


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("mpii")
    facts = write_mpii(root / "raw")
    counts = mpii.prepare(root / "raw", root / "out", facts["resolution"])
    splits = {s: ProcessedSplit(root / "out" / s) for s in ("train", "test")}
    return facts, counts, splits


def by_image(splits):
    """annolist index -> (split, sample index) of the written samples."""
    return {int(i): (name, k) for name, data in splits.items() for k, i in enumerate(data.field("image_id"))}


def test_only_labelled_training_people_are_kept(prepared):
    facts, counts, splits = prepared
    assert sum(counts.values()) == 3  # persons A, B, C; no unlabelled, test-image or 4-point person
    assert set(by_image(splits)) == {0, 1, 4}
    for name, data in splits.items():
        assert data.index["layout"] == "mpii16" and data.index["joints"] == LAYOUTS["mpii16"]
        assert data.fields["kp2d"] == {"dtype": "float32", "shape": [16, 3]}
        assert data.fields["rgb"] == {"dtype": "uint8", "shape": [50, 50, 3]}
        assert data.index["split"] == name and data.index["resolution"] == 50


def test_splits_hold_out_whole_videos(prepared):
    facts, _, splits = prepared
    subjects = {name: set(data.field("subject").tolist()) for name, data in splits.items()}
    assert subjects["train"].isdisjoint(subjects["test"]) and len(subjects["test"]) == 1
    for video, images in facts["videos"].items():
        assert {by_image(splits)[i][0] for i in images} == {"test" if video in subjects["test"] else "train"}


def test_marked_keypoints_land_on_their_crop_pixels(prepared):
    facts, _, splits = prepared
    where = by_image(splits)
    for (image, joint), ((x, y), channel) in facts["marks"].items():
        split, k = where[image]
        s = splits[split][k]
        assert (int(s["kp2d"][joint, 0]), int(s["kp2d"][joint, 1])) == (x, y)
        row, col = np.unravel_index(np.argmax(s["rgb"][..., channel].astype(int)), (50, 50))
        assert (col, row) == (x, y)
    split, k = where[0]
    assert splits[split][k]["crop"].tolist() == [35.0, 18.0, 50.0]  # objpos + 15 scale, side 1.25 * 200 * scale


def test_visibility_flags(prepared):
    facts, _, splits = prepared
    where = by_image(splits)
    for (image, joint), v in facts["visibility"].items():
        split, k = where[image]
        assert splits[split][k]["kp2d"][joint, 2] == v, (image, joint)


def test_a_mat_file_without_release_is_one_error(tmp_path, capsys):
    write_mpii(tmp_path / "raw")
    savemat(tmp_path / "raw" / "mpii_human_pose_v1_u12_1.mat", {"something": np.zeros(3)})
    with pytest.raises(HcmocoError, match="mpii_human_pose_v1_u12_1.mat: no RELEASE struct"):
        mpii.prepare(tmp_path / "raw", tmp_path / "out", 50)
    (tmp_path / "raw" / "mpii_human_pose_v1_u12_1.mat").write_bytes(b"not a mat file at all")
    code = mpii.main(["--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "out"), "--resolution", "50"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "mpii_human_pose_v1_u12_1.mat" in err[0]
    assert not (tmp_path / "out").exists()


def test_held_out_groups_are_deterministic_and_never_everything():
    groups = list(range(40))
    held = mpii.held_out_groups(groups, 0.1)
    assert len(held) == 4 and held == mpii.held_out_groups(list(reversed(groups)), 0.1)
    assert mpii.held_out_groups([5], 0.5) == set()
