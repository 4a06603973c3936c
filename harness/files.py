"""Atomic file writes, the one implementation every writer uses (records, dataset caches, the
report): write a temporary file beside the target, flush it to disk, rename it over the target.
A crash, a kill or a full disk leaves either the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from harness.errors import StoreError


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(file)`` on a temporary file, then put it at ``path``; on any failure the
    old file is untouched and no temporary is left. ``StoreError`` names the path and the fix."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise StoreError(
            f"cannot write {path}: {exc.strerror or exc}; choose a writable folder"
        ) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StoreError(
            f"cannot write {path}: {exc.strerror or exc}; "
            "free disk space or choose another output folder"
        ) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """``text`` (UTF-8) at ``path``, atomically."""
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))
