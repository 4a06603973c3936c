"""Cell records with known contents, built through ``harness.record`` (the one definition), for
the tests of the store, the frames, the tables, the claims and the report."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from harness.record import (
    CellRecord,
    CodeVersion,
    DatasetInfo,
    EnergyRow,
    EpochRecord,
    Failure,
    InferenceRecord,
    ModelInfo,
)
from harness.store import ResultStore

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def energy(
    domain: str = "cpu-package-0",
    joules: float | None = 1.0,
    mode: str = "measured",
    *,
    meter: str = "rapl",
    source: str = "test",
    attributable: bool = True,
    idle_j: float | None = None,
) -> EnergyRow:
    return EnergyRow(
        domain=domain,
        device="gpu" if domain.startswith("gpu") else "cpu",
        meter=meter,
        mode=mode if joules is not None else "unavailable",
        source=source,
        attributable=attributable,
        gross_j=joules,
        idle_j=idle_j,
        net_j=None if idle_j is None or joules is None else joules - idle_j,
        reason="" if joules is not None else "not readable",
    )


def epoch(
    n: int,
    *,
    wall_s: float = 1.0,
    accuracy: float = 0.9,
    mults: float = 1000,  # counts are whole: a fraction here is rounded down
    loss: float = 1.0,
    energy_rows: Sequence[EnergyRow] = (),
    fraction: float = 1.0,
    computed: float | None = None,
    extra: dict[str, Any] | None = None,
    op_energy_j: float | None = None,
) -> EpochRecord:
    return EpochRecord(
        epoch=n,
        wall_s=wall_s,
        cpu_s=wall_s,
        train_loss=loss,
        test_accuracy=accuracy,
        mults={"forward": int(mults), "training": int(mults), "inference": 0},
        energy=list(energy_rows),
        op_energy_j=op_energy_j,
        active_fraction=fraction,
        computed_fraction=fraction if computed is None else computed,
        extra=extra or {},
    )


def cell(
    cell_id: str,
    *,
    epochs: Sequence[EpochRecord] = (),
    machine_id: str = "m",
    experiment: str = "fraction_sweep",
    model: str = "dense",
    label: str = "",
    dataset: str = "toy",
    n_train: int = 100,
    n_test: int = 50,
    settings: dict[str, Any] | None = None,
    status: str = "ok",
    error: str = "ValueError: boom",
    commit: str | None = COMMIT,
    dirty: bool = False,
    created_unix_s: float = 1.0,
    diagnostics: dict[str, Any] | None = None,
    inference_wall_s: float = 0.1,
) -> CellRecord:
    settings = {"hidden": [10], "seed": 0, **(settings or {})}
    ok = status == "ok"
    return CellRecord(
        experiment=experiment,
        cell_id=cell_id,
        status=status,
        profile="test",
        machine_id=machine_id,
        machine={"machine_id": machine_id, "cpu": {"model": f"{machine_id} cpu",
                                                   "logical_cores": 2}},
        code=CodeVersion(package_version="0.1.0", commit=commit, dirty=dirty),
        dataset=DatasetInfo(name=dataset, requested=dataset, n_train=n_train, n_test=n_test),
        model=ModelInfo(name=model, label=label or model, settings=settings, config=settings),
        epochs_planned=len(epochs) or 1,
        created_unix_s=created_unix_s,
        epochs=list(epochs) if ok else [],
        inference=InferenceRecord(n_examples=n_test, wall_s=inference_wall_s, cpu_s=0.1,
                                  mults=10 * n_test) if ok else None,
        diagnostics=diagnostics or {},
        failure=None if ok else Failure(error=error),
    )


def write(root: Any, record: CellRecord) -> None:
    ResultStore(root, record.machine_id).write_cell(record)


def put(store: ResultStore, record: CellRecord) -> None:
    """Store ``record`` as ``store``'s machine's."""
    store.write_cell(dataclasses.replace(record, machine_id=store.machine_id))
