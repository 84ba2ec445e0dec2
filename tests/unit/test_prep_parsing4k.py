import shutil

import numpy as np
import pytest

from hcmoco.processed.shards import ProcessedSplit
from hcmoco.prepare import parsing4k
from hcmoco.prepare.crops import write_depth_png
from hcmoco.prepare.h36m import PART_LABELS
from hcmoco.errors import HcmocoError
from tests.fixtures.raw_h36m import PART_COLOURS, PARTS
from tests.fixtures.raw_parsing4k import sample_name, write_raw_parsing4k

RES, TRAIN, VAL = 32, 12, 9
CLASS_OF = {value: i for i, (value, _) in enumerate(PART_LABELS)}


def load(out):
    splits = {s: ProcessedSplit(out / s) for s in ("train", "test")}
    ids = {s: (out / s / "samples.txt").read_text().split("\n")[:-1] for s in splits}
    return splits, ids


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return write_raw_parsing4k(tmp_path_factory.mktemp("p4k") / "raw", TRAIN, VAL)


def test_full_lists_in_order_with_aligned_modalities(raw, tmp_path):
    counts = parsing4k.prepare(raw, tmp_path / "out", RES, shard_size=128)
    assert counts == {"train": TRAIN, "test": VAL}
    splits, ids = load(tmp_path / "out")
    assert ids == {"train": [sample_name("train", k) for k in range(TRAIN)],
                   "test": [sample_name("test", k) for k in range(VAL)]}
    for split, data in splits.items():
        depth, parsing, rgb = data.field("depth"), data.field("parsing"), data.field("rgb")
        assert data.index["depth_kind"] == "masked" and data.index["setting"] == "full"
        # sample k carries depth 2000 + k: the order follows the list
        assert [int(d.max()) for d in depth] == [2000 + k for k in range(len(data))]
        assert np.array_equal(depth > 0, parsing > 0)
        assert data.field("subject").tolist() == [int(n[9:12]) for n in ids[split]]
        for value, _ in PARTS[:3]:
            label = parsing == CLASS_OF[value]
            core = label.copy()
            core[:, 1:-1, 1:-1] &= label[:, :-2, 1:-1] & label[:, 2:, 1:-1] & label[:, 1:-1, :-2] & label[:, 1:-1, 2:]
            core[:, [0, -1]] = core[:, :, [0, -1]] = False
            assert core.any() and np.abs(rgb[core].astype(int) - PART_COLOURS[value]).max() <= 12


def test_twenty_percent_setting_keeps_the_head_of_each_list(raw, tmp_path, monkeypatch):
    assert parsing4k.SETTINGS == {"full": None, "20pct": 392}  # 392 of 1,963: the public v3 lists
    monkeypatch.setitem(parsing4k.SETTINGS, "20pct", 5)  # the same cut on a small fixture
    assert parsing4k.main(["--raw", str(raw), "--out", str(tmp_path / "out"), "--resolution", str(RES),
                           "--setting", "20pct", "--workers", "1"]) == 0
    splits, ids = load(tmp_path / "out")
    assert ids == {"train": [sample_name("train", k) for k in range(5)],
                   "test": [sample_name("test", k) for k in range(5)]}
    assert splits["train"].index["setting"] == "20pct"
    assert [int(d.max()) for d in splits["test"].field("depth")] == [2000 + k for k in range(5)]


def test_rgb_is_optional_but_never_partial(tmp_path):
    root = write_raw_parsing4k(tmp_path / "raw", 3, 2, with_rgb=False)
    parsing4k.prepare(root, tmp_path / "out", RES)
    assert "rgb" not in ProcessedSplit(tmp_path / "out" / "train").fields
    shutil.copy(root / "depth" / f"MDepth-{sample_name('train', 0)}.png", root / "images" / "x.png")
    (root / "images" / f"{sample_name('train', 1)}.jpg").write_bytes(b"")
    with pytest.raises(HcmocoError, match=rf"images/{sample_name('train', 0)}\.jpg: missing"):
        parsing4k.prepare(root, tmp_path / "out2", RES)


def test_bad_list_line_and_mismatched_frames_are_named(tmp_path):
    root = write_raw_parsing4k(tmp_path / "raw", 3, 2, with_rgb=False)
    lines = (root / "val_list_v2.txt").read_text().splitlines()
    (root / "val_list_v2.txt").write_text("\n".join([lines[0], "images/oops.jpg", lines[1]]) + "\n")
    with pytest.raises(HcmocoError, match=r"val_list_v2\.txt:2: expected images/SsssCccc"):
        parsing4k.prepare(root, tmp_path / "out", RES)
    (root / "val_list_v2.txt").write_text("\n".join(lines) + "\n")
    write_depth_png(root / "depth" / f"MDepth-{sample_name('test', 1)}.png", np.zeros((10, 10), np.uint16))
    with pytest.raises(HcmocoError, match=r"png_annotation_v2/S002\w+\.png: labels \[48, 64\] do not match"):
        parsing4k.prepare(root, tmp_path / "out", RES)
    with pytest.raises(HcmocoError, match="unknown setting 'half'"):
        parsing4k.prepare(root, tmp_path / "out", RES, setting="half")
