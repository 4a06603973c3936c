"""The one definition of a cell record: the runner builds it, the store writes it, reports read it.

A record is plain JSON on disk. ``CellRecord.from_dict`` is the only way back: it checks the
schema version first (older: ``OldSchemaError``, newer: ``NewerSchemaError``), then every
field's type, so a reader never meets a half-record. Energy is long-form: one ``EnergyRow``
per (window, domain), with its meter, mode and gross/idle/net joules side by side; nothing is
encoded in key names.

Schema history (bump ``SCHEMA_VERSION`` on any change a reader would notice):
  1  energy as readings plus a parallel gross/idle/net list; no code version; the machine's
     fingerprint in a separate machine.json, rewritten each run. Not migrated: a schema-1 cell
     lacks the commit that produced it, so it is skipped by reports and rerun by the runner.
  2  this module: long-form energy, the code version and machine fingerprint in every record,
     child-process failures (signal, exit code, stderr tail).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

SCHEMA_VERSION = 2

STATUSES = ("ok", "failed")
ENERGY_MODES = ("measured", "estimated", "unavailable")


class RecordError(ValueError):
    """A stored record is corrupt or incomplete: its message says which field and why."""


class OldSchemaError(RecordError):
    """A record written by older code, under a schema this code does not read."""


class NewerSchemaError(RecordError):
    """A record written by newer code: never read as ours, never overwritten."""


@dataclass(frozen=True)
class EnergyRow:
    """The energy of one domain over one window, as one row.

    ``gross_j`` is None exactly when ``mode`` is "unavailable" (then ``reason`` says why).
    ``idle_j``/``net_j`` exist only where the domain's idle power was measured. Rows with
    ``attributable`` False (a GPU the model did not use) are never the model's cost.
    """

    domain: str
    device: str  # "cpu" or "gpu"
    meter: str  # the backend: rapl, pyrapl, nvml, cpu-estimate
    mode: str  # measured, estimated or unavailable
    source: str
    attributable: bool
    gross_j: float | None
    idle_power_w: float | None = None
    idle_j: float | None = None
    net_j: float | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        if self.mode not in ENERGY_MODES:
            raise RecordError(f"energy mode must be one of {ENERGY_MODES}, got {self.mode!r}")
        if (self.gross_j is None) != (self.mode == "unavailable"):
            raise RecordError(
                f"{self.domain}: gross_j must be null exactly when the mode is 'unavailable'"
            )


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    wall_s: float
    cpu_s: float  # the child process's CPU seconds, all threads
    train_loss: float
    test_accuracy: float
    mults: dict[str, int]  # per phase, plus "training" (their sum) and "inference"
    energy: list[EnergyRow] = field(default_factory=list)
    op_energy_j: float | None = None  # counted operations x 45 nm energies (an estimate)
    active_fraction: float | None = None
    computed_fraction: float | None = None
    warnings: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InferenceRecord:
    n_examples: int
    wall_s: float
    cpu_s: float
    mults: int
    energy: list[EnergyRow] = field(default_factory=list)
    op_energy_j: float | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CodeVersion:
    """What produced the record: the git commit (with uncommitted changes or not), else the
    installed package's version alone."""

    package_version: str
    commit: str | None = None
    dirty: bool | None = None

    @property
    def label(self) -> str:
        if self.commit is None:
            return f"package {self.package_version} (no git checkout)"
        return self.commit[:12] + (" (uncommitted changes)" if self.dirty else "")


@dataclass(frozen=True)
class Failure:
    """Why a cell has no result: a Python exception in the cell, or the child process's end."""

    error: str  # one line
    traceback: str = ""
    exit_code: int | None = None
    signal: str | None = None  # "SIGSEGV", "SIGKILL", ...
    timed_out: bool = False
    stderr_tail: str = ""


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    requested: str
    n_train: int | None = None
    n_test: int | None = None
    n_features: int | None = None
    n_classes: int | None = None
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelInfo:
    name: str  # the registered model
    label: str  # what reports call it: a variant's name, else the model's
    settings: dict[str, Any]  # the cell's settings
    config: dict[str, Any] = field(default_factory=dict)  # the full config, defaults filled


@dataclass(frozen=True)
class CellRecord:
    experiment: str
    cell_id: str
    status: str
    profile: str
    machine_id: str
    machine: dict[str, Any]  # the fingerprint of the machine that ran the cell, when it ran
    code: CodeVersion
    dataset: DatasetInfo
    model: ModelInfo
    epochs_planned: int
    created_unix_s: float
    epochs: list[EpochRecord] = field(default_factory=list)
    inference: InferenceRecord | None = None
    idle_power_w: dict[str, float] = field(default_factory=dict)
    model_facts: dict[str, Any] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    failure: Failure | None = None
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise RecordError(f"status must be one of {STATUSES}, got {self.status!r}")
        if self.status == "ok" and (not self.epochs or self.failure is not None):
            raise RecordError("an 'ok' record needs its epochs and no failure")
        if self.status == "failed" and self.failure is None:
            raise RecordError("a 'failed' record needs its failure")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> CellRecord:
        """The record in ``data`` (parsed JSON), checked; ``RecordError`` says what is wrong."""
        if not isinstance(data, dict):
            raise RecordError("not a JSON object")
        version = data.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise RecordError("no schema_version")
        if version > SCHEMA_VERSION:
            raise NewerSchemaError(
                f"written by newer code (schema {version}; this code reads {SCHEMA_VERSION})"
            )
        if version < SCHEMA_VERSION:
            raise OldSchemaError(
                f"schema {version}, older than this code's {SCHEMA_VERSION} (see harness/record.py)"
            )
        return from_plain(cls, data, "record")


# -- checked construction from JSON ---------------------------------------------------------

T = TypeVar("T")


def from_plain(cls: type[T], data: Any, where: str) -> T:
    """``cls`` (a dataclass of this module's kind) from parsed JSON, every field checked
    against its annotation; ``RecordError`` names the first field that is wrong."""
    if not isinstance(data, dict):
        raise RecordError(f"{where} is not an object")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise RecordError(f"{where} lacks {f.name!r}")
            continue
        kwargs[f.name] = _value(hints[f.name], data[f.name], f"{where}.{f.name}")
    try:
        return cls(**kwargs)
    except RecordError as exc:
        raise RecordError(f"{where}: {exc}") from None


def _value(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _value(inner, value, where)
    if dataclasses.is_dataclass(hint):
        return from_plain(hint, value, where)  # type: ignore[arg-type]
    if origin is list:
        if not isinstance(value, list):
            raise RecordError(f"{where} is not a list")
        return [_value(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise RecordError(f"{where} is not an object")
        return {k: _value(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise RecordError(f"{where} is not true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecordError(f"{where} is not a whole number")
        return value
    if hint is float:
        # JSON has one number type: 3 is a float field's 3.0. Null (a non-finite figure at
        # write time) is not allowed where the annotation does not say "| None".
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RecordError(f"{where} is not a number")
        if not math.isfinite(value):
            raise RecordError(f"{where} is not finite")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise RecordError(f"{where} is not a string")
        return value
    raise TypeError(f"record field {where} has an unsupported annotation {hint!r}")
