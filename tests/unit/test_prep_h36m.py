import numpy as np
import pytest
from PIL import Image

from hcmoco.processed.shards import ProcessedSplit
from hcmoco.prepare import h36m
from hcmoco.errors import HcmocoError
from tests.fixtures.raw_h36m import COLS, PART_COLOURS, PARTS, ROWS, write_raw_h36m

RES = 32
CLASS_OF = {value: i for i, (value, _) in enumerate(h36m.PART_LABELS)}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    base = tmp_path_factory.mktemp("h36m")
    write_raw_h36m(base / "raw")
    assert h36m.main(["--raw", str(base / "raw"), "--out", str(base / "out"), "--resolution", str(RES),
                      "--workers", "1", "--shard-size", "4"]) == 0
    splits = {s: ProcessedSplit(base / "out" / s) for s in ("train", "test")}
    ids = {s: (base / "out" / s / "samples.txt").read_text().split("\n")[:-1] for s in splits}
    return splits, ids


def test_every_25th_frame_and_subject_split(prepared):
    splits, ids = prepared
    assert ids["train"] == ["S1/Directions 1.54138969/00000000", "S1/Directions 1.54138969/00000025",
                            "S1/Directions 1.54138969/00000050", "S1/Walking.55011271/00000000",
                            "S1/Walking.55011271/00000025", "S1/Walking.55011271/00000050",
                            "S1/Walking.55011271/00000075", "S5/Eating.58860488/00000000",
                            "S5/Eating.58860488/00000025"]
    assert ids["test"] == ["S9/Directions 1.54138969/00000000", "S9/Directions 1.54138969/00000025",
                           "S9/Directions 1.54138969/00000050", "S11/Phoning.60457274/00000000",
                           "S11/Phoning.60457274/00000025"]  # no _ALL video, no S2
    assert splits["train"].field("subject").tolist() == [1] * 7 + [5] * 2
    assert splits["test"].field("subject").tolist() == [9] * 3 + [11] * 2
    index = splits["train"].index
    assert len(index["classes"]) == 25 and index["classes"][CLASS_OF[46]] == "head"
    assert index["fields"]["parsing"] == {"dtype": "uint8", "shape": [RES, RES]}
    assert index["fields"]["rgb"] == {"dtype": "uint8", "shape": [RES, RES, 3]}
    assert len(index["shards"]) == 3  # 9 samples in shards of 4


def test_labels_are_mapped_and_aligned_with_rgb(prepared):
    splits, _ = prepared
    for data in splits.values():
        parsing, rgb = data.field("parsing"), data.field("rgb")
        assert set(np.unique(parsing).tolist()) == {0} | {CLASS_OF[v] for v, _ in PARTS}
        for value, _ in PARTS:
            label = parsing == CLASS_OF[value]
            core = label.copy()  # pixels whose 4 neighbours share the label: no blending at edges
            core[:, 1:-1, 1:-1] &= label[:, :-2, 1:-1] & label[:, 2:, 1:-1] & label[:, 1:-1, :-2] & label[:, 1:-1, 2:]
            core[:, [0, -1]] = core[:, :, [0, -1]] = False
            assert core.any()
            assert np.abs(rgb[core].astype(int) - PART_COLOURS[value]).max() <= 3
        # the person fills the crop's height (1.2x its box), centred
        rows = np.flatnonzero((parsing[0] > 0).any(axis=1))
        assert abs((rows[-1] + 1 - rows[0]) - RES / 1.2) <= 1.5


def test_pose_follows_the_crop(prepared):
    splits, _ = prepared
    head = h36m.H36M17.index("head")
    for data in splits.values():
        kp, parsing = data.field("kp2d"), data.field("parsing")
        assert data.index["layout"] == "h36m17" and kp.shape[1:] == (17, 3)
        assert np.all(kp[:, head, 2] == 2)
        cols, rows = np.floor(kp[:, head, :2]).astype(int).T
        assert np.all(parsing[np.arange(len(kp)), rows, cols] == CLASS_OF[46])


def test_unknown_label_value_names_the_file(tmp_path):
    write_raw_h36m(tmp_path / "raw", {"S1": {"A.1": range(1)}, "S9": {"A.1": range(1)}}, with_pose=False)
    bad = tmp_path / "raw" / "protocol_1" / "seg" / "S9" / "A.1" / "00000000.png"
    labels = np.zeros((ROWS, COLS), np.uint8)
    labels[5, 5] = 5
    Image.fromarray(labels).save(bad)
    with pytest.raises(HcmocoError, match=r"S9/A\.1/00000000\.png: label values \[5\] are not Human3\.6M"):
        h36m.prepare(tmp_path / "raw", tmp_path / "out", RES)
    assert not (tmp_path / "out").exists()


def test_partial_pose_and_missing_layout_fail_clearly(tmp_path, capsys):
    write_raw_h36m(tmp_path / "raw", {"S1": {"A.1": range(1)}, "S9": {"A.1": range(1)}})
    (tmp_path / "raw" / "protocol_1" / "pose2d" / "S9" / "A.1.npy").unlink()
    with pytest.raises(HcmocoError, match=r"pose2d/S9/A\.1\.npy: missing"):
        h36m.prepare(tmp_path / "raw", tmp_path / "out", RES)
    assert h36m.main(["--raw", str(tmp_path / "none"), "--out", str(tmp_path / "o"), "--resolution", "32"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "expected rgb/ and seg/" in err[0]
