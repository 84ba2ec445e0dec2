import gzip
import io
import os
import random
import tarfile
import zipfile

import pytest

from hcmoco.prepare.extract import ExtractionError, archive_kind, safe_extract

BLOB = random.Random(1).randbytes(200_000)  # incompressible, so truncating the archive cuts it


def make_tar(path, entries, mode="w:gz"):
    """entries: (kind, name, payload) with kind file / dir / sym / hard / fifo."""
    with tarfile.open(path, mode) as tf:
        for kind, name, payload in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                tf.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE,
                         "fifo": tarfile.FIFOTYPE}[kind]
            info.linkname = payload or ""
            tf.addfile(info)
    return path


def make_zip(path, entries):
    """entries: (kind, name, payload) with kind file / sym (a unix symlink member)."""
    with zipfile.ZipFile(path, "w") as zf:
        for kind, name, payload in entries:
            info = zipfile.ZipInfo(name)
            if kind == "sym":
                info.external_attr = 0o120777 << 16
                payload = payload.encode()
            zf.writestr(info, payload)
    return path


GOOD = [("dir", "pack", None), ("file", "pack/a.txt", b"alpha"), ("file", "pack/sub/b.bin", BLOB),
        ("file", "top.txt", b"top")]


def leftovers(dest):
    return sorted(p.name for p in dest.iterdir()) if dest.exists() else []


@pytest.mark.parametrize("name", ["x.tar.gz", "x.tgz", "x.tar", "x.zip"])
def test_archives_unpack_their_top_level_entries(tmp_path, name):
    archive = tmp_path / name
    if name.endswith(".zip"):
        make_zip(archive, [e for e in GOOD if e[0] == "file"])
    else:
        make_tar(archive, GOOD + [("sym", "pack/link", "sub/b.bin"), ("hard", "pack/same.bin", "pack/sub/b.bin")],
                 "w:gz" if "gz" in name else "w")
    dest = tmp_path / "out"
    assert safe_extract(archive, dest) == ["pack", "top.txt"]
    assert (dest / "pack/a.txt").read_bytes() == b"alpha" and (dest / "pack/sub/b.bin").read_bytes() == BLOB
    if not name.endswith(".zip"):
        assert os.readlink(dest / "pack/link") == "sub/b.bin" and (dest / "pack/same.bin").read_bytes() == BLOB
    assert leftovers(dest) == ["pack", "top.txt"]  # no temporary directory left behind


def test_extracting_again_replaces_the_entries(tmp_path):
    dest = tmp_path / "out"
    safe_extract(make_zip(tmp_path / "a.zip", [("file", "pack/old.txt", b"1")]), dest)
    safe_extract(make_zip(tmp_path / "b.zip", [("file", "pack/new.txt", b"2")]), dest)
    assert sorted(os.listdir(dest / "pack")) == ["new.txt"]


UNSAFE_TAR = {
    "dotdot": ([("file", "../evil.txt", b"x")], "../evil.txt", "'..' path component"),
    "nested_dotdot": ([("file", "pack/../../evil.txt", b"x")], "pack/../../evil.txt", "'..' path component"),
    "absolute": ([("file", "/tmp/evil.txt", b"x")], "/tmp/evil.txt", "absolute path"),
    "symlink_up": ([("sym", "link", "../../outside")], "link", "points outside"),
    "symlink_absolute": ([("sym", "link", "/etc/passwd")], "link", "points outside"),
    "hardlink_up": ([("hard", "hard", "../outside.txt")], "hard", "hard link"),
    "fifo": ([("fifo", "pipe", None)], "pipe", "special member"),
    # each link alone resolves inside; together a/ is the parent of the destination
    "link_chain": ([("sym", "a", "x/.."), ("sym", "x", "."), ("file", "a/evil.txt", b"x")], "a/evil.txt",
                   "through a link outside"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE_TAR))
def test_unsafe_tar_members_are_refused_and_nothing_is_extracted(tmp_path, case):
    entries, member, why = UNSAFE_TAR[case]
    archive = make_tar(tmp_path / "bad.tar.gz", [("file", "ok/first.txt", b"fine")] + entries)
    dest = tmp_path / "deep" / "out"
    with pytest.raises(ExtractionError) as err:
        safe_extract(archive, dest)
    message = str(err.value)
    assert message.startswith(f"{archive}: member {member!r}: ") and why in message
    assert leftovers(dest) == []
    assert not list(tmp_path.rglob("evil.txt"))


@pytest.mark.parametrize("member,link", [("../evil.txt", None), ("/abs/evil.txt", None), ("link", "../../x")])
def test_unsafe_zip_members_are_refused(tmp_path, member, link):
    entries = [("file", "ok.txt", b"fine"), ("sym", member, link) if link else ("file", member, b"x")]
    archive = make_zip(tmp_path / "bad.zip", entries)
    with pytest.raises(ExtractionError, match=f"bad.zip: member {member!r}"):
        safe_extract(archive, tmp_path / "out")
    assert leftovers(tmp_path / "out") == []


def test_truncated_tar_gz_is_detected_and_nothing_is_extracted(tmp_path):
    archive = make_tar(tmp_path / "x.tar.gz", GOOD)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(ExtractionError, match=r"x\.tar\.gz: corrupted or truncated archive .*nothing was extracted"):
        safe_extract(archive, tmp_path / "out")
    assert leftovers(tmp_path / "out") == []


def test_truncated_zip_is_detected(tmp_path):
    archive = make_zip(tmp_path / "x.zip", [e for e in GOOD if e[0] == "file"])
    archive.write_bytes(archive.read_bytes()[:-100])
    with pytest.raises(ExtractionError, match="x.zip: corrupted or truncated archive"):
        safe_extract(archive, tmp_path / "out")
    assert leftovers(tmp_path / "out") == []


def test_single_file_gz_and_its_truncation(tmp_path):
    archive = tmp_path / "labels.h5.gz"
    archive.write_bytes(gzip.compress(BLOB))
    assert safe_extract(archive, tmp_path / "out") == ["labels.h5"]
    assert (tmp_path / "out/labels.h5").read_bytes() == BLOB
    archive.write_bytes(gzip.compress(BLOB)[:50_000])
    with pytest.raises(ExtractionError, match="labels.h5.gz: corrupted or truncated"):
        safe_extract(archive, tmp_path / "out2")
    assert leftovers(tmp_path / "out2") == []


def test_reserved_top_level_names_are_refused(tmp_path):
    archive = make_zip(tmp_path / "x.zip", [("file", "MANIFEST.json", b"{}")])
    with pytest.raises(ExtractionError, match="'MANIFEST.json': top-level name is reserved"):
        safe_extract(archive, tmp_path / "out", reserved={"MANIFEST.json"})
    assert leftovers(tmp_path / "out") == []


def test_archive_kinds():
    assert [archive_kind(n) for n in ("a.TAR.GZ", "a.tgz", "a.tar", "a.zip", "a.h5.gz", "a.json")] == \
        ["tar", "tar", "tar", "zip", "gz", None]
