"""Sweeps: which cells to run, each in its own process, and their records into the store.

- A cell runs in a child process (``harness.isolate``): an exception, a segfault, an
  out-of-memory kill or ``cell_timeout_s`` becomes a failed record and the sweep goes on. A
  user error inside a cell (a bad data path, an unreadable meter) stops the sweep.
- Only this process writes the store, one atomic file per cell, as each cell ends; a killed
  sweep loses at most the cell in flight, and a rerun resumes.
- One sweep per machine folder: the folder's lock is held throughout (``harness.lock``).
- A cell with a successful record is not rerun unless ``force`` is set, or its record comes
  from a commit older than ``rerun_older_than``. Records written by newer code are left alone.
- With ``scheduler`` the cells go to a ``dask.distributed`` cluster (``harness.cluster``) and
  each record lands in the folder of the machine that ran it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import machine
from harness.cell import CellTask, MeterOptions, outcome_of, task_for
from harness.energy import select_meters
from harness.errors import UserError
from harness.experiments import Cell
from harness.isolate import Outcome, outcome_from_data, run_isolated
from harness.measure import idle_power
from harness.record import CellRecord, CodeVersion, DatasetInfo, Failure, ModelInfo, from_plain
from harness.store import ResultStore, State, to_plain

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepOptions:
    profile: str
    force: bool = False
    rerun_older_than: str | None = None  # a commit: rerun cells stored by older code
    data_dir: Path | None = None
    idle_s: float = 2.0
    meters: MeterOptions = field(default_factory=MeterOptions)
    cell_timeout_s: float | None = None
    in_process: bool = False  # debugging only: a crash then ends the sweep
    wait_for_lock: bool = True
    scheduler: str | None = None  # a dask.distributed scheduler's address


@dataclass
class RunSummary:
    done: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (cell_id, one-line error)
    refused: list[str] = field(default_factory=list)  # records of newer code, left alone
    short_windows: int = 0  # windows too short for a meter (each warning is in its record)
    machines: set[str] = field(default_factory=set)  # machine folders written


@dataclass(frozen=True)
class Host:
    """The machine and code a cell ran on, as every record of it stores them."""

    machine_id: str
    fingerprint: dict[str, Any]
    code: CodeVersion

    @classmethod
    def here(cls, machine_id: str | None, meters: Any) -> Host:
        fp = machine.fingerprint(machine_id)
        fp["energy_meters"] = {
            "used": {m.name: m.note or m.source for m in meters},
            "not_used": dict(getattr(meters, "skipped", {})),
        }
        code = from_plain(CodeVersion, machine.code_version(), "code")
        return cls(fp["machine_id"], fp, code)


Progress = Callable[[Cell, str], None]


def run_cells(
    cells: Sequence[Cell],
    results: Path,
    options: SweepOptions,
    *,
    machine_id: str | None = None,
    on_cell: Progress | None = None,
) -> RunSummary:
    """Run every cell that has no usable record yet; ``on_cell(cell, status)`` reports each
    cell ("skipped", "refused", "ok" or "failed") as it is decided or stored."""
    if options.scheduler:
        from harness.cluster import run_on_cluster

        return run_on_cluster(cells, results, options, on_cell=on_cell)
    store = ResultStore(results, machine.machine_id(machine_id))
    summary = RunSummary()
    with store.lock(wait=options.wait_for_lock):
        todo = pending(cells, [store], options, summary, on_cell)
        if not todo:
            return summary
        opts = options.meters
        with select_meters(
            include=opts.include, exclude=opts.exclude, cpu_power_w=opts.cpu_power_w
        ) as meters:
            host = Host.here(machine_id, meters)
            idle = idle_power(meters, seconds=options.idle_s)
        for cell in todo:
            task = task_for(cell, opts, idle, options.data_dir)
            outcome = run_task(task, options)
            store_outcome(store, cell, outcome, host, options.profile, idle, summary, on_cell)
    return summary


def run_task(task: CellTask, options: SweepOptions) -> Outcome:
    if options.in_process:
        return outcome_from_data(to_plain(outcome_of(task)))  # as a child's would read back
    return run_isolated(task, timeout_s=options.cell_timeout_s)


def pending(
    cells: Sequence[Cell],
    stores: Sequence[ResultStore],
    options: SweepOptions,
    summary: RunSummary,
    on_cell: Progress | None,
) -> list[Cell]:
    """The cells to run: those without a successful record in any of ``stores`` (reruns by
    ``force`` or ``rerun_older_than`` aside); records of newer code are never run over."""
    todo = []
    for cell in cells:
        states = [store.state(cell.experiment, cell.cell_id) for store in stores]
        if any(state is State.NEWER for state, _ in states):
            summary.refused.append(cell.cell_id)
            status = "refused"
        elif options.force or not any(_current(rec, options) for _, rec in states):
            todo.append(cell)
            continue
        else:
            summary.skipped.append(cell.cell_id)
            status = "skipped"
        if on_cell:
            on_cell(cell, status)
    return todo


def _current(record: CellRecord | None, options: SweepOptions) -> bool:
    if record is None or record.status != "ok":
        return False
    if options.rerun_older_than:
        return not machine.commit_is_older(record.code.commit, options.rerun_older_than)
    return True


def store_outcome(
    store: ResultStore,
    cell: Cell,
    outcome: Outcome,
    host: Host,
    profile: str,
    idle: dict[str, float],
    summary: RunSummary,
    on_cell: Progress | None,
) -> None:
    """Write the cell's record (or stop the sweep on a user error)."""
    if outcome.user_error is not None:
        error = UserError(outcome.user_error)
        error.exit_code = outcome.exit_code
        raise error
    record = build_record(cell, outcome, host, profile, idle)
    if record.failure is not None:
        log.error("cell %s failed: %s", cell.cell_id, record.failure.error)
        summary.failed.append((cell.cell_id, record.failure.error))
    warnings = [e.warnings for e in record.epochs]
    warnings += [record.inference.warnings] if record.inference else []
    summary.short_windows += sum(map(bool, warnings))
    summary.done.append(store.write_cell(record))
    summary.machines.add(store.machine_id)
    if on_cell:
        on_cell(cell, record.status)


def build_record(
    cell: Cell, outcome: Outcome, host: Host, profile: str, idle: dict[str, float]
) -> CellRecord:
    common: dict[str, Any] = {
        "experiment": cell.experiment,
        "cell_id": cell.cell_id,
        "profile": profile,
        "machine_id": host.machine_id,
        "machine": host.fingerprint,
        "code": host.code,
        "epochs_planned": cell.epochs,
        "created_unix_s": time.time(),
        "idle_power_w": dict(idle),
    }
    m = outcome.measured
    if m is None:
        return CellRecord(
            status="failed",
            dataset=DatasetInfo(cell.dataset, cell.dataset, cell.n_train, cell.n_test),
            model=ModelInfo(cell.model, cell.name, cell.settings),
            failure=outcome.failure or Failure(error="the cell ended without a result"),
            **common,
        )
    return CellRecord(
        status="ok",
        dataset=m.dataset,
        model=m.model,
        epochs=m.epochs,
        inference=m.inference,
        model_facts=m.model_facts,
        diagnostics=m.diagnostics,
        **common,
    )

