"""Runs cells: load data, build the model, train epoch by epoch inside measured windows, store.

Each cell is isolated: an exception inside one is stored as a failed record and the sweep goes
on; so is a diverged run (a non-finite loss or accuracy), never an "ok" record of nulls. A cell
with a successful record is not rerun unless ``force`` is set, so an interrupted sweep resumes
where it stopped. Compilation (``model.warmup()``) happens before any window.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

import models
from harness import datasets
from harness.energy import operation_energy
from harness.errors import UserError
from harness.experiments import Cell
from harness.measure import Window, idle_power, measure, split_energy
from harness.store import ResultStore
from models.base import DivergedError

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    done: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (cell_id, one-line error)
    short_windows: int = 0  # windows too short for a meter (each warning is in its record)


class _DataCache:
    """Each (dataset, split, size) is loaded once per sweep. The data's own seed is fixed
    (0): every model and model seed trains on the same examples."""

    def __init__(self, data_dir: Path | None) -> None:
        self.data_dir = data_dir
        self._cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def get(self, name: str, split: str, n: int | None) -> tuple[np.ndarray, np.ndarray]:
        key = (name, split, n)
        if key not in self._cache:
            self._cache[key] = datasets.load(name, split, n=n, data_dir=self.data_dir, seed=0)
        return self._cache[key]


def run_cells(
    cells: Sequence[Cell],
    store: ResultStore,
    meters: Sequence[Any],
    *,
    profile: str,
    force: bool = False,
    data_dir: Path | None = None,
    idle_s: float = 2.0,
    on_cell: Callable[[Cell, str], None] | None = None,
) -> RunSummary:
    """Run every cell not already finished; ``on_cell(cell, status)`` reports progress."""
    summary = RunSummary()
    todo = [c for c in cells if force or not store.finished(c.experiment, c.cell_id)]
    for cell in cells:
        if cell not in todo:
            summary.skipped.append(cell.cell_id)
            if on_cell:
                on_cell(cell, "skipped")
    if not todo:
        return summary
    data = _DataCache(data_dir)
    idle = idle_power(meters, seconds=idle_s) if idle_s > 0 else {}
    for cell in todo:
        try:
            record = run_cell(cell, data, meters, idle)
            record.update(profile=profile, idle_power_w=idle, status="ok")
        except UserError:
            raise  # the user's to fix (bad data path, unreadable meter): stop the sweep
        except Exception as exc:  # one crash loses one cell, not the sweep
            log.error("cell %s failed: %s", cell.cell_id, exc)
            record = _describe_cell(cell)
            record.update(
                profile=profile,
                status="failed",
                error=f"{type(exc).__name__}: {exc}",
                traceback=traceback.format_exc(),
            )
            summary.failed.append((cell.cell_id, record["error"]))
        record["machine_id"] = store.machine_id
        summary.short_windows += sum(
            bool(w.get("warnings"))
            for w in [*record.get("epochs", []), record.get("inference", {})]
        )
        summary.done.append(store.write_cell(record))
        if on_cell:
            on_cell(cell, record["status"])
    return summary


def _describe_cell(cell: Cell) -> dict[str, Any]:
    return {
        "experiment": cell.experiment,
        "cell_id": cell.cell_id,
        "dataset": {"name": cell.dataset, "n_train": cell.n_train, "n_test": cell.n_test},
        "model": {"name": cell.model, "label": cell.name, "settings": cell.settings},
        "epochs_planned": cell.epochs,
        "created_unix_s": time.time(),
    }


def _window_fields(window: Window, idle: dict[str, float]) -> dict[str, Any]:
    """Times, gross readings, gross/idle/net split of measured domains, and warnings."""
    return {
        "wall_s": window.wall_s,
        "cpu_s": window.cpu_s,
        "energy": [r.to_dict() for r in window.readings],
        "energy_split": [s.to_dict() for s in split_energy(window, idle)],
        "warnings": window.warnings,
    }


def run_cell(
    cell: Cell, data: _DataCache, meters: Sequence[Any], idle: dict[str, float] | None = None
) -> dict[str, Any]:
    """Train one cell; returns its record (without status)."""
    dataset = datasets.canonical(cell.dataset, data.data_dir)
    X, y = data.get(dataset, "train", cell.n_train)
    Xt, yt = data.get(dataset, "test", cell.n_test)
    n_classes = int(max(y.max(), yt.max())) + 1
    config = {"n_inputs": X.shape[1], "n_classes": n_classes, **cell.settings}
    model = models.build(cell.model, config)
    threads = int(cell.settings.get("threads", 1))

    idle = idle or {}
    record = _describe_cell(cell)
    record["dataset"].update(
        name=dataset,
        requested=cell.dataset,
        n_train=len(y),
        n_test=len(yt),
        n_features=int(X.shape[1]),
        n_classes=n_classes,
    )
    record["model"]["config"] = model.config.to_dict()

    # BLAS gets the same number of threads as the model, so comparisons are like for like.
    with threadpool_limits(limits=threads):
        model.warmup()
        epochs = []
        for epoch in range(1, cell.epochs + 1):
            with measure(meters) as window:
                stats = model.train_epoch(X, y)
            accuracy = model.score(Xt, yt)  # outside the training window
            if not (math.isfinite(stats.loss) and math.isfinite(accuracy)):
                # The models raise DivergedError themselves; this catches any that does not,
                # so a NaN is stored as a failed cell, never as an "ok" record of nulls.
                raise DivergedError(
                    f"training diverged at epoch {epoch}: train loss {stats.loss}, test "
                    f"accuracy {accuracy}; lower lr"
                )
            epochs.append(
                {
                    "epoch": epoch,
                    **_window_fields(window, idle),
                    "op_energy": operation_energy(stats.mults.training).to_dict(),
                    "train_loss": stats.loss,
                    "test_accuracy": accuracy,
                    "active_fraction": stats.active_fraction,
                    "computed_fraction": stats.computed_fraction,
                    "mults": stats.mults.as_dict(),
                    "extra": stats.extra,
                }
            )
            log.info("%s epoch %d: acc %.4f, %.2f s", cell.cell_id, epoch, accuracy, window.wall_s)

        before = model.mults_.inference
        with measure(meters) as window:
            model.predict_scores(Xt)
        inference_mults = model.mults_.inference - before

    record.update(
        epochs=epochs,
        final_test_accuracy=epochs[-1]["test_accuracy"] if epochs else None,
        inference={
            "n_examples": len(yt),
            **_window_fields(window, idle),
            "mults": inference_mults,
            "op_energy": operation_energy(inference_mults).to_dict(),
        },
        model_facts=model.describe(),
    )
    return record
