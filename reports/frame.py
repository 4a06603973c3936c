"""Stored result records (any number of machines) as tidy pandas frames.

Reads the folders through ``harness.store`` (which owns the layout); never imports models.

- ``epochs``: one row per (machine, cell, epoch) with times, accuracy, counts and CPU energy.
- ``cells``: one row per successful cell: its last epoch plus totals and inference figures.
- ``machines``: one row per machine folder, from its ``machine.json``.
- ``failed``: the cells whose record says they failed, with their one-line error.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.store import SCHEMA_VERSION, StoreError, iter_records, read_json

log = logging.getLogger(__name__)


@dataclass
class Results:
    epochs: pd.DataFrame
    cells: pd.DataFrame
    machines: pd.DataFrame
    failed: pd.DataFrame


def _current(path: Path, data: dict[str, Any]) -> bool:
    if data.get("schema_version") != SCHEMA_VERSION:
        log.warning("skipping %s: not a schema-%d record", path, SCHEMA_VERSION)
        return False
    return True


# What the frames read from every epoch of a successful record.
_EPOCH_KEYS = (
    "epoch",
    "cpu_s",
    "train_loss",
    "test_accuracy",
    "active_fraction",
    "computed_fraction",
)


def _malformed(rec: dict[str, Any]) -> str:
    """What makes ``rec`` unusable for the frames ("" when nothing does)."""
    for key in ("model", "dataset"):
        part = rec.get(key)
        if not isinstance(part, dict) or not isinstance(part.get("name"), str):
            return f"{key!r} is missing or not an object with a name"
    settings = rec["model"].get("config") or rec["model"].get("settings", {})
    if not isinstance(settings, dict):
        return "the model's config is not an object"
    if not isinstance(rec["dataset"].get("n_train"), int | None):
        return "the dataset's n_train is not a whole number"
    for key in ("experiment", "cell_id"):
        if not isinstance(rec.get(key), str):
            return f"{key!r} is missing or not a string"
    if rec.get("status") != "ok":
        return ""  # a failed cell has no epochs
    epochs = rec.get("epochs")
    if not isinstance(epochs, list) or not all(isinstance(e, dict) for e in epochs):
        return "'epochs' is missing or not a list of objects"
    for ep in epochs:
        missing = [k for k in _EPOCH_KEYS if k not in ep]
        if missing:
            return f"an epoch lacks {missing}"
        mults = ep.get("mults")
        if not isinstance(ep.get("wall_s"), int | float) or not (
            isinstance(mults, dict) and isinstance(mults.get("training"), int | float)
        ):
            return "an epoch's wall_s or mults.training is missing or not a number"
    return ""


def _kind(domain: str, attributable: bool) -> str:
    kind = "gpu" if domain.startswith("gpu") else "cpu"
    return kind if attributable else f"{kind}_idle"


def energy_columns(
    readings: list[dict[str, Any]], prefix: str, splits: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """CPU and GPU energy of a window, by mode: ``cpu_measured_j``, ``cpu_estimated_j``, ...
    Measured and estimated figures go in separate columns and are never added together;
    energy that is not the model's cost (the idle draw of a GPU it did not use) goes to
    ``*_idle_*`` columns. With ``splits`` (gross/idle/net per domain), the net energy of
    domains with a measured idle power goes to ``*_net_j`` columns."""
    out: dict[str, Any] = {}
    idle_domains = set()
    for r in readings:
        if not r.get("attributable", True):
            idle_domains.add(r.get("domain"))
        if r.get("energy_j") is None:
            continue
        kind = _kind(str(r.get("domain", "")), r.get("attributable", True))
        col = f"{prefix}{kind}_{r['mode']}_j"
        out[col] = out.get(col, 0.0) + float(r["energy_j"])
        out.setdefault(f"{prefix}{kind}_{r['mode']}_source", r.get("source"))
    for s in splits or []:
        if s.get("net_j") is None:
            continue
        kind = _kind(str(s.get("domain", "")), s.get("domain") not in idle_domains)
        col = f"{prefix}{kind}_{s['mode']}_net_j"
        out[col] = out.get(col, 0.0) + float(s["net_j"])
    return out


def _cell_facts(rec: dict[str, Any], machine: str) -> dict[str, Any]:
    settings = rec["model"].get("config") or rec["model"].get("settings", {})
    hidden = settings.get("hidden", [])
    return {
        "machine": machine,
        "experiment": rec["experiment"],
        "cell_id": rec["cell_id"],
        "profile": rec.get("profile"),
        "dataset": rec["dataset"]["name"],
        "n_train": rec["dataset"].get("n_train"),
        "n_test": rec["dataset"].get("n_test"),
        "model": rec["model"].get("label") or rec["model"]["name"],
        "fraction": float(settings.get("active_fraction", 1.0)),
        "hidden": "-".join(str(h) for h in hidden),
        "depth": len(hidden),
        "threads": int(settings.get("threads", 1)),
        "batch_size": int(settings.get("batch_size", 1)),
        "seed": int(settings.get("seed", 0)),
    }


def load_results(roots: list[Path] | Path) -> Results:
    roots = [roots] if isinstance(roots, Path | str) else roots
    epoch_rows: list[dict[str, Any]] = []
    cell_rows: list[dict[str, Any]] = []
    failed_rows: list[dict[str, Any]] = []
    machine_rows: list[dict[str, Any]] = []
    for root in map(Path, roots):
        for mfile in sorted(root.glob("*/machine.json")):
            try:
                data = read_json(mfile)
            except StoreError as exc:
                log.warning("skipping %s", exc)
                continue
            machine_rows.append({"machine": mfile.parent.name, **_flat_machine(data)})
        for path, rec in iter_records(root):
            if not _current(path, rec):
                continue
            problem = _malformed(rec)
            if problem:  # one bad record must not cost the report
                log.warning("skipping %s: %s; delete it to rerun that cell", path, problem)
                continue
            machine = path.parent.parent.name
            facts = _cell_facts(rec, machine)
            if rec.get("status") != "ok":
                failed_rows.append({**facts, "error": rec.get("error", "unknown")})
                continue
            n_train = facts["n_train"] or 1
            cum_wall = 0.0
            rows = []
            for ep in rec["epochs"]:
                cum_wall += ep["wall_s"]
                mults = ep["mults"]
                row = {
                    **facts,
                    "epoch": ep["epoch"],
                    "wall_s": ep["wall_s"],
                    "cum_wall_s": cum_wall,
                    "cpu_s": ep["cpu_s"],
                    "examples_per_s": n_train / ep["wall_s"] if ep["wall_s"] > 0 else None,
                    "train_loss": ep["train_loss"],
                    "test_accuracy": ep["test_accuracy"],
                    "active_fraction_measured": ep["active_fraction"],
                    "computed_fraction_measured": ep["computed_fraction"],
                    "mults_training": mults["training"],
                    "mults_per_example": mults["training"] / n_train,
                    # the paper's way of counting: forward pass through hidden layers only
                    "mults_forward_hidden_per_example": _per_example(
                        (ep.get("extra") or {}).get("mults_forward_hidden"), n_train
                    ),
                    # one column per training phase, whatever phases the model counts
                    **{
                        f"mults_{phase}": count
                        for phase, count in mults.items()
                        if phase not in ("training", "inference")
                    },
                    "op_estimate_j": ep.get("op_energy", {}).get("energy_j"),
                    **energy_columns(ep.get("energy", []), "", ep.get("energy_split")),
                }
                rows.append(row)
            if not rows:
                continue
            epoch_rows.extend(rows)
            last = dict(rows[-1])
            inf = rec.get("inference", {})
            # steady state: the epochs after the first (which builds tables, warms caches and
            # starts thread pools), where there are others
            steady = pd.Series([r["wall_s"] for r in rows[1:] or rows])
            last.update(
                epochs=len(rows),
                total_wall_s=cum_wall,
                # over the whole run, so rebuild schedules that change by epoch are amortised
                mults_per_example=sum(r["mults_training"] for r in rows) / (n_train * len(rows)),
                mults_forward_hidden_per_example=_mean_or_nan(
                    [r["mults_forward_hidden_per_example"] for r in rows]
                ),
                epoch_wall_spread_pct=_spread_pct(steady.tolist()),
                epoch_wall_s=float(steady.median()),
                inference_wall_s=inf.get("wall_s"),
                inference_mults_per_example=(
                    inf.get("mults", 0) / max(inf.get("n_examples", 1), 1)
                ),
                **{f"idle_{k}_w": v for k, v in _idle(rec).items()},
            )
            cell_rows.append(last)
    return Results(
        epochs=pd.DataFrame(epoch_rows),
        cells=pd.DataFrame(cell_rows),
        machines=pd.DataFrame(machine_rows),
        failed=pd.DataFrame(failed_rows),
    )


def _per_example(count: Any, n_train: int) -> float:
    """NaN (not None) where a record lacks the count, so the column stays numeric."""
    return float(count) / n_train if isinstance(count, int | float) else math.nan


def _mean_or_nan(values: list[float]) -> float:
    """The mean over epochs; NaN unless every epoch has the figure (older records)."""
    return sum(values) / len(values) if values else math.nan


def _spread_pct(values: list[float]) -> float:
    """(max - min) / median in percent: how repeatable the epochs' times were. The first
    epoch is left out by the caller where there are others (it warms caches)."""
    median = float(pd.Series(values).median())
    return 100.0 * (max(values) - min(values)) / median if median > 0 else float("nan")


def _idle(rec: dict[str, Any]) -> dict[str, float]:
    idle = rec.get("idle_power_w") or {}
    return {str(k): float(v) for k, v in idle.items() if isinstance(v, int | float)}


def _flat_machine(data: dict[str, Any]) -> dict[str, Any]:
    """The fingerprint's scalar facts, nested keys joined with dots."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, str | int | float | bool) or value is None:
            out[prefix] = value
        else:
            out[prefix] = json.dumps(value)[:200]

    walk("", {k: v for k, v in data.items() if k != "schema_version"})
    return out
