"""One cell, as its own process runs it: load data, build the model, train epoch by epoch inside
measured windows, score, and return what was measured (``Measured``).

This module runs inside the child process that ``harness.isolate`` starts (or in the caller's
process with ``--in-process``); it never writes the result store. ``python -m harness.cell
TASK.json OUT.json`` is the child's command line where a process cannot fork one (a Dask
worker).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import math
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

import models
from harness import datasets
from harness.energy import operation_energy, select_meters
from harness.errors import UserError
from harness.experiments import Cell
from harness.measure import energy_rows, measure
from harness.record import (
    DatasetInfo,
    EpochRecord,
    Failure,
    InferenceRecord,
    ModelInfo,
    from_plain,
)
from models.base import DivergedError

log = logging.getLogger(__name__)

DIAGNOSTIC_EXAMPLES = 256  # test examples the model's diagnostics (hash recall) look at


@dataclass(frozen=True)
class MeterOptions:
    """How the child picks its energy meters: the same choice the sweep made."""

    include: list[str] | None = None
    exclude: list[str] | None = None
    cpu_power_w: float | None = None


@dataclass(frozen=True)
class CellTask:
    """Everything a child needs to run one cell, as plain data (it crosses a process)."""

    cell: Cell
    meters: MeterOptions = field(default_factory=MeterOptions)
    idle_power_w: dict[str, float] = field(default_factory=dict)
    data_dir: str | None = None
    # Imported first, so models registered outside `models` (a plugin, a test) exist.
    model_module: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CellTask:
        return from_plain(cls, data, "task")  # checked, as every record is


@dataclass(frozen=True)
class Measured:
    """The part of a cell's record that its process measures."""

    dataset: DatasetInfo
    model: ModelInfo
    epochs: list[EpochRecord]
    inference: InferenceRecord
    model_facts: dict[str, Any]
    diagnostics: dict[str, Any]


def task_for(
    cell: Cell, meters: MeterOptions, idle_power_w: dict[str, float], data_dir: Path | None
) -> CellTask:
    module = models.model_class(cell.model).__module__
    return CellTask(cell, meters, dict(idle_power_w), str(data_dir) if data_dir else None, module)


def run_task(task: CellTask) -> Measured:
    """Train and measure ``task``'s cell in this process."""
    if task.model_module:
        importlib.import_module(task.model_module)
    cell = task.cell
    data_dir = Path(task.data_dir) if task.data_dir else None
    dataset = datasets.canonical(cell.dataset, data_dir)
    # The data's own seed is fixed (0): every model and model seed trains on the same examples.
    X, y = datasets.load(dataset, "train", n=cell.n_train, data_dir=data_dir, seed=0)
    Xt, yt = datasets.load(dataset, "test", n=cell.n_test, data_dir=data_dir, seed=0)
    n_classes = int(max(y.max(), yt.max())) + 1
    model = models.build(cell.model, {"n_inputs": X.shape[1], "n_classes": n_classes,
                                      **cell.settings})
    sync = getattr(model, "synchronize", None)  # a GPU model's work ends inside its window
    gpu = getattr(model, "device_index_", None)
    opts = task.meters
    with select_meters(
        include=opts.include,
        exclude=opts.exclude,
        cpu_power_w=opts.cpu_power_w,
        model_gpus=() if gpu is None else (gpu,),
    ) as meters, threadpool_limits(limits=model.config.threads):
        # BLAS gets the same threads as the model, so comparisons are like for like.
        model.warmup()  # compilation, never inside a window
        epochs = []
        for epoch in range(1, cell.epochs + 1):
            with measure(meters, sync=sync) as window:
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
                EpochRecord(
                    epoch=epoch,
                    wall_s=window.wall_s,
                    cpu_s=window.cpu_s,
                    train_loss=stats.loss,
                    test_accuracy=accuracy,
                    mults=stats.mults.as_dict(),
                    energy=energy_rows(window, task.idle_power_w),
                    op_energy_j=operation_energy(stats.mults.training).energy_j,
                    active_fraction=stats.active_fraction,
                    computed_fraction=stats.computed_fraction,
                    warnings=window.warnings,
                    extra=stats.extra,
                )
            )
            log.info("%s epoch %d: acc %.4f, %.2f s", cell.cell_id, epoch, accuracy, window.wall_s)
        before = model.mults_.inference
        with measure(meters, sync=sync) as window:
            model.predict_scores(Xt)
        inference_mults = model.mults_.inference - before
        diagnostics = _diagnostics(model, Xt)
    return Measured(
        dataset=DatasetInfo(
            name=dataset,
            requested=cell.dataset,
            n_train=len(y),
            n_test=len(yt),
            n_features=int(X.shape[1]),
            n_classes=n_classes,
            provenance=datasets.provenance(dataset, data_dir),
        ),
        model=ModelInfo(cell.model, cell.name, cell.settings, model.config.to_dict()),
        epochs=epochs,
        inference=InferenceRecord(
            n_examples=len(yt),
            wall_s=window.wall_s,
            cpu_s=window.cpu_s,
            mults=inference_mults,
            energy=energy_rows(window, task.idle_power_w),
            op_energy_j=operation_energy(inference_mults).energy_j,
            warnings=window.warnings,
        ),
        model_facts=model.describe(),
        diagnostics=diagnostics,
    )


def _diagnostics(model: models.Model, X: np.ndarray) -> dict[str, Any]:
    """Measurements of the trained model that cost real time (hash recall against exact
    search): taken after every window has closed."""
    diagnose = getattr(model, "diagnostics", None)
    return dict(diagnose(X[:DIAGNOSTIC_EXAMPLES])) if diagnose is not None else {}


# -- what crosses the process boundary ------------------------------------------------------


def outcome_of(task: CellTask) -> dict[str, Any]:
    """Run ``task``; the result, a cell failure, or a user error, as plain data."""
    try:
        return {"measured": dataclasses.asdict(run_task(task))}
    except UserError as exc:  # the user's to fix (bad data path, meter): stops the sweep
        return {"user_error": str(exc), "exit_code": exc.exit_code}
    except Exception as exc:  # one crash loses one cell, not the sweep
        return {
            "failure": dataclasses.asdict(
                Failure(error=_one_line(exc), traceback=traceback.format_exc())
            )
        }


def measured_from(data: dict[str, Any]) -> Measured:
    return from_plain(Measured, data, "result")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.cell TASK.json OUT.json LOG_LEVEL``: run one cell, write its
    outcome."""
    from harness.isolate import child_setup
    from harness.store import atomic_write_json

    task_path, out_path, level = argv if argv is not None else sys.argv[1:]
    child_setup(log_level=int(level))
    task = CellTask.from_dict(json.loads(Path(task_path).read_text()))
    atomic_write_json(Path(out_path), outcome_of(task))
    return 0


if __name__ == "__main__":
    sys.exit(main())
