"""Writing files so that a reader never sees half of one: a temporary name beside the target, renamed last."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
