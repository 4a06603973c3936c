"""A process per cell and one writer per folder: a killed, crashed or hung cell becomes a failed
record while the others finish; a killed sweep loses at most the cell in flight and a rerun
resumes; two sweeps on one folder train each cell once; newer records are left alone."""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cell import MeterOptions
from harness.experiments import Cell
from harness.lock import folder_lock
from harness.runner import SweepOptions, run_cells
from harness.store import ResultStore, atomic_write_json, read_record
from models.dense import DenseNet
from models.registry import register

ROOT = Path(__file__).resolve().parents[1]
ESTIMATE = MeterOptions(include=["cpu-estimate"], cpu_power_w=4.0)


@register
class _KilledNet(DenseNet):
    """Killed by the kernel mid-epoch, as the out-of-memory killer would."""

    name = "test-sigkill"

    def train_epoch(self, X, y):
        os.kill(os.getpid(), signal.SIGKILL)


@register
class _SegfaultNet(DenseNet):
    """Dereferences a null pointer, as a numba kernel indexing out of bounds can."""

    name = "test-segfault"

    def train_epoch(self, X, y):
        ctypes.string_at(0)


@register
class _HungNet(DenseNet):
    name = "test-hang"

    def train_epoch(self, X, y):
        time.sleep(120)


def _cell(model: str, seed: int = 0) -> Cell:
    settings = {"hidden": [16], "optimizer": "momentum", "lr": 0.05, "batch_size": 16,
                "seed": seed}
    return Cell("unit", "digits", model, settings, 1, 200, 100)


def _stored(root: Path, cell: Cell):
    return read_record(ResultStore(root, "m").cell_path(cell.experiment, cell.cell_id))


def test_killed_crashed_and_hung_cells_become_failed_records_and_the_rest_finish(tmp_path):
    cells = [_cell("test-sigkill"), _cell("test-segfault"), _cell("test-hang"), _cell("dense")]
    options = SweepOptions(profile="unit", idle_s=0, meters=ESTIMATE, cell_timeout_s=20)
    started = time.monotonic()
    summary = run_cells(cells, tmp_path, options, machine_id="m")
    assert time.monotonic() - started < 60  # the hung cell was stopped at its limit
    assert [cid for cid, _ in summary.failed] == [c.cell_id for c in cells[:3]]
    killed, crashed, hung, fine = (_stored(tmp_path, c) for c in cells)
    assert killed.failure.signal == "SIGKILL" and killed.failure.exit_code == -9
    assert "killed (out of memory" in killed.failure.error
    assert crashed.failure.signal == "SIGSEGV"
    assert "segmentation fault" in crashed.failure.error
    # faulthandler's report of the crash, from the child's stderr
    assert "Segmentation fault" in crashed.failure.stderr_tail
    assert "train_epoch" in crashed.failure.stderr_tail
    assert hung.failure.timed_out and "timed out after 20 s" in hung.failure.error
    assert fine.status == "ok" and fine.epochs[0].test_accuracy > 0.3


def test_a_record_of_newer_code_is_left_alone_and_named(tmp_path, caplog):
    cell = _cell("dense")
    path = ResultStore(tmp_path, "m").cell_path(cell.experiment, cell.cell_id)
    atomic_write_json(path, {"schema_version": 99, "anything": "from the future"})
    before = path.read_bytes()
    for force in (False, True):
        options = SweepOptions(profile="unit", idle_s=0, meters=ESTIMATE, force=force)
        with caplog.at_level("WARNING"):
            summary = run_cells([cell], tmp_path, options, machine_id="m")
        assert summary.refused == [cell.cell_id] and not summary.done
    assert path.read_bytes() == before
    assert str(path) in caplog.text and "schema 99" in caplog.text


# -- the sweep as a user runs it: a real process, killed for real ---------------------------

SWEEP = ["--profile", "smoke", "--only", "fraction_sweep", "--models", "dense", "dropout",
         "standout", "--idle-s", "0", "--no-meter", "nvml", "--machine-id", "box"]
N_CELLS = 5  # dense once, dropout and standout at two fractions


def _sweep(tmp_path: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "run_all.py"), *SWEEP, "--results",
         str(tmp_path / "results"), "--report", str(tmp_path / "report"), *extra],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _records(tmp_path: Path) -> dict[str, float]:
    """cell id -> when its record was made, for every record stored (all must parse)."""
    out = {}
    for p in (tmp_path / "results" / "box").glob("*/*.json"):
        out[p.stem] = json.loads(p.read_text())["created_unix_s"]
    return out


def _descendants(pid: int) -> dict[int, int]:
    """pid -> generation (1: child, 2: grandchild, ...) of every descendant of ``pid``."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = {}, [(pid, 0)]
    while todo:
        parent, depth = todo.pop()
        for child in children.get(parent, []):
            found[child] = depth + 1
            todo.append((child, depth + 1))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _done_line(stdout: str) -> tuple[int, int]:
    m = re.search(r"^(\d+) runs done, (\d+) already stored", stdout, re.M)
    assert m, stdout
    return int(m.group(1)), int(m.group(2))


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_sigkill_of_the_sweep_then_a_rerun_runs_every_cell_exactly_once(tmp_path):
    proc = _sweep(tmp_path)
    deadline = time.monotonic() + 120
    while not _records(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _records(tmp_path), "no cell finished in time"
    time.sleep(0.3)  # the next cell's process has started
    family = _descendants(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()  # not communicate(): the orphans, if any, would hold its pipes open
    before = _records(tmp_path)
    assert 1 <= len(before) < N_CELLS
    # the cell in flight (the forkserver's child) dies with the sweep at once, long before
    # it could have finished: nothing runs on, timed against the rerun; the forkserver and
    # the resource tracker follow once their interpreters have shut down
    cells = [pid for pid, generation in family.items() if generation >= 2]
    assert cells, family
    for wait_s, pids in ((0.5, cells), (30.0, list(family))):
        deadline = time.monotonic() + wait_s
        while any(map(_alive, pids)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in pids if _alive(pid)], (wait_s, family)
    proc.communicate()
    with folder_lock(tmp_path / "results" / "box", wait=False):
        pass  # the killed sweep's lock went with it
    rerun = _sweep(tmp_path)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    after = _records(tmp_path)
    assert len(after) == N_CELLS
    assert {k: after[k] for k in before} == before  # finished cells were not retrained
    assert _done_line(out) == (N_CELLS - len(before), len(before))
    for p in (tmp_path / "results" / "box").glob("*/*.json"):
        assert read_record(p).status == "ok"
    assert not list((tmp_path / "results").rglob("*.tmp"))  # no half-written file


def test_two_sweeps_on_one_folder_train_every_cell_once_in_total(tmp_path):
    first, second = _sweep(tmp_path), _sweep(tmp_path)
    (out1, err1), (out2, err2) = first.communicate(timeout=300), second.communicate(timeout=300)
    assert first.returncode == 0 and second.returncode == 0, err1 + err2
    done1, stored1 = _done_line(out1)
    done2, stored2 = _done_line(out2)
    assert done1 + done2 == N_CELLS  # each cell trained by exactly one of them
    assert {done1 + stored1, done2 + stored2} == {N_CELLS}
    assert "is in use by pid" in err1 + err2 and "waiting" in err1 + err2
    assert len(_records(tmp_path)) == N_CELLS


def test_no_wait_stops_at_once_with_the_holder_named(tmp_path):
    folder = tmp_path / "results" / "box"
    with folder_lock(folder):
        proc = _sweep(tmp_path, "--no-wait")
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert f"{folder} is in use by pid {os.getpid()}" in err and "Traceback" not in err
    assert not _records(tmp_path)
