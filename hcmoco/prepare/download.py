"""Resumable, verified HTTP(S) downloads with a checksum ledger.

A file is downloaded to `<name>.part` beside its destination. An interrupted download keeps the
`.part`; the next run asks the server for the rest with an HTTP Range request and appends it (a
server that ignores Range answers with the whole file, which then replaces the `.part`). Only a
file whose size and checksums match is renamed into place; a mismatching one is moved to
`<name>.bad` and the error names the file, the expected and the actual value.

Where the publisher gives no checksum, the first download records the file's size and sha256 in
`<dest dir>/CHECKSUMS.json`; later downloads and verifications must match that record. Only a
download whose size is confirmed (it equals the registry's size, or the length the server
announced) is recorded: a transfer cut short by a server that announces no length (or a file
found in place, of no known size) is kept but not recorded, and reported as checksum `unverified`, so a truncated file can never become the reference that
refuses the correct one. A wrong record is cleared with `Ledger.forget` (the fetch CLI's
`--forget NAME`).
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from hcmoco.atomic import atomic_write_text
from hcmoco.prepare.registry import RemoteFile, resolve_url
from hcmoco.errors import HcmocoError

CHUNK = 1 << 20
LEDGER_NAME = "CHECKSUMS.json"
USER_AGENT = "hcmoco-fetch/1 (python urllib)"
_CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(\d+|\*)")


class DownloadError(HcmocoError):
    """The transfer failed or stopped early; a `.part` file may be kept for resuming."""


class VerificationError(DownloadError):
    """A file's size or checksum differs from the published or recorded value."""


def file_digests(path: str | Path) -> dict:
    """Size, md5 and sha256 of a file, read once."""
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            md5.update(chunk)
            sha256.update(chunk)
    return {"size": os.path.getsize(path), "md5": md5.hexdigest(), "sha256": sha256.hexdigest()}


def verify(path: Path, *, name: str, size: int | None, md5: str | None, sha256: str | None,
           origin: str = "published", hint: str = "") -> dict:
    """Digests of `path`; VerificationError naming `name` on the first value that differs."""
    expected = {"size": size, "md5": md5 and md5.lower(), "sha256": sha256 and sha256.lower()}
    actual = {"size": path.stat().st_size}
    if size is None or actual["size"] == size:
        actual = file_digests(path)
    for key, want in expected.items():
        if want is not None and actual[key] != want:
            raise VerificationError(f"{name}: {key} mismatch: expected {want} ({origin}), got {actual[key]}{hint}")
    return actual


def _open(url: str, offset: int, timeout: float):
    """(response or None, first byte of its body, total size or None)."""
    headers = {"User-Agent": USER_AGENT, **({"Range": f"bytes={offset}-"} if offset else {})}
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # nothing left after `offset`: the .part may be complete
            total = (err.headers.get("Content-Range") or "").rpartition("/")[2]
            return None, offset, int(total) if total.isdigit() else None
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        raise DownloadError(f"{url}: cannot connect ({getattr(err, 'reason', err)})") from None
    if resp.status == 206:
        match = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
        if not match or int(match.group(1)) != offset:
            resp.close()
            return _open(url, 0, timeout)
        return resp, offset, int(match.group(2)) if match.group(2).isdigit() else None
    length = resp.headers.get("Content-Length")
    return resp, 0, int(length) if length and length.isdigit() else None


def _stream(resp, part: Path, start: int, total: int | None, progress: bool) -> None:
    received = start
    with resp, part.open("ab" if start else "wb") as fh, tqdm(
            total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024, desc=part.name,
            disable=None if progress else True) as bar:
        try:
            while chunk := resp.read(CHUNK):
                fh.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as err:
            raise DownloadError(f"{part.name}: download interrupted after {received} bytes ({err!r}); "
                                f"run again to resume") from None
    if total is not None and received < total:
        raise DownloadError(f"{part.name}: download interrupted: expected {total} bytes, got {received}; "
                            f"run again to resume")


def download(url: str, dest: str | Path, *, size: int | None = None, md5: str | None = None,
             sha256: str | None = None, origin: str = "published", progress: bool = True,
             timeout: float = 60.0) -> dict:
    """Fetch `url` to `dest` (resuming `dest.part`), verify, rename into place; returns digests."""
    return _download(url, dest, size=size, md5=md5, sha256=sha256, origin=origin, progress=progress,
                     timeout=timeout)[0]


def _download(url: str, dest: str | Path, *, size: int | None, md5: str | None, sha256: str | None,
              origin: str, progress: bool, timeout: float) -> tuple[dict, int | None]:
    """`download`, also returning the file size the server announced (None: none announced, or
    no request was needed)."""
    dest = Path(dest)
    total = None
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        part.unlink()
        offset = 0
    if size is None or offset < size:
        resp, start, total = _open(url, offset, timeout)
        if resp is None and total is not None and total < offset:  # the .part outgrew the file
            part.unlink()
            resp, start, total = _open(url, 0, timeout)
        if size is not None and total is not None and total != size:
            if resp is not None:
                resp.close()
            raise VerificationError(f"{dest.name}: size mismatch: expected {size} ({origin}), "
                                    f"server reports {total} for {url}")
        if resp is not None:
            _stream(resp, part, start, total, progress)
    got = part.stat().st_size
    if size is not None and got < size:
        raise DownloadError(f"{dest.name}: incomplete: expected {size} bytes, got {got}; run again to resume")
    bad = dest.with_name(dest.name + ".bad")
    try:
        digests = verify(part, name=dest.name, size=size, md5=md5, sha256=sha256, origin=origin,
                         hint=f"; not moved into place, kept as {bad}")
    except VerificationError:
        os.replace(part, bad)
        raise
    os.replace(part, dest)
    return digests, total


class Ledger:
    """`CHECKSUMS.json`: size and sha256 recorded at first download of unpublished files."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.entries: dict = {}
        if self.path.exists():
            try:
                self.entries = json.loads(self.path.read_text())
            except json.JSONDecodeError as err:
                raise HcmocoError(f"{self.path}: not valid JSON ({err})") from None

    def get(self, name: str) -> dict | None:
        return self.entries.get(name)

    def record(self, name: str, url: str, digests: dict) -> None:
        self.entries[name] = {"size": digests["size"], "sha256": digests["sha256"], "url": url}
        self._write()

    def forget(self, name: str) -> bool:
        """Drop `name`'s record (a wrong one refuses every correct download); False if none."""
        if self.entries.pop(name, None) is None:
            return False
        self._write()
        return True

    def _write(self) -> None:
        atomic_write_text(self.path, json.dumps(self.entries, indent=2, sort_keys=True) + "\n")


def fetch_file(spec: RemoteFile, out_dir: str | Path, *, mirror: str | None = None,
               progress: bool = True, forget_hint: str | None = None) -> dict:
    """Download (or re-verify) one registry file into `out_dir`; returns its digests.

    `checksum` in the result says what vouched for the file: `published`, `ledger`, or
    `unverified` (nothing published, and the size could not be confirmed against the server's,
    so nothing was recorded). `forget_hint` tells the user how to clear a wrong record; it is
    appended to a mismatch with the record.
    """
    out_dir = Path(out_dir)
    ledger = Ledger(out_dir / LEDGER_NAME)
    recorded = ledger.get(spec.name)
    published = bool(spec.md5 or spec.sha256)
    size, sha256, origin = spec.size, spec.sha256, "published"
    if not published and recorded is not None:
        size = spec.size if spec.size is not None else recorded["size"]
        sha256, origin = recorded["sha256"], f"recorded in {ledger.path}"
    dest = out_dir / spec.name
    announced = None
    try:
        if dest.exists():
            digests = verify(dest, name=str(dest), size=size, md5=spec.md5, sha256=sha256, origin=origin,
                             hint="; delete it to download it again")
        else:
            digests, announced = _download(resolve_url(spec.url, mirror), dest, size=size, md5=spec.md5,
                                           sha256=sha256, origin=origin, progress=progress, timeout=60.0)
    except VerificationError as err:
        if published or recorded is None:
            raise
        hint = forget_hint or f"remove its entry from {ledger.path}"
        raise VerificationError(f"{err}; if the record is what is wrong (say, it was taken from a truncated "
                                f"download), {hint}") from None
    if published:
        return {**digests, "checksum": "published"}
    if recorded is None:
        # the size is confirmed by the registry (checked above) or by the server's announcement
        if spec.size is None and announced != digests["size"]:
            return {**digests, "checksum": "unverified"}  # not recorded: it may be cut short
        ledger.record(spec.name, spec.url, digests)
    return {**digests, "checksum": "ledger"}
