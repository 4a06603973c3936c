"""Stored result records (any number of machines) as tidy pandas frames.

Reads the folders through ``harness.store`` (which owns the layout and skips, with a warning
each, files that are corrupt, incomplete or of another schema); never imports models.

- ``epochs``: one row per (machine, cell, epoch) with times, accuracy and counts.
- ``cells``: one row per successful cell: its last epoch plus totals and inference figures.
- ``energy``: long-form, one row per (cell, window, domain): meter, mode, gross/idle/net J.
  ``epoch_energy`` and ``last_epoch_energy`` sum a device's domains per mode for figures.
- ``machines``: one row per machine, from the fingerprint in its newest record.
- ``code``: how many cells each commit produced, per machine and experiment.
- ``failed``: the cells whose record says they failed, with their one-line error.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.record import CellRecord, EnergyRow
from harness.store import iter_records

log = logging.getLogger(__name__)

# What identifies a cell across machines and experiments (a cell id is unique per experiment).
CELL_KEY = ["machine", "experiment", "cell_id"]
# The facts of a cell that every frame repeats, so any row can be grouped without a join.
FACTS = ["machine", "experiment", "cell_id", "profile", "dataset", "n_train", "n_test", "model",
         "fraction", "hidden", "depth", "threads", "batch_size", "seed", "device"]


# Which meter's reading counts where two measured the same hardware in one window.
METER_PREFERENCE = ["rapl", "nvml", "pyrapl", "cpu-estimate"]


@dataclass
class Results:
    epochs: pd.DataFrame
    cells: pd.DataFrame
    energy: pd.DataFrame  # long-form: one row per (cell, window, energy domain)
    machines: pd.DataFrame
    code: pd.DataFrame  # which commit produced how many cells, per machine and experiment
    failed: pd.DataFrame


def _cell_facts(rec: CellRecord, machine: str) -> dict[str, Any]:
    settings = rec.model.config or rec.model.settings
    hidden = settings.get("hidden", [])
    return {
        "machine": machine,
        "experiment": rec.experiment,
        "cell_id": rec.cell_id,
        "profile": rec.profile,
        "dataset": rec.dataset.name,
        "n_train": rec.dataset.n_train,
        "n_test": rec.dataset.n_test,
        "model": rec.model.label or rec.model.name,
        "fraction": float(settings.get("active_fraction", 1.0)),
        "hidden": "-".join(str(h) for h in hidden),
        "depth": len(hidden),
        "threads": int(settings.get("threads", 1)),
        "batch_size": int(settings.get("batch_size", 1)),
        "seed": int(settings.get("seed", 0)),
        "device": str(settings.get("device", "cpu")),
    }


def _energy_rows(
    facts: dict[str, Any], window: str, epoch: int, wall_s: float, rows: list[EnergyRow]
) -> list[dict[str, Any]]:
    return [
        {**facts, "window": window, "epoch": epoch, "wall_s": wall_s, **r.__dict__}
        for r in rows
    ]


def load_results(roots: list[Path] | Path) -> Results:
    roots = [roots] if isinstance(roots, Path | str) else roots
    epoch_rows: list[dict[str, Any]] = []
    cell_rows: list[dict[str, Any]] = []
    energy_rows: list[dict[str, Any]] = []
    failed_rows: list[dict[str, Any]] = []
    newest: dict[str, tuple[float, dict[str, Any]]] = {}  # machine -> its newest fingerprint
    code_rows: list[dict[str, Any]] = []
    for root in map(Path, roots):
        for machine, _, rec in iter_records(root):
            facts = _cell_facts(rec, machine)
            if machine not in newest or rec.created_unix_s > newest[machine][0]:
                newest[machine] = (rec.created_unix_s, rec.machine)
            code_rows.append({"machine": machine, "experiment": rec.experiment,
                              "code": rec.code.label, "commit": rec.code.commit,
                              "dirty": rec.code.dirty, "status": rec.status})
            if rec.status != "ok":
                assert rec.failure is not None
                failed_rows.append({**facts, "error": rec.failure.error})
                continue
            n_train = facts["n_train"] or 1
            cum_wall = 0.0
            rows = []
            for ep in rec.epochs:
                cum_wall += ep.wall_s
                mults = ep.mults
                rows.append({
                    **facts,
                    "epoch": ep.epoch,
                    "wall_s": ep.wall_s,
                    "cum_wall_s": cum_wall,
                    "cpu_s": ep.cpu_s,
                    "examples_per_s": n_train / ep.wall_s if ep.wall_s > 0 else None,
                    "train_loss": ep.train_loss,
                    "test_accuracy": ep.test_accuracy,
                    "active_fraction_measured": ep.active_fraction,
                    "computed_fraction_measured": ep.computed_fraction,
                    "mults_training": mults["training"],
                    "mults_per_example": mults["training"] / n_train,
                    # the paper's way of counting: forward pass through hidden layers only
                    "mults_forward_hidden_per_example": _per_example(
                        ep.extra.get("mults_forward_hidden"), n_train
                    ),
                    # one column per training phase, whatever phases the model counts
                    **{
                        f"mults_{phase}": count
                        for phase, count in mults.items()
                        if phase not in ("training", "inference")
                    },
                    "op_estimate_j": ep.op_energy_j,
                })
                energy_rows += _energy_rows(facts, "train", ep.epoch, ep.wall_s, ep.energy)
            epoch_rows.extend(rows)
            last = dict(rows[-1])
            inf = rec.inference
            if inf is not None:
                energy_rows += _energy_rows(facts, "inference", 0, inf.wall_s, inf.energy)
            # steady state: the epochs after the first (which builds tables, warms caches and
            # starts thread pools), where there are others
            steady = pd.Series([r["wall_s"] for r in rows[1:] or rows])
            recall = rec.diagnostics.get("retrieval_recall")
            last.update(
                epochs=len(rows),
                total_wall_s=cum_wall,
                # training throughput over the whole run (the epochs row has each epoch's)
                examples_per_s=n_train * len(rows) / cum_wall if cum_wall > 0 else math.nan,
                # over the whole run, so rebuild schedules that change by epoch are amortised
                mults_per_example=sum(r["mults_training"] for r in rows) / (n_train * len(rows)),
                mults_forward_hidden_per_example=_mean_or_nan(
                    [r["mults_forward_hidden_per_example"] for r in rows]
                ),
                epoch_wall_spread_pct=_spread_pct(steady.tolist()),
                epoch_wall_s=float(steady.median()),
                inference_wall_s=inf.wall_s if inf else math.nan,
                inference_mults_per_example=inf.mults / max(inf.n_examples, 1) if inf else math.nan,
                # mean over hidden layers of the hashed active set's recall of the exact top-k
                recall=_mean_or_nan([float(v) for v in recall]) if isinstance(recall, list)
                and recall else math.nan,
                code=rec.code.label,
                **{f"idle_{k}_w": v for k, v in rec.idle_power_w.items()},
            )
            cell_rows.append(last)
    machines = pd.json_normalize(
        [{"machine": m, **{k: v for k, v in fp.items() if k != "machine_id"}}
         for m, (_, fp) in sorted(newest.items())],
        sep=".",
    ) if newest else pd.DataFrame()
    code = pd.DataFrame(code_rows)
    if not code.empty:
        code = (code.assign(cells=1).groupby(["machine", "experiment", "code"], as_index=False,
                                             dropna=False)["cells"].sum())
    return Results(
        epochs=pd.DataFrame(epoch_rows),
        cells=pd.DataFrame(cell_rows),
        energy=pd.DataFrame(energy_rows),
        machines=machines,
        code=code,
        failed=pd.DataFrame(failed_rows),
    )


def epoch_energy(res: Results, device: str = "cpu", net: bool = False) -> pd.DataFrame:
    """The model's energy per (cell, training epoch, mode) on ``device``: the sum of its
    attributable domains (packages and DRAM, say), gross, or net of idle where every domain
    had an idle power. Measured and estimated stay in separate rows, never summed.
    Columns: machine, experiment, cell_id, epoch, mode, source, energy_j."""
    cols = [*CELL_KEY, "epoch", "mode", "source", "energy_j"]
    e = res.energy
    if e.empty:
        return pd.DataFrame(columns=cols)
    e = e[(e["window"] == "train") & (e["device"] == device) & e["attributable"]
          & (e["mode"] != "unavailable")]
    quantity = "net_j" if net else "gross_j"
    if net:
        e = e[e["net_j"].notna()]
    # Two backends reading the same hardware (pyrapl beside rapl, to cross-check) are never
    # added: per cell, epoch and mode only the preferred meter's domains count.
    rank = e["meter"].map(lambda m: METER_PREFERENCE.index(m) if m in METER_PREFERENCE
                          else len(METER_PREFERENCE))
    best = rank.groupby([e[k] for k in [*CELL_KEY, "epoch", "mode"]]).transform("min")
    e = e[rank == best]
    out = (e.groupby([*CELL_KEY, "epoch", "mode"], as_index=False)
           .agg(source=("source", "first"), energy_j=(quantity, "sum")))
    return out[cols]


def last_epoch_energy(res: Results, device: str = "cpu", net: bool = False) -> pd.DataFrame:
    """``epoch_energy`` of each cell's last epoch, with the cell's facts."""
    e = epoch_energy(res, device, net)
    if e.empty or res.cells.empty:
        return e.iloc[0:0]
    facts = res.cells[[*FACTS, "epochs"]]
    return e.merge(facts, on=CELL_KEY).query("epoch == epochs")


def energy_modes(res: Results, device: str = "cpu") -> set[str]:
    """The modes (measured, estimated) of the model's energy readings on ``device``."""
    e = res.energy
    if e.empty:
        return set()
    e = e[(e["device"] == device) & e["attributable"] & (e["mode"] != "unavailable")]
    return set(e["mode"])


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
