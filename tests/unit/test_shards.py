
import numpy as np
import pytest

from hcmoco.processed.shards import FormatError, ProcessedSplit, SplitWriter, shard_ranges


def write_fixture(path, n=10, shard=4):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (n, 8, 8, 3), dtype=np.uint8)
    kp = rng.normal(size=(n, 5, 3)).astype(np.float32)
    with SplitWriter(path, {"domain": "d", "split": "train"}) as w:
        for a, b in shard_ranges(n, shard):
            w.add_shard({"rgb": rgb[a:b], "kp2d": kp[a:b], "subject": np.arange(a, b, dtype=np.int32)})
    return rgb, kp


def test_round_trip_across_shards(tmp_path):
    rgb, kp = write_fixture(tmp_path / "s")
    split = ProcessedSplit(tmp_path / "s")
    assert len(split) == 10 and len(split.index["shards"]) == 3
    for i in range(10):
        s = split[i]
        assert np.array_equal(s["rgb"], rgb[i]) and np.array_equal(s["kp2d"], kp[i])
        assert s["has_rgb"] and not s["has_depth"]
    assert np.array_equal(split.field("subject"), np.arange(10))
    assert np.array_equal(split[-1]["rgb"], rgb[-1])
    with pytest.raises(IndexError):
        split[10]


def test_missing_shard_file_is_named(tmp_path):
    write_fixture(tmp_path / "s")
    (tmp_path / "s" / "rgb-00001.npy").unlink()
    with pytest.raises(FormatError, match=r"rgb-00001.npy: missing shard file"):
        ProcessedSplit(tmp_path / "s")


def test_shape_mismatch_is_named(tmp_path):
    write_fixture(tmp_path / "s")
    np.save(tmp_path / "s" / "kp2d-00000.npy", np.zeros((4, 6, 3), np.float32))
    with pytest.raises(FormatError, match=r"kp2d-00000.npy: array float32\[4, 6, 3\] does not match"):
        ProcessedSplit(tmp_path / "s")


def test_missing_index_and_unknown_field(tmp_path):
    with pytest.raises(FormatError, match="index.json: missing"):
        ProcessedSplit(tmp_path / "nothing")
    write_fixture(tmp_path / "s")
    with pytest.raises(FormatError, match="no field 'depth'"):
        ProcessedSplit(tmp_path / "s").field("depth")


def test_crash_leaves_no_partial_output(tmp_path):
    write_fixture(tmp_path / "s")
    before = (tmp_path / "s" / "index.json").read_text()
    with pytest.raises(RuntimeError):
        with SplitWriter(tmp_path / "s", {"domain": "d"}) as w:
            w.add_shard({"rgb": np.zeros((2, 8, 8, 3), np.uint8)})
            raise RuntimeError("killed")
    assert (tmp_path / "s" / "index.json").read_text() == before  # previous version intact
    assert [p.name for p in tmp_path.iterdir()] == ["s"]  # no temporary left behind


def test_shard_ranges_depend_on_sizes_only():
    assert list(shard_ranges(10, 4)) == [(0, 4), (4, 8), (8, 10)]


def test_take_gathers_across_shards_in_any_order(tmp_path):
    rgb, kp = write_fixture(tmp_path / "s")
    split = ProcessedSplit(tmp_path / "s")
    idx = np.array([9, 0, 5, 5, 3])
    got = split.take(idx, ["rgb", "kp2d"])
    assert np.array_equal(got["rgb"], rgb[idx]) and np.array_equal(got["kp2d"], kp[idx])
    with pytest.raises(IndexError):
        split.take(np.array([10]))
    with pytest.raises(FormatError, match="no field 'depth'"):
        split.take(idx, ["depth"])
