"""Result storage: one JSON file per cell under ``<root>/<machine>/<experiment>/``.

Layout (machines merge by copying folders, as in asv)::

    results/
      <machine_id>/
        .lock                        held by the sweep writing this folder (harness.lock)
        <experiment>/<cell_id>.json  one record per cell (harness.record; it carries the
                                     fingerprint of the machine and the code that ran it)

This is the only module that knows the layout: readers go through ``iter_records``.

Every write goes to a temporary file in the same folder, is flushed to disk, then renamed
over the target, so a crash or a full disk never leaves a half-written or emptied record.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.errors import StoreError
from harness.files import atomic_write_text
from harness.lock import folder_lock
from harness.record import CellRecord, NewerSchemaError, OldSchemaError, RecordError

log = logging.getLogger(__name__)

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    """A string usable as one path component on any filesystem."""
    cleaned = _SAFE.sub("_", text).strip("._")
    return cleaned or "unnamed"


def atomic_write_json(path: Path, data: Any) -> None:
    """``data`` as indented JSON, written atomically. NaN and infinity (a diverged loss, say)
    become null, so the record stays valid JSON that any reader can parse."""
    text = json.dumps(to_plain(data), indent=1, sort_keys=True, allow_nan=False)
    atomic_write_text(path, text + "\n")


def to_plain(obj: Any) -> Any:
    """Plain JSON values: numpy scalars and arrays as numbers and lists, paths as strings,
    non-finite floats as None."""
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    if hasattr(obj, "tolist"):  # numpy scalar or array
        return to_plain(obj.tolist())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, str | int | bool):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} in a result record")


def read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise StoreError(f"result file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(
            f"result file {path} is unreadable or corrupt ({exc}); delete it to rerun that cell"
        ) from None
    if not isinstance(data, dict):
        raise StoreError(f"result file {path} does not hold a JSON object; delete it to rerun")
    return data


def read_record(path: Path) -> CellRecord:
    """The record in ``path``, checked. ``StoreError`` (corrupt JSON) or a ``RecordError``
    (``NewerSchemaError``, ``OldSchemaError``, incomplete) whose message names the file."""
    data = read_json(path)
    try:
        return CellRecord.from_dict(data)
    except RecordError as exc:
        raise type(exc)(f"{path}: {exc}") from None


class State(enum.Enum):
    """What a cell's stored record means for a sweep."""

    MISSING = "missing"
    OK = "ok"
    FAILED = "failed"  # rerun
    UNUSABLE = "unusable"  # corrupt, incomplete or an older schema: rerun, overwriting it
    NEWER = "newer"  # written by newer code: never rerun over, never overwritten


class ResultStore:
    """The result folder of one machine."""

    def __init__(self, root: Path | str, machine_id: str) -> None:
        self.root = Path(root)
        self.machine_id = safe_name(machine_id)
        self.machine_dir = self.root / self.machine_id

    def cell_path(self, experiment: str, cell_id: str) -> Path:
        return self.machine_dir / safe_name(experiment) / f"{safe_name(cell_id)}.json"

    def lock(self, wait: bool = True) -> contextlib.AbstractContextManager[None]:
        """Only one sweep writes this folder at a time (see ``harness.lock``)."""
        return folder_lock(self.machine_dir, wait=wait)

    def state(self, experiment: str, cell_id: str) -> tuple[State, CellRecord | None]:
        """The cell's stored state, and its record when it has a usable one."""
        path = self.cell_path(experiment, cell_id)
        if not path.exists():
            return State.MISSING, None
        try:
            record = read_record(path)
        except NewerSchemaError as exc:
            log.warning("%s; left as it is: upgrade this checkout, or move the file away to "
                        "rerun the cell", exc)
            return State.NEWER, None
        except (StoreError, RecordError) as exc:
            log.warning("%s; the cell will be rerun", exc)
            return State.UNUSABLE, None
        return (State.OK if record.status == "ok" else State.FAILED), record

    def write_cell(self, record: CellRecord) -> Path:
        """Store ``record`` atomically. A file written by newer code is never replaced."""
        if safe_name(record.machine_id) != self.machine_id:
            raise ValueError(f"record of {record.machine_id!r} given to {self.machine_id!r}")
        path = self.cell_path(record.experiment, record.cell_id)
        if path.exists():
            try:
                read_record(path)
            except NewerSchemaError as exc:
                raise StoreError(f"{exc}; not overwritten") from None
            except (StoreError, RecordError):
                pass  # a corrupt or older record is what a rerun replaces
        atomic_write_json(path, record.to_dict())
        return path


def machines(root: Path | str) -> list[str]:
    """The machine folders under ``root`` (each one machine's results)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def iter_records(root: Path | str) -> Iterator[tuple[str, Path, CellRecord]]:
    """(machine, path, record) for every usable record under ``root``; every other file is
    skipped with one warning that names it (corrupt, incomplete, older or newer schema)."""
    for machine in machines(root):
        for path in sorted((Path(root) / machine).glob("*/*.json")):
            try:
                yield machine, path, read_record(path)
            except NewerSchemaError as exc:
                log.warning("skipping %s; upgrade this checkout to read it", exc)
            except OldSchemaError as exc:
                log.warning("skipping %s; rerun the sweep to replace it", exc)
            except (StoreError, RecordError) as exc:
                log.warning("skipping %s; delete it to rerun that cell", exc)
