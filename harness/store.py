"""Result storage: one JSON file per cell under ``<root>/<machine>/<experiment>/``.

Layout (machines merge by copying folders, as in asv)::

    results/
      <machine_id>/
        machine.json                 the machine's fingerprint (rewritten each session)
        <experiment>/<cell_id>.json  one record per cell, schema below

Every write goes to a temporary file in the same folder, is flushed to disk, then renamed
over the target, so a crash or a full disk never leaves a half-written or emptied record.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.errors import StoreError

SCHEMA_VERSION = 1
log = logging.getLogger(__name__)

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    """A string usable as one path component on any filesystem."""
    cleaned = _SAFE.sub("_", text).strip("._")
    return cleaned or "unnamed"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically; on failure the old file is untouched."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise StoreError(
            f"cannot write {path}: {exc.strerror or exc}; choose a writable folder"
        ) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StoreError(
            f"cannot write {path}: {exc.strerror or exc}; "
            "free disk space or choose another output folder"
        ) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    """``data`` as indented JSON, written atomically. NaN and infinity (a diverged loss, say)
    become null, so the record stays valid JSON that any reader can parse."""
    text = json.dumps(_plain(data), indent=1, sort_keys=True, allow_nan=False)
    atomic_write_text(path, text + "\n")


def _plain(obj: Any) -> Any:
    """Plain JSON values: numpy scalars and arrays as numbers and lists, paths as strings,
    non-finite floats as None."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if hasattr(obj, "tolist"):  # numpy scalar or array
        return _plain(obj.tolist())
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


class ResultStore:
    """The result folders of one machine."""

    def __init__(self, root: Path | str, machine_id: str) -> None:
        self.root = Path(root)
        self.machine_id = safe_name(machine_id)
        self.machine_dir = self.root / self.machine_id

    def cell_path(self, experiment: str, cell_id: str) -> Path:
        return self.machine_dir / safe_name(experiment) / f"{safe_name(cell_id)}.json"

    def write_machine(self, fingerprint: dict[str, Any]) -> Path:
        path = self.machine_dir / "machine.json"
        atomic_write_json(path, {"schema_version": SCHEMA_VERSION, **fingerprint})
        return path

    def write_cell(self, record: dict[str, Any]) -> Path:
        path = self.cell_path(record["experiment"], record["cell_id"])
        atomic_write_json(path, {"schema_version": SCHEMA_VERSION, **record})
        return path

    def finished(self, experiment: str, cell_id: str) -> bool:
        """True when the cell has a complete, successful record. A corrupt one does not count
        (it is logged and will be rewritten)."""
        path = self.cell_path(experiment, cell_id)
        if not path.exists():
            return False
        try:
            record = read_json(path)
        except StoreError as exc:
            log.warning("%s", exc)
            return False
        return record.get("status") == "ok" and record.get("schema_version") == SCHEMA_VERSION


def iter_records(root: Path | str) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every cell record under ``root`` (all machines), skipping corrupt files with a warning."""
    for path in sorted(Path(root).glob("*/*/*.json")):
        try:
            yield path, read_json(path)
        except StoreError as exc:
            log.warning("skipping %s", exc)
