"""Cells on an existing ``dask.distributed`` cluster (``--scheduler ADDRESS``).

Each worker must run one task at a time (``dask worker ADDRESS --nthreads 1``), so cells never
share a worker; every cell still runs in its own child process on the worker (a crash costs the
cell, not the worker). A worker measures its own idle power before its first cell and sends
back, with each result, its machine's id, fingerprint and code version, so each record lands
in the folder of the machine that ran it. Only this client writes the store, under the locks of
every folder it writes; resume and reruns work as they do locally. A cell whose worker dies is
rerun by the scheduler on another (up to its ``distributed.scheduler.allowed-failures``, 3 by
default); after that it is stored as failed, under this client's machine since nothing says
which machine had it last, and a rerun of the sweep tries it again.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import machine
from harness.cell import CellTask, MeterOptions, task_for
from harness.errors import UserError
from harness.experiments import Cell
from harness.isolate import Outcome, run_isolated
from harness.lock import folder_locks
from harness.record import Failure, from_plain
from harness.store import ResultStore, to_plain

if TYPE_CHECKING:
    from harness.runner import Progress, RunSummary, SweepOptions

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 20


def run_on_cluster(
    cells: Sequence[Cell], results: Path, options: SweepOptions, *, on_cell: Progress | None
) -> RunSummary:
    from harness.runner import Host, RunSummary, pending, store_outcome

    client = _connect(str(options.scheduler))
    with client:
        workers = _check_workers(client)
        here = ResultStore(results, machine.machine_id())  # for cells whose machine is lost
        stores = {mid: ResultStore(results, mid) for mid in sorted(set(workers.values()))}
        stores.setdefault(here.machine_id, here)
        summary = RunSummary()
        with folder_locks([s.machine_dir for s in stores.values()], wait=options.wait_for_lock):
            todo = pending(cells, list(stores.values()), options, summary, on_cell)
            futures = {
                client.submit(
                    remote_cell,
                    task_for(cell, options.meters, {}, options.data_dir).to_dict(),
                    options.idle_s,
                    options.cell_timeout_s,
                    key=f"hashsparse-{cell.cell_id}-{uuid.uuid4().hex[:8]}",
                    pure=False,
                ): cell
                for cell in todo
            }
            from dask.distributed import as_completed

            for future in as_completed(futures, loop=client.loop):
                cell = futures[future]
                try:
                    reply = future.result()
                except Exception as exc:  # its workers kept dying (KilledWorker), or it was lost
                    host = Host.here(None, [])
                    failure = Failure(
                        error=f"its dask worker was lost ({type(exc).__name__}: {exc}); "
                        "the machine that had it is unknown, so it is stored here; rerun to "
                        "retry it",
                    )
                    outcome, idle, store = Outcome(failure=failure), {}, here
                else:
                    host = from_plain(Host, reply["host"], "host")
                    outcome = from_plain(Outcome, reply["outcome"], "outcome")
                    idle = reply["idle_power_w"]
                    store = stores.get(host.machine_id) or ResultStore(results, host.machine_id)
                if store.machine_id not in stores:  # a worker that joined mid-sweep
                    log.warning("worker machine %s joined mid-sweep; its folder is not locked",
                                host.machine_id)
                store_outcome(store, cell, outcome, host, options.profile, idle, summary, on_cell)
                future.release()
    return summary


def _connect(address: str) -> Any:
    try:
        from dask.distributed import Client
    except ImportError:
        raise UserError(
            "--scheduler needs dask.distributed: install the 'dask' extra "
            "(pip install 'hashsparse-energy[dask]'; `make` installs it)"
        ) from None
    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise UserError(
            f"cannot reach the dask scheduler at {address!r} ({exc}); start one with "
            "`dask scheduler` and pass the address it prints (tcp://HOST:8786)"
        ) from None


def _check_workers(client: Any) -> dict[str, str]:
    """Worker address -> machine id; one task at a time per worker, or a clear error."""
    info = client.scheduler_info()["workers"]
    if not info:
        raise UserError(
            "the dask cluster has no workers; start them with `dask worker ADDRESS --nthreads 1`"
        )
    busy = {addr: w.get("nthreads") for addr, w in info.items() if w.get("nthreads") != 1}
    if busy:
        raise UserError(
            f"dask workers {sorted(busy)} run {sorted(set(busy.values()))} threads each: cells "
            "sharing a worker would be timed against each other; start every worker with "
            "`dask worker ADDRESS --nthreads 1`"
        )
    ids: dict[str, str] = client.run(worker_machine_id)
    shared: dict[str, list[str]] = {}
    for addr, mid in ids.items():
        shared.setdefault(mid, []).append(addr)
    for mid, addrs in shared.items():
        if len(addrs) > 1:
            log.warning(
                "%d dask workers run on machine %s: their cells run at the same time and "
                "share its cores, caches and energy counters; start one worker per machine "
                "for measurements that do not disturb each other", len(addrs), mid)
    return ids


def worker_machine_id() -> str:
    return machine.machine_id()


@functools.cache
def _worker_host(meters_json: str, idle_s: float) -> tuple[dict[str, Any], dict[str, float]]:
    """This worker's machine, code and idle power, taken once before its first cell."""
    from harness.energy import select_meters
    from harness.measure import idle_power
    from harness.runner import Host

    meters = MeterOptions(**json.loads(meters_json))
    with select_meters(
        include=meters.include, exclude=meters.exclude, cpu_power_w=meters.cpu_power_w
    ) as m:
        host = Host.here(None, m)
        idle = idle_power(m, seconds=idle_s)
    return to_plain(dataclasses.asdict(host)), idle


def remote_cell(task_data: dict[str, Any], idle_s: float, timeout_s: float | None) -> dict:
    """Runs on a dask worker: one cell in a child process, returned as plain data."""
    task = CellTask.from_dict(task_data)
    host, idle = _worker_host(json.dumps(task_data["meters"], sort_keys=True), idle_s)
    outcome = run_isolated(dataclasses.replace(task, idle_power_w=idle), timeout_s=timeout_s)
    return {
        "host": host,
        "idle_power_w": idle,
        "outcome": to_plain(dataclasses.asdict(outcome)),
    }
