"""Writing files so that a reader never sees half of one: a temporary name beside the target, renamed last."""

from __future__ import annotations

import errno
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from yingxi.errors import InputError


def partial_path(path: Path) -> Path:
    """A hidden temporary name beside `path`, unique to this process and thread (two renders of the same
    file at once, in one server process, must not write into one temporary file)."""
    return path.with_name(f".{path.name}.partial-{os.getpid()}-{threading.get_ident()}")


@contextmanager
def replaced_when_done(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; when the block ends normally it becomes `path` (os.replace, atomic
    on one file system), and on any exception, KeyboardInterrupt included, it is removed."""
    path = Path(path)
    tmp = partial_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # nothing there after a successful replace


def check_writable(path: str | Path, *, field: str | None = None) -> None:
    """Raise InputError unless `path` can be written: not a folder, and its nearest existing folder takes a new
    file (probed by making one, so read-only mounts and permissions count, for root too). Missing folders on
    the way are fine: the writer creates them. Called before the work, not after it."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path} is a folder; name the file to write", field=field)
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"cannot write {path}: {folder} is a file, not a folder", field=field)
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=f".{path.name}.probe-"):
            pass
    except OSError as e:
        raise InputError(f"cannot write {path}: {folder} is {_why(e)}", field=field) from None


def _why(e: OSError) -> str:
    if e.errno in (errno.EACCES, errno.EPERM):
        return "not writable (permission denied)"
    if e.errno == errno.EROFS:
        return "on a read-only file system"
    if e.errno == errno.ENOSPC:
        return "on a full disk"
    return f"not writable ({e.strerror or e})"
