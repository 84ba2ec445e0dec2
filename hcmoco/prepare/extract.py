"""Safe extraction of downloaded archives: .zip, .tar, .tar.gz/.tgz and single-file .gz.

Everything is unpacked into a temporary directory beside the destination; only when the whole
archive has been read without error are its top-level entries renamed into place, so a
corrupted, truncated or unsafe archive leaves nothing behind. Refused, with one error naming the
archive and the member: absolute paths, `..` components, links whose target lies outside the
destination (checked on the real path while extracting and again on the finished tree, so a
chain of links cannot escape either), and device or fifo members.
"""
from __future__ import annotations

import gzip
import os
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterable

from hcmoco.errors import HcmocoError

_CORRUPT = (zipfile.BadZipFile, zlib.error, EOFError, tarfile.TarError, gzip.BadGzipFile)


class ExtractionError(HcmocoError):
    """An archive is unsafe, corrupted or truncated; nothing of it was extracted."""


class CorruptArchiveError(ExtractionError):
    """The archive's bytes are damaged or cut short (as opposed to an unsafe member)."""


def archive_kind(name: str | Path) -> str | None:
    """'zip', 'tar' (plain or gzip-compressed) or 'gz' (one compressed file); None otherwise."""
    name = str(name).lower()
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        return "tar"
    if name.endswith(".zip"):
        return "zip"
    return "gz" if name.endswith(".gz") else None


class _Tree:
    """The temporary extraction root; every write is checked to stay inside it."""

    def __init__(self, archive: Path, root: Path):
        self.archive, self.root = archive, root
        self.real = os.path.realpath(root)

    def refuse(self, member: str, why: str) -> ExtractionError:
        return ExtractionError(f"{self.archive}: member {member!r}: {why}; nothing was extracted")

    def _inside(self, path: str | Path) -> bool:
        return os.path.commonpath([self.real, os.path.realpath(path)]) == self.real

    def resolve(self, member: str) -> Path | None:
        """The checked location of `member` (None for the archive root itself)."""
        name = member.replace("\\", "/")
        if name.startswith("/") or re.match(r"[A-Za-z]:", name):
            raise self.refuse(member, "absolute path")
        parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
        if ".." in parts:
            raise self.refuse(member, "'..' path component")
        if not parts:
            return None
        target = self.root.joinpath(*parts)
        if not self._inside(target.parent):
            raise self.refuse(member, "path leads through a link outside the destination")
        return target

    def path(self, member: str) -> Path | None:
        """`resolve`, clearing an earlier file or link of the same name."""
        target = self.resolve(member)
        if target is not None and (target.is_symlink() or target.is_file()):
            target.unlink()  # a later member of the same name wins, never writing through a link
        return target

    def directory(self, member: str) -> None:
        if (target := self.path(member)) is not None:
            target.mkdir(parents=True, exist_ok=True)

    def file(self, member: str, source: BinaryIO) -> None:
        target = self.path(member)
        if target is None:
            raise self.refuse(member, "a file member without a name")
        target.parent.mkdir(parents=True, exist_ok=True)
        with source, target.open("wb") as fh:
            shutil.copyfileobj(source, fh, 1 << 20)

    def symlink(self, member: str, link: str) -> None:
        target = self.path(member)
        if target is None or link.startswith("/") or not self._inside(target.parent / link):
            raise self.refuse(member, f"link to {link!r} points outside the destination")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(link, target)

    def hardlink(self, member: str, link: str) -> None:
        try:
            source = self.resolve(link)
        except ExtractionError:
            source = None
        if source is None or not source.is_file() or not self._inside(source):
            raise self.refuse(member, f"hard link to {link!r} is not an earlier file of the archive")
        target = self.path(member)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)

    def check_links(self) -> None:
        for dirpath, dirnames, filenames in os.walk(self.root):
            for name in dirnames + filenames:
                path = Path(dirpath, name)
                if path.is_symlink() and not self._inside(path):
                    raise self.refuse(str(path.relative_to(self.root)), "link resolves outside the destination")


def _unpack_zip(archive: Path, tree: _Tree) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                tree.symlink(info.filename, zf.read(info).decode())
            elif info.is_dir():
                tree.directory(info.filename)
            else:
                tree.file(info.filename, zf.open(info))


def _unpack_tar(archive: Path, tree: _Tree) -> None:
    with tarfile.open(archive, "r:*") as tf:
        for member in tf:
            if member.isdir():
                tree.directory(member.name)
            elif member.isreg():
                tree.file(member.name, tf.extractfile(member))
            elif member.issym():
                tree.symlink(member.name, member.linkname)
            elif member.islnk():
                tree.hardlink(member.name, member.linkname)
            else:
                raise tree.refuse(member.name, "device, fifo or other special member")


def _unpack_gz(archive: Path, tree: _Tree) -> None:
    tree.file(archive.name[:-3], gzip.open(archive, "rb"))


def _place(tmp: Path, dest_dir: Path) -> list[str]:
    entries = sorted(os.listdir(tmp))
    for name in entries:
        target = dest_dir / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        os.replace(tmp / name, target)
    return entries


def safe_extract(archive: str | Path, dest_dir: str | Path, reserved: Iterable[str] = ()) -> list[str]:
    """Unpack `archive` into `dest_dir`; returns the top-level entries placed there.

    An existing entry of the same name is replaced; a top-level entry named in `reserved`
    (files the caller owns, such as MANIFEST.json) is refused.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    kind = archive_kind(archive)
    if kind is None:
        raise ExtractionError(f"{archive}: not a .zip, .tar, .tar.gz, .tgz or .gz archive")
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = dest_dir / f".{archive.name}.extract-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    tree = _Tree(archive, tmp)
    try:
        try:
            {"zip": _unpack_zip, "tar": _unpack_tar, "gz": _unpack_gz}[kind](archive, tree)
        except _CORRUPT as err:
            raise CorruptArchiveError(f"{archive}: corrupted or truncated archive ({err}); nothing was extracted") from None
        except (OSError, RuntimeError, UnicodeDecodeError) as err:
            raise ExtractionError(f"{archive}: cannot extract ({err}); nothing was extracted") from None
        tree.check_links()
        reserved = set(reserved)
        for name in os.listdir(tmp):
            if name in reserved:
                raise tree.refuse(name, "top-level name is reserved for the dataset's own files")
        return _place(tmp, dest_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
