"""One sweep at a time per machine folder: ``folder_lock(folder)``.

The lock is an advisory ``flock`` on ``<folder>/.lock`` (through ``filelock``), so the kernel
releases it when its holder dies, however it dies: a lock left by a killed sweep is never
stale. Beside it, ``.lock.owner`` says who holds it (pid, host, start time, command) for the
waiting run's message; it is informative only and rewritten by each holder.

A second sweep on the same folder waits (saying for whom) or, with ``wait=False``, stops with
one line. Either way no cell is trained twice, and no two sweeps time their cells against each
other. Locks work on local filesystems; on NFS they depend on the server's lock support.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import filelock

from harness.errors import StoreError
from harness.files import atomic_write_text

log = logging.getLogger(__name__)


class FolderBusyError(StoreError):
    """Another sweep holds the folder and the caller chose not to wait."""


def _owner(folder: Path, patience_s: float = 2.0) -> str:
    """Who holds ``folder``'s lock. A holder writes this just after taking the lock, so a
    run that finds it held a moment earlier waits a little for the file."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            text = (folder / ".lock.owner").read_text(encoding="utf-8")
            info: dict[str, Any] = json.loads(text)
            if info["host"] == socket.gethostname() and not pid_alive(int(info["pid"])):
                raise ValueError("a killed holder's file, not yet replaced")
            since = time.strftime("%Y-%m-%d %H:%M:%S",
                                  time.localtime(float(info["since_unix_s"])))
            return f"pid {info['pid']} on {info['host']} since {since} ({info['command']})"
        except (OSError, ValueError, KeyError, TypeError):
            if time.monotonic() > deadline:
                return "another run"
            time.sleep(0.05)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def folder_lock(folder: Path, *, wait: bool = True, poll_s: float = 0.5) -> Iterator[None]:
    """Hold ``folder``'s lock for the ``with`` block."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(folder / ".lock")
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            holder = _owner(folder)
            if not wait:
                raise FolderBusyError(
                    f"{folder} is in use by {holder}; wait for it to finish, or drop --no-wait "
                    "to queue behind it"
                ) from None
            log.warning("%s is in use by %s; waiting for it to finish (Ctrl-C to stop)",
                        folder, holder)
            lock.acquire(timeout=-1, poll_interval=poll_s)
    except OSError as exc:
        raise StoreError(
            f"cannot lock {folder}: {exc.strerror or exc}; choose a writable results folder"
        ) from exc
    try:
        owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since_unix_s": time.time(),
            "command": " ".join(sys.argv)[:200] or "python",
        }
        with contextlib.suppress(StoreError):  # informative only: never worth failing for
            atomic_write_text(folder / ".lock.owner", json.dumps(owner))
        yield
    finally:
        with contextlib.suppress(OSError):
            (folder / ".lock.owner").unlink()
        lock.release()


@contextlib.contextmanager
def folder_locks(folders: Sequence[Path], *, wait: bool = True) -> Iterator[None]:
    """All of ``folders``' locks, taken in a fixed order (two sweeps never deadlock)."""
    with contextlib.ExitStack() as stack:
        for folder in sorted(set(folders)):
            stack.enter_context(folder_lock(folder, wait=wait))
        yield
