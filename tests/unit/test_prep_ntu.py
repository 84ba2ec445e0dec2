import numpy as np
import pytest

from hcmoco.processed.shards import ProcessedSplit
from hcmoco.prepare import ntu
from hcmoco.prepare.homography import apply_homography
from hcmoco.errors import HcmocoError
from tests.fixtures.raw_ntu import (EMPTY_FRAME, EMPTY_FRAME_VIDEO, MARKER_MM, TWO_BODY_VIDEO, VIDEOS,
                                    write_raw_ntu)

RES, STEP, FRAMES = 64, 3, 7


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    base = tmp_path_factory.mktemp("ntu")
    raw = write_raw_ntu(base / "raw", frames=FRAMES, colour_size=(960, 540))
    counts = ntu.prepare(base / "raw", base / "out", RES, frame_step=STEP)
    splits = {s: ProcessedSplit(base / "out" / s) for s in ("train", "test")}
    ids = {s: (base / "out" / s / "samples.txt").read_text().split("\n")[:-1] for s in splits}
    return raw, counts, splits, ids


def test_every_kth_frame_and_cross_subject_split(prepared):
    raw, counts, splits, ids = prepared
    expected = {}
    for name in VIDEOS:
        frames = [f for f in range(1, FRAMES + 1, STEP) if not (name == EMPTY_FRAME_VIDEO and f == EMPTY_FRAME)]
        split = "train" if int(name[9:12]) in ntu.TRAIN_SUBJECTS else "test"
        expected.setdefault(split, []).extend(f"{name} {f}" for f in frames)
    assert ids == expected  # frames 1, 4, 7; the body-less frame 4 of one video is skipped
    assert counts == {s: len(v) for s, v in expected.items()} == {"train": 12, "test": 11}
    for split, data in splits.items():
        assert len(data) == counts[split]
        subjects = set(data.field("subject").tolist())
        assert subjects == {int(i[9:12]) for i in ids[split]}
        assert (subjects <= set(ntu.TRAIN_SUBJECTS)) == (split == "train")
        assert not subjects & set(ntu.TRAIN_SUBJECTS) or split == "train"
    index = splits["train"].index
    assert index["layout"] == "itop15" and index["depth_kind"] == "masked" and index["resolution"] == RES
    assert index["fields"]["rgb"]["shape"] == [RES, RES, 3] and index["fields"]["depth"]["dtype"] == "uint16"
    assert index["fields"]["kp2d"]["shape"] == [15, 3] and index["fields"]["kp3d"]["dtype"] == "float32"


def test_each_setup_camera_gets_its_own_homography(prepared):
    raw, _, splits, _ = prepared
    calibration = splits["train"].index["calibration"]
    assert sorted(calibration) == ["S001C001", "S001C002", "S002C001", "S002C003"]
    person = np.stack(np.meshgrid(np.linspace(700, 1300, 7), np.linspace(300, 800, 6)), -1).reshape(-1, 2)
    for (setup, camera), truth in raw.homographies.items():
        fitted = np.array(calibration[f"S{setup:03d}C{camera:03d}"]["colour_to_depth"])
        assert np.abs(apply_homography(fitted, person) - apply_homography(truth, person)).max() < 0.5
    # the fixture's homographies differ by tens of pixels, so a mix-up could not pass the marker test
    h23, h21 = raw.homographies[(2, 3)], raw.homographies[(2, 1)]
    assert np.abs(apply_homography(h23, person) - apply_homography(h21, person)).min() > 20


def test_homography_is_looked_up_from_the_video_name():
    calibs = {g: ntu.Calibration(np.eye(3) * (i + 1), np.zeros(4), 0, 0, 0.0)
              for i, g in enumerate(["S001C001", "S002C001", "S002C003", "S003C002"])}
    assert ntu.homography_for("S002C003P005R001A001", calibs) is calibs["S002C003"]
    assert ntu.homography_for("S003C002P001R002A010", calibs) is calibs["S003C002"]
    with pytest.raises(HcmocoError, match="no calibration for S004C001"):
        ntu.homography_for("S004C001P001R001A001", calibs)


def _centroid(mask):
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()]) if len(xs) else np.array([np.nan, np.nan])


def test_rgb_marker_lands_on_the_depth_marker(prepared):
    _, _, splits, ids = prepared
    for split, data in splits.items():
        for i in range(len(data)):
            s = data[i]
            red = (s["rgb"][..., 0] > 180) & (s["rgb"][..., 1] < 90) & (s["rgb"][..., 2] < 90)
            marker = s["depth"] == MARKER_MM
            assert red.sum() >= 9 and marker.sum() >= 9, ids[split][i]
            assert np.abs(_centroid(red) - _centroid(marker)).max() < 0.75, ids[split][i]
            assert (s["depth"][~marker] > 0).any() and s["depth"].min() == 0  # masked: person only


def test_keypoints_body_choice_and_camera_agree(prepared):
    raw, _, splits, ids = prepared
    for split, data in splits.items():
        kp2d, kp3d, cam = data.field("kp2d"), data.field("kp3d"), data.field("cam")
        tracked = kp2d[..., 2] == 2
        assert tracked.sum(axis=1).min() >= 12
        with np.errstate(divide="ignore", invalid="ignore"):  # untracked joints: kp3d = 0
            u = cam[:, None, 0] * kp3d[..., 0] / kp3d[..., 2] + cam[:, None, 2]
            v = cam[:, None, 1] * kp3d[..., 1] / kp3d[..., 2] + cam[:, None, 3]
        assert np.abs(np.stack([u, v], -1)[tracked] - kp2d[..., :2][tracked]).max() < 0.05
        assert np.all(kp2d[:, 13, 2] == 1)  # r_foot <- Kinect r_ankle, inferred
        assert np.all(kp2d[:, 7, 2] == 0) and np.all(kp3d[:, 7] == 0)  # l_hand not tracked
        for i, sample_id in enumerate(ids[split]):
            name, frame = sample_id.split()
            root = raw.roots[name][int(frame) - 1] * 1000  # spine_base; torso = spine_mid is 0.28 m above
            # the fixture's image y axis points down, so y flips; the second body sits 1 m to the side
            assert np.allclose(kp3d[i, 8], (root[0], -(root[1] + 280), root[2]), atol=1.0), sample_id
    assert any(i.startswith(TWO_BODY_VIDEO) for i in ids["train"])


def test_malformed_skeleton_names_file_and_line(tmp_path):
    write_raw_ntu(tmp_path / "raw", videos=("S001C001P001R001A001",), frames=2, colour_size=(192, 108))
    path = tmp_path / "raw" / "nturgb+d_skeletons" / "S001C001P001R001A001.skeleton"
    lines = path.read_text().split("\n")
    lines[9] = " ".join(lines[9].split()[:11])  # line 10: a joint line of frame 1 missing a value
    path.write_text("\n".join(lines))
    with pytest.raises(HcmocoError, match=r"S001C001P001R001A001\.skeleton:10: expected 12 joint values, got 11"):
        ntu.read_skeleton(path)
    lines[9] = lines[10]
    lines[3] = "5"  # the joint count of body 1
    path.write_text("\n".join(lines))
    with pytest.raises(HcmocoError, match=r"\.skeleton:4: expected 25 joints, got 5"):
        ntu.read_skeleton(path)


def test_cli_reports_one_line_errors(tmp_path, capsys):
    assert ntu.main(["--raw", str(tmp_path / "nothing"), "--out", str(tmp_path / "out"), "--resolution", "32"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "nturgb+d_skeletons: missing" in err[0]
    write_raw_ntu(tmp_path / "raw", videos=("S001C001P001R001A001",), frames=2, colour_size=(192, 108))
    code = ntu.main(["--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "out"), "--resolution", "32",
                     "--workers", "1"])
    assert code == 2 and "no samples for split(s) test" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_worker_processes_write_identical_bytes(tmp_path):
    write_raw_ntu(tmp_path / "raw", videos=("S001C001P001R001A001", "S001C001P003R001A001"), frames=2,
                  colour_size=(384, 216))
    ntu.prepare(tmp_path / "raw", tmp_path / "one", 32, workers=1)
    assert ntu.main(["--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "two"), "--resolution", "32",
                     "--workers", "2"]) == 0
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert len(files) > 10
    assert all((tmp_path / "one" / f).read_bytes() == (tmp_path / "two" / f).read_bytes() for f in files)


def test_colour_frames_must_be_a_scaling_of_kinects():
    assert np.allclose(ntu.colour_frame_scale((540, 960, 3), "f.jpg") @ (0.0, 0.0, 1.0), (0.5, 0.5, 1.0))
    with pytest.raises(HcmocoError, match=r"f\.jpg: frame 640x480 is not a 16:9 scaling"):
        ntu.colour_frame_scale((480, 640, 3), "f.jpg")
