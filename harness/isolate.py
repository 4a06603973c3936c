"""A process per cell: a segfault, an out-of-memory kill or a time limit costs one cell.

``run_isolated(task, ...)`` starts a child that runs ``harness.cell.outcome_of(task)`` and
writes the outcome to a file; the parent waits (up to ``timeout_s``), then reads it. A child
that ends without an outcome becomes a ``Failure`` naming its signal or exit code, with the
last lines of its stderr (where faulthandler has put the Python stack of a crash).

Children come from a forkserver that has imported the project once (cheap forks of a process
that has started no threads), or, inside a daemonic process that may not have children of its
own (a Dask worker), from ``python -m harness.cell``. Either way a child dies with its parent:
a killed sweep leaves no cell running on, timed against the rerun.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import json
import logging
import multiprocessing
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.cell import CellTask, Measured, measured_from
from harness.lock import pid_alive
from harness.record import Failure, from_plain

log = logging.getLogger(__name__)

STDERR_TAIL_LINES = 30
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True)
class Outcome:
    """Exactly one of: what the cell measured, why it failed, or a user error that stops the
    sweep (a bad data path, an unreadable meter)."""

    measured: Measured | None = None
    failure: Failure | None = None
    user_error: str | None = None
    exit_code: int = 2  # of the user error


def child_setup(sweep_pid: int | None = None, log_level: int = logging.WARNING) -> None:
    """First thing in every child: die with the sweep, and leave a stack trace on a crash.

    ``sweep_pid`` is the process that waits for this one (default: the parent). A forkserver
    child's parent is the forkserver, which outlives a killed sweep by the seconds its
    interpreter takes to shut down, so the child watches the sweep itself."""
    with contextlib.suppress(OSError, AttributeError):  # Linux only; elsewhere best effort
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    pid = os.getppid() if sweep_pid is None else sweep_pid
    if not pid_alive(pid):  # the sweep died while this one started
        os._exit(1)
    threading.Thread(target=_die_with, args=(pid,), name="die-with-sweep", daemon=True).start()
    faulthandler.enable()
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")


def _die_with(pid: int) -> None:
    """Block until ``pid`` ends, then end this process at once (no cleanup: nothing of a
    cell is worth keeping once its sweep is gone)."""
    try:
        fd = os.pidfd_open(pid)  # Linux 5.3+: readable when the process ends
    except (AttributeError, OSError):
        while pid_alive(pid):
            time.sleep(0.2)
    else:
        select.select([fd], [], [])
    os._exit(1)


def _forkserver_child(task: CellTask, out: str, err: str, sweep_pid: int, level: int) -> None:
    with open(err, "ab", buffering=0) as fh:  # stdout too: the parent's terminal stays clean
        os.dup2(fh.fileno(), 2)
        os.dup2(fh.fileno(), 1)
    child_setup(sweep_pid, level)
    from harness.cell import outcome_of
    from harness.store import atomic_write_json

    atomic_write_json(Path(out), outcome_of(task))


_CONTEXT: multiprocessing.context.BaseContext | None = None


def _context() -> multiprocessing.context.BaseContext:
    global _CONTEXT
    if _CONTEXT is None:
        forkserver = "forkserver" in multiprocessing.get_all_start_methods()
        method = "forkserver" if forkserver else "spawn"
        ctx = multiprocessing.get_context(method)
        if method == "forkserver":
            ctx.set_forkserver_preload(["harness.cell"])  # numpy, numba, models: imported once
        _CONTEXT = ctx
    return _CONTEXT


def can_fork_children() -> bool:
    """False inside a daemonic process (multiprocessing refuses it children)."""
    return not multiprocessing.current_process().daemon


def run_isolated(
    task: CellTask, *, timeout_s: float | None = None, workdir: Path | None = None
) -> Outcome:
    """Run ``task`` in a child process and wait for it (at most ``timeout_s`` seconds)."""
    with tempfile.TemporaryDirectory(prefix="hashsparse-cell-", dir=workdir) as tmp:
        out, err = Path(tmp, "outcome.json"), Path(tmp, "stderr.log")
        started = time.monotonic()
        if can_fork_children():
            code, timed_out = _run_forkserver(task, out, err, timeout_s)
        else:
            code, timed_out = _run_subprocess(task, Path(tmp), out, err, timeout_s)
        elapsed = time.monotonic() - started
        _relay(err, task.cell.cell_id)
        if not timed_out and out.exists():
            return _read_outcome(out)
        return Outcome(failure=_failure(code, timed_out, timeout_s, elapsed, _tail(err)))


def _run_forkserver(
    task: CellTask, out: Path, err: Path, timeout_s: float | None
) -> tuple[int | None, bool]:
    proc = _context().Process(  # type: ignore[attr-defined]
        target=_forkserver_child,
        args=(task, str(out), str(err), os.getpid(), _level()),
        daemon=True,
    )
    proc.start()
    try:
        proc.join(timeout_s)
        if proc.is_alive():
            proc.kill()
            proc.join()
            return proc.exitcode, True
        return proc.exitcode, False
    finally:  # Ctrl-C or SIGTERM of the sweep: the cell in flight goes with it
        if proc.is_alive():
            proc.kill()
            proc.join()


def _run_subprocess(
    task: CellTask, tmp: Path, out: Path, err: Path, timeout_s: float | None
) -> tuple[int | None, bool]:
    task_path = tmp / "task.json"
    task_path.write_text(json.dumps(task.to_dict()))
    with open(err, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness.cell", str(task_path), str(out), str(_level())],
            stdout=fh,
            stderr=fh,
            stdin=subprocess.DEVNULL,
            # what this process can import, the child can: a model registered by a plugin
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
        )
        try:
            return proc.wait(timeout_s), False
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(), True
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _read_outcome(path: Path) -> Outcome:
    return outcome_from_data(json.loads(path.read_text(encoding="utf-8")))


def outcome_from_data(data: dict[str, Any]) -> Outcome:
    """An ``Outcome`` from ``harness.cell.outcome_of``'s plain data, checked."""
    if "measured" in data:
        return Outcome(measured=measured_from(data["measured"]))
    if "user_error" in data:
        return Outcome(user_error=data["user_error"], exit_code=int(data.get("exit_code", 2)))
    return Outcome(failure=from_plain(Failure, data["failure"], "failure"))


def _failure(
    code: int | None, timed_out: bool, timeout_s: float | None, elapsed: float, tail: str
) -> Failure:
    if timed_out:
        return Failure(
            error=f"timed out after {timeout_s:g} s (--cell-timeout); the child was killed",
            exit_code=code,
            signal="SIGKILL",
            timed_out=True,
            stderr_tail=tail,
        )
    if code is not None and code < 0:
        name = _signal_name(-code)
        why = {
            "SIGKILL": "killed (out of memory, or by a user or a scheduler)",
            "SIGSEGV": "crashed (segmentation fault)",
            "SIGBUS": "crashed (bus error)",
            "SIGABRT": "aborted",
        }.get(name, "ended by a signal")
        return Failure(
            error=f"the cell's process {why}: {name} after {elapsed:.1f} s",
            exit_code=code,
            signal=name,
            stderr_tail=tail,
        )
    return Failure(
        error=f"the cell's process exited with code {code} after {elapsed:.1f} s without a result",
        exit_code=code,
        stderr_tail=tail,
    )


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _level() -> int:
    """The child logs what this process would (``-v``: every epoch)."""
    return logging.getLogger().getEffectiveLevel()


def _relay(path: Path, cell_id: str) -> None:
    """The child's log, re-logged here once it has ended, where this process logs at INFO
    (the child's stderr goes to a file, so a crash's last lines can be stored)."""
    if not log.isEnabledFor(logging.INFO):
        return
    with contextlib.suppress(OSError):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            log.info("[%s] %s", cell_id, line)


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-STDERR_TAIL_LINES:])
