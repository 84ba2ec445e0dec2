import hashlib
import json
import random
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from hcmoco.prepare.download import DownloadError, VerificationError, download, fetch_file
from hcmoco.prepare.registry import RemoteFile, resolve_url
from hcmoco.errors import HcmocoError

DATA = random.Random(0).randbytes(300_000)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FileServer:
    """Serves `files` (URL path -> bytes) from 127.0.0.1 in a thread and records every request.

    ranges: honour `Range: bytes=N-`; cut_after: close the next response after that many body
    bytes; send_length: send Content-Length.
    """

    def __init__(self, files: dict, ranges: bool = True, cut_after: int | None = None, send_length: bool = True):
        self.files, self.ranges, self.cut_after, self.send_length = dict(files), ranges, cut_after, send_length
        self.requests: list[tuple[str, str | None]] = []
        self.sent = 0

    def __enter__(self) -> "FileServer":
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                owner.requests.append((urlsplit(self.path).path, self.headers.get("Range")))
                body = owner.files.get(urlsplit(self.path).path)
                if body is None:
                    self.send_error(404)
                    return
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "") if owner.ranges else None
                start = int(match.group(1)) if match else 0
                if match and start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206 if match else 200)
                if match:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                if owner.send_length:
                    self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                chunk = body[start:]
                if owner.cut_after is not None:
                    chunk, owner.cut_after = chunk[:owner.cut_after], None
                self.wfile.write(chunk)
                owner.sent += len(chunk)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_resume_after_truncated_part_fetches_only_the_rest(tmp_path):
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(DATA[:120_000])
    with FileServer({"/d/f.bin": DATA}) as srv:
        digests = download(f"{srv.url}/d/f.bin", dest, size=len(DATA), sha256=sha256(DATA), progress=False)
    assert dest.read_bytes() == DATA and not (tmp_path / "f.bin.part").exists()
    assert srv.requests == [("/d/f.bin", "bytes=120000-")] and srv.sent == len(DATA) - 120_000
    assert digests == {"size": len(DATA), "md5": hashlib.md5(DATA).hexdigest(), "sha256": sha256(DATA)}


def test_interrupted_transfer_keeps_the_part_and_the_next_run_resumes(tmp_path):
    dest = tmp_path / "f.bin"
    with FileServer({"/f.bin": DATA}, cut_after=100_000) as srv:
        with pytest.raises(DownloadError, match=r"f\.bin\.part: download interrupted: expected 300000 bytes, got 1"):
            download(f"{srv.url}/f.bin", dest, sha256=sha256(DATA), progress=False)
        assert (tmp_path / "f.bin.part").stat().st_size == 100_000 and not dest.exists()
        download(f"{srv.url}/f.bin", dest, sha256=sha256(DATA), progress=False)
    assert dest.read_bytes() == DATA
    assert srv.requests[1] == ("/f.bin", "bytes=100000-")


def test_complete_part_is_verified_without_a_new_transfer(tmp_path):
    (tmp_path / "f.bin.part").write_bytes(DATA)
    with FileServer({"/f.bin": DATA}) as srv:
        download(f"{srv.url}/f.bin", tmp_path / "f.bin", sha256=sha256(DATA), progress=False)  # size unknown: 416
        assert srv.sent == 0 and (tmp_path / "f.bin").read_bytes() == DATA


def test_server_ignoring_range_restarts_cleanly(tmp_path):
    (tmp_path / "f.bin.part").write_bytes(b"\0" * 5000)  # a stale prefix that must not survive
    with FileServer({"/f.bin": DATA}, ranges=False) as srv:
        download(f"{srv.url}/f.bin", tmp_path / "f.bin", size=len(DATA), sha256=sha256(DATA), progress=False)
    assert srv.requests == [("/f.bin", "bytes=5000-")]
    assert (tmp_path / "f.bin").read_bytes() == DATA


@pytest.mark.parametrize("algo", ["md5", "sha256"])
def test_wrong_checksum_is_reported_and_not_moved_into_place(tmp_path, algo):
    wrong = "0" * (32 if algo == "md5" else 64)
    actual = hashlib.new(algo, DATA).hexdigest()
    with FileServer({"/f.bin": DATA}) as srv:
        with pytest.raises(VerificationError) as err:
            download(f"{srv.url}/f.bin", tmp_path / "f.bin", **{algo: wrong}, progress=False)
    message = str(err.value)
    assert message.startswith(f"f.bin: {algo} mismatch") and wrong in message and actual in message
    assert not (tmp_path / "f.bin").exists() and not (tmp_path / "f.bin.part").exists()
    assert (tmp_path / "f.bin.bad").read_bytes() == DATA


def test_size_mismatch_is_detected(tmp_path):
    with FileServer({"/f.bin": DATA}) as srv:
        # the server announces a different size: the body is not read, nothing is written
        expected = rf"f\.bin: size mismatch: expected {len(DATA) + 1} .*reports {len(DATA)}"
        with pytest.raises(VerificationError, match=expected):
            download(f"{srv.url}/f.bin", tmp_path / "f.bin", size=len(DATA) + 1, progress=False)
        assert not list(tmp_path.iterdir())
    with FileServer({"/f.bin": DATA}, send_length=False) as srv:
        # no length announced: the finished file is checked
        with pytest.raises(VerificationError, match=rf"size mismatch: expected {len(DATA) - 1} .*got {len(DATA)}"):
            download(f"{srv.url}/f.bin", tmp_path / "f.bin", size=len(DATA) - 1, progress=False)
    assert not (tmp_path / "f.bin").exists()


def test_http_error_names_the_url(tmp_path):
    with FileServer({}) as srv:
        with pytest.raises(DownloadError, match=r"/missing\.bin: HTTP 404"):
            download(f"{srv.url}/missing.bin", tmp_path / "missing.bin", progress=False)


def test_ledger_is_recorded_at_first_download_and_enforced_later(tmp_path):
    spec = RemoteFile("f.bin", "https://data.example.org/d/f.bin")
    ledger = tmp_path / "CHECKSUMS.json"
    with FileServer({"/d/f.bin": DATA}) as srv:
        result = fetch_file(spec, tmp_path, mirror=srv.url, progress=False)
        assert result["checksum"] == "ledger"
        assert json.loads(ledger.read_text()) == {"f.bin": {"size": len(DATA), "sha256": sha256(DATA), "url": spec.url}}
        fetch_file(spec, tmp_path, mirror=srv.url, progress=False)  # in place and matching: no transfer
        assert len(srv.requests) == 1
        # the server's file changes: a fresh download no longer matches the record
        (tmp_path / "f.bin").unlink()
        changed = DATA[::-1]
        srv.files["/d/f.bin"] = changed
        with pytest.raises(VerificationError) as err:
            fetch_file(spec, tmp_path, mirror=srv.url, progress=False)
    message = str(err.value)
    assert "f.bin: sha256 mismatch" in message and sha256(DATA) in message and sha256(changed) in message
    assert str(ledger) in message and not (tmp_path / "f.bin").exists()
    assert json.loads(ledger.read_text())["f.bin"]["sha256"] == sha256(DATA)


def test_file_in_place_is_checked_against_the_ledger(tmp_path):
    spec = RemoteFile("f.bin", "https://data.example.org/f.bin")
    with FileServer({"/f.bin": DATA}) as srv:
        fetch_file(spec, tmp_path, mirror=srv.url, progress=False)
    (tmp_path / "f.bin").write_bytes(DATA[:-1] + b"x")
    with pytest.raises(VerificationError, match=r"f\.bin: sha256 mismatch.*delete it to download it again"):
        fetch_file(spec, tmp_path, progress=False)


def test_published_checksum_needs_no_ledger(tmp_path):
    spec = RemoteFile("f.bin", "https://data.example.org/f.bin", size=len(DATA), sha256=sha256(DATA))
    with FileServer({"/f.bin": DATA}) as srv:
        assert fetch_file(spec, tmp_path, mirror=srv.url, progress=False)["checksum"] == "published"
    assert not (tmp_path / "CHECKSUMS.json").exists()


def test_mirror_replaces_scheme_and_host(monkeypatch):
    url = "https://zenodo.org/records/3932973/files/a.h5.gz?download=1"
    monkeypatch.delenv("HCMOCO_MIRROR", raising=False)
    assert resolve_url(url) == url
    assert resolve_url(url, "http://127.0.0.1:8000/mirror/") == \
        "http://127.0.0.1:8000/mirror/records/3932973/files/a.h5.gz?download=1"
    monkeypatch.setenv("HCMOCO_MIRROR", "http://local:9")
    assert resolve_url(url) == "http://local:9/records/3932973/files/a.h5.gz?download=1"
    with pytest.raises(HcmocoError, match="HCMOCO_MIRROR/--mirror: 'ftp://x' is not"):
        resolve_url(url, "ftp://x")


def test_a_download_of_unconfirmed_size_is_kept_but_not_recorded(tmp_path):
    """A server that announces no length and stops early: the cut file must not become the record
    that later refuses the whole one."""
    spec = RemoteFile("f.bin", "https://data.example.org/f.bin")
    with FileServer({"/f.bin": DATA}, send_length=False, cut_after=100_000) as srv:
        result = fetch_file(spec, tmp_path, mirror=srv.url, progress=False)
    assert result["checksum"] == "unverified" and result["size"] == 100_000
    assert not (tmp_path / "CHECKSUMS.json").exists()
    (tmp_path / "f.bin").unlink()
    with FileServer({"/f.bin": DATA}) as srv:  # announces the length: the whole file is recorded
        assert fetch_file(spec, tmp_path, mirror=srv.url, progress=False)["checksum"] == "ledger"
    assert json.loads((tmp_path / "CHECKSUMS.json").read_text())["f.bin"]["size"] == len(DATA)


def test_a_mismatch_with_the_record_says_how_to_clear_it(tmp_path):
    spec = RemoteFile("f.bin", "https://data.example.org/f.bin")
    ledger = tmp_path / "CHECKSUMS.json"
    ledger.write_text(json.dumps({"f.bin": {"size": 1000, "sha256": sha256(DATA[:1000]), "url": spec.url}}))
    with FileServer({"/f.bin": DATA}) as srv:
        with pytest.raises(VerificationError) as err:
            fetch_file(spec, tmp_path, mirror=srv.url, progress=False)
    assert str(err.value).startswith(f"f.bin: size mismatch: expected 1000 (recorded in {ledger})")
    assert str(err.value).endswith(f"remove its entry from {ledger}") and "\n" not in str(err.value)
