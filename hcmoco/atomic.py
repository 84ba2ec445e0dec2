"""Atomic outputs: a job's file or directory appears complete or not at all.

Everything is written under a temporary name beside the target and renamed into place at the
end (a rename within one directory is atomic); on an exception the temporary is removed and
any earlier version of the target is left as it was. A killed process cannot clean up: its
temporaries are removed by the next writer of the same target (`remove_stale`), and no reader
globs for results (readers take the paths the params define).
"""
from __future__ import annotations

import contextlib
import errno
import functools
import glob
import os
import shutil
from pathlib import Path
from typing import Iterator

from hcmoco.errors import HcmocoError

_FULL = (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def no_space_names(path: str | Path) -> Iterator[None]:
    """A full disk (or quota) while writing `path` becomes one HcmocoError naming it; the
    writers below have removed their temporaries by then."""
    try:
        yield
    except OSError as err:
        if err.errno not in _FULL:
            raise
        raise HcmocoError(f"{path}: not written: {os.strerror(err.errno).lower()} "
                          f"(nothing partial was left; free space and run again)") from None


def _naming_full_disk(directory_cm):
    """Wrap a directory context manager in no_space_names(out), around its own cleanup."""
    @functools.wraps(directory_cm)
    @contextlib.contextmanager
    def wrapped(out: str | Path, *args, **kwargs) -> Iterator[Path]:
        with no_space_names(out), directory_cm(out, *args, **kwargs) as tmp:
            yield tmp
    return wrapped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale(folder: Path, pattern: str) -> None:
    """Remove the temporaries matching `pattern` (`<name>.tmp-<pid>`) whose process is gone: a
    SIGKILL runs no cleanup, and what it leaves must neither pile up nor be mistaken for a
    result. A live process's temporary (a concurrent writer) is left alone."""
    for stale in folder.glob(pattern):
        pid = stale.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent, f".{glob.escape(path.name)}.tmp-*")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with no_space_names(path):
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)  # never a partial temporary beside the target
            raise


@_naming_full_disk
@contextlib.contextmanager
def atomic_directory(out: str | Path) -> Iterator[Path]:
    """Yield an empty temporary directory; on success it replaces `out`."""
    out = Path(out)
    remove_stale(out.parent, f"{glob.escape(out.name)}.tmp-*")
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
