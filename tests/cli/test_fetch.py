import hashlib
import io
import json
import re
import tarfile
import zipfile

import pytest

from hcmoco.prepare import fetch, registry
from hcmoco.prepare.licensed import LayoutError, check_layout
from hcmoco.prepare.registry import LicensedDataset, PublicDataset, RemoteFile
from tests.unit.test_download import FileServer


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def zip_bytes(files: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tgz_bytes(files: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


PACK = zip_bytes({"images/a.jpg": b"a" * 100, "images/b.jpg": b"b" * 50})
LABELS = tgz_bytes({"annotations/labels.json": b"[1, 2, 3]"})
NOTES = b'{"note": 1}'
SERVED = {"/fx/pack.zip": PACK, "/fx/labels.tar.gz": LABELS, "/fx/notes.json": NOTES, "/fx/extra.bin": b"extra"}
FIXTURE = PublicDataset("fixture", "a fixture dataset", "https://data.example.org", (
    RemoteFile("pack.zip", "https://data.example.org/fx/pack.zip", len(PACK), sha256=sha256(PACK), extract=True),
    RemoteFile("labels.tar.gz", "https://data.example.org/fx/labels.tar.gz", extract=True),
    RemoteFile("notes.json", "https://data.example.org/fx/notes.json"),
    RemoteFile("extra.bin", "https://data.example.org/fx/extra.bin", optional=True),
))


@pytest.fixture
def fixture_dataset(monkeypatch, tmp_path):
    monkeypatch.setitem(registry.DATASETS, "fixture", FIXTURE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HCMOCO_MIRROR", raising=False)
    return tmp_path / "data/raw/fixture"


def run(*args):
    return fetch.main(["--dataset", *args])


def test_fetch_downloads_verifies_extracts_and_writes_the_manifest(fixture_dataset, monkeypatch, tmp_path):
    out = fixture_dataset
    with FileServer(SERVED) as srv:
        monkeypatch.setenv("HCMOCO_MIRROR", srv.url)
        assert run("fixture", "--out", "data/raw/fixture") == 0
        manifest = json.loads((out / "MANIFEST.json").read_text())
        assert [f["name"] for f in manifest["files"]] == ["pack.zip", "labels.tar.gz", "notes.json"]
        pack, labels, notes = manifest["files"]
        assert pack["url"] == "https://data.example.org/fx/pack.zip"  # the registry's, not the mirror's
        assert (pack["size"], pack["sha256"], pack["checksum"]) == (len(PACK), sha256(PACK), "published")
        assert pack["extracted"] == {"images": {"files": 2, "bytes": 150}}
        assert labels["extracted"] == {"annotations": {"files": 1, "bytes": 9}} and labels["checksum"] == "ledger"
        assert (notes["size"], notes["md5"]) == (len(NOTES), hashlib.md5(NOTES).hexdigest())
        assert (out / "images/a.jpg").read_bytes() == b"a" * 100
        assert sorted(json.loads((out / "CHECKSUMS.json").read_text())) == ["labels.tar.gz", "notes.json"]
        assert (tmp_path / "logs/data/raw/fixture.jsonl").exists()
        # a second run verifies the files in place: no transfer, same manifest
        requests = len(srv.requests)
        assert run("fixture", "--out", "data/raw/fixture") == 0
        assert len(srv.requests) == requests and json.loads((out / "MANIFEST.json").read_text()) == manifest


def test_removed_archives_are_not_fetched_again(fixture_dataset):
    with FileServer(SERVED) as srv:
        args = ("fixture", "--out", "data/raw/fixture", "--mirror", srv.url, "--remove-archives")
        assert run(*args) == 0
        first = json.loads((fixture_dataset / "MANIFEST.json").read_text())
        assert not (fixture_dataset / "pack.zip").exists() and (fixture_dataset / "images/b.jpg").exists()
        requests = len(srv.requests)
        assert run(*args) == 0
        assert len(srv.requests) == requests
    assert json.loads((fixture_dataset / "MANIFEST.json").read_text()) == first


def test_only_selects_files_and_rejects_unknown_names(fixture_dataset, capsys):
    with FileServer(SERVED) as srv:
        assert run("fixture", "--out", "data/raw/fixture", "--mirror", srv.url, "--only", "extra.bin") == 0
    manifest = json.loads((fixture_dataset / "MANIFEST.json").read_text())
    assert [f["name"] for f in manifest["files"]] == ["extra.bin"]
    assert run("fixture", "--out", "data/raw/fixture", "--only", "nope.zip") == 2
    assert "error: --only: nope.zip not in fixture" in capsys.readouterr().err


def test_checksum_mismatch_fails_with_one_line_and_no_manifest(fixture_dataset, capsys):
    with FileServer({**SERVED, "/fx/pack.zip": PACK[:-1] + b"?"}) as srv:
        assert run("fixture", "--out", "data/raw/fixture", "--mirror", srv.url) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(rf"error: pack\.zip: sha256 mismatch: expected {sha256(PACK)} \(published\), "
                        r"got [0-9a-f]{64}; not moved into place, kept as \S+pack\.zip\.bad\n", err)
    assert not (fixture_dataset / "pack.zip").exists() and not (fixture_dataset / "MANIFEST.json").exists()


def test_a_real_registry_entry_through_a_mirror(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    body = b'{"images": [], "annotations": []}'
    name = "annotations/densepose_coco_2014_minival.json"
    with FileServer({"/densepose/densepose_coco_2014_minival.json": body}) as srv:
        assert run("densepose_coco", "--out", "raw", "--mirror", srv.url + "/", "--only", name) == 0
    assert (tmp_path / "raw" / name).read_bytes() == body
    assert json.loads((tmp_path / "raw/CHECKSUMS.json").read_text())[name]["sha256"] == sha256(body)


def test_licensed_dataset_missing_names_the_request_page_and_the_layout(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "data/raw/ntu"
    (root / "nturgb+d_skeletons").mkdir(parents=True)
    (root / "nturgb+d_skeletons/S001C001P001R001A001.skeleton").write_text("1\n")
    assert run("ntu", "--out", str(root)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"error: ntu: missing under {root}: nturgb+d_depth_masked/S*/MDepth-*.png, "
                          "nturgb+d_rgb_frames/S*/*.jpg. ")
    assert "https://rose1.ntu.edu.sg/dataset/actionRecognition/" in err
    assert f"{root}/nturgb+d_skeletons/S*.skeleton" in err and f"{root}/nturgb+d_rgb_frames/S*/*.jpg" in err
    assert f"for v in {root}/nturgb+d_rgb/*_rgb.avi" in err and "ffmpeg" in err
    assert not (root / "MANIFEST.json").exists()


@pytest.mark.parametrize("name", ["h36m", "parsing4k"])
def test_licensed_layout_present_gives_a_manifest(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / name
    with pytest.raises(LayoutError, match=re.escape(registry.DATASETS[name].request_url)):
        check_layout(name, root)
    for entry in registry.DATASETS[name].layout:
        path = root / entry.pattern.replace("[pj][np]g", "png").replace("*", "x")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"12345")
    assert run(name, "--out", str(root)) == 0
    manifest = json.loads((root / "MANIFEST.json").read_text())
    assert manifest["kind"] == "licensed" and len(manifest["layout"]) == len(registry.DATASETS[name].layout)
    assert all(v == {"files": 1, "bytes": 5} for v in manifest["layout"].values())


def test_registry_entries_are_well_formed():
    for dataset in registry.DATASETS.values():
        if isinstance(dataset, LicensedDataset):
            assert dataset.request_url.startswith(("http://", "https://")) and dataset.layout
            continue
        names = [f.name for f in dataset.files]
        assert len(set(names)) == len(names)
        for f in dataset.files:
            assert f.url.startswith(("http://", "https://"))
            assert f.size is None or f.size > 0
            assert f.md5 is None or re.fullmatch(r"[0-9a-f]{32}", f.md5)
            assert f.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", f.sha256)
    assert registry.DATASETS["coco2014"].files[0].size == 13_510_573_713


def test_a_wrong_record_is_refused_with_the_forget_command_which_clears_it(fixture_dataset, capsys):
    """A record taken from a truncated download (as earlier versions made) refuses the correct
    file; the error names the command that clears it, and that command fetches it again."""
    out = fixture_dataset
    out.mkdir(parents=True)
    cut = NOTES[:4]
    (out / "CHECKSUMS.json").write_text(json.dumps(
        {"notes.json": {"size": len(cut), "sha256": sha256(cut), "url": FIXTURE.files[2].url}}))
    with FileServer(SERVED) as srv:
        args = ("fixture", "--out", "data/raw/fixture", "--mirror", srv.url, "--only", "notes.json")
        assert run(*args) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: notes.json: size mismatch: expected 4 (recorded in ") and err.count("\n") == 1
        assert err.endswith("clear it with `python -m hcmoco.prepare.fetch --dataset fixture "
                            "--out data/raw/fixture --forget notes.json`\n")
        assert run(*args, "--forget", "notes.json") == 0
    assert (out / "notes.json").read_bytes() == NOTES and not (out / "notes.json.bad").exists()
    assert json.loads((out / "CHECKSUMS.json").read_text())["notes.json"]["sha256"] == sha256(NOTES)
    assert run("fixture", "--out", "data/raw/fixture", "--forget", "nope.json") == 2
    assert "error: --forget: nope.json not in fixture" in capsys.readouterr().err


@pytest.mark.parametrize("recorded", [False, True], ids=["unrecorded", "recorded-by-an-earlier-version"])
def test_a_truncated_archive_is_deleted_and_fetched_again(fixture_dataset, capsys, recorded):
    out = fixture_dataset
    cut = LABELS[:len(LABELS) // 2]
    if recorded:  # a record that vouches for the cut bytes
        out.mkdir(parents=True)
        (out / "CHECKSUMS.json").write_text(json.dumps(
            {"labels.tar.gz": {"size": len(cut), "sha256": sha256(cut), "url": FIXTURE.files[1].url}}))
    args = ("fixture", "--out", "data/raw/fixture", "--only", "labels.tar.gz")
    with FileServer({"/fx/labels.tar.gz": cut}, send_length=False) as srv:
        assert run(*args, "--mirror", srv.url) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: data/raw/fixture/labels.tar.gz: corrupted or truncated "
                                                    "archive")
    assert err.endswith("so the next fetch downloads it again\n")
    assert not (out / "labels.tar.gz").exists() and not (out / "annotations").exists()
    assert "labels.tar.gz" not in json.loads((out / "CHECKSUMS.json").read_text() if recorded else "{}")
    with FileServer(SERVED) as srv:
        assert run(*args, "--mirror", srv.url) == 0
    assert (out / "annotations/labels.json").read_bytes() == b"[1, 2, 3]"
    assert json.loads((out / "CHECKSUMS.json").read_text())["labels.tar.gz"]["sha256"] == sha256(LABELS)
