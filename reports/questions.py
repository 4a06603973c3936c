"""Figures and tables for the questions beyond the paper (``harness.experiments.QUESTIONS``).

- ``width_scaling``: time and multiplications per training example against hidden width, with
  the width where LSH overtakes each dense peer (``crossover``).
- ``time_to_accuracy``: test accuracy against cumulative training time and energy; the time and
  energy each setting needs to reach a target accuracy (``time_to_target``).
- ``hash_quality``: LSH's accuracy, cost and (where recorded) retrieval recall against its hash
  settings.
- Hardware comparison: seconds and joules per example and to the target, per machine and
  device, and a time-against-energy scatter with its Pareto front (``pareto_front``).

Energy is read in one function, ``_energy_per_epoch``; nothing else here knows how the frame
stores it. Points are means over seeds with 95% t-intervals (``reports.stats``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from harness import catalogue  # noqa: E402
from reports.frame import Results, epoch_energy  # noqa: E402
from reports.stats import Interval, positive_mean_ci, ratio_ci  # noqa: E402
from reports.tables import TARGET_GAP, first_reaching  # noqa: E402

if TYPE_CHECKING:
    from reports.figures import Figure

LSH = "lsh"
_TAGS = re.compile(
    r"_b(?P<batch_size>\d+)(?:_d(?P<device>[a-z]+\d*))?"
    r"(?:_(?P<selection>[a-z]+)_K(?P<K>\d+)_L(?P<L>\d+)_p(?P<pool_input>\d+)x(?P<pool_hidden>\d+))?"
    r"_[0-9a-f]{8}$"
)
_MARKERS = ("o", "s", "^", "D", "v", "P")
_LINES = ("-", "--", ":", "-.")


def _figures() -> ModuleType:
    """``reports.figures``, imported when first drawn: it imports this module to list these
    figures beside the paper's, so a module-level import here would be circular."""
    from reports import figures

    return figures


def _seed_stats(df: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
    return _figures()._seed_stats(df, keys, value)  # type: ignore[no-any-return]


def _spread_note(stats: pd.DataFrame) -> str:
    return _figures()._spread_note(stats)  # type: ignore[no-any-return]


# -- reading the frame ---------------------------------------------------------------------


def _energy_per_epoch(res: Results) -> pd.DataFrame:
    """The one reader of energy: one row per (machine, cell_id, epoch, device, mode) with the
    gross joules of the training window the model is charged for (``energy_j``) and per
    training example (``j_per_example``), from the frame's long-form energy table; energy
    that is not the model's (the idle draw of a GPU it did not use) is left out."""
    cols = ["machine", "cell_id", "epoch", "device", "mode", "energy_j", "j_per_example"]
    if res.epochs.empty:
        return pd.DataFrame(columns=cols)
    parts = [epoch_energy(res, d).assign(device=d.upper()) for d in ("cpu", "gpu")]
    out = pd.concat(parts, ignore_index=True)
    n = res.epochs[["machine", "cell_id", "epoch", "n_train"]]
    out = out.merge(n, on=["machine", "cell_id", "epoch"], how="inner")
    if out.empty:
        return pd.DataFrame(columns=cols)
    out["j_per_example"] = out["energy_j"] / out["n_train"]
    return out[cols]


def _cell_energy(res: Results, cells: pd.DataFrame) -> pd.DataFrame:
    """Per (machine, cell_id, epoch) of ``cells``: the energy of every device the cell used,
    each by its meter where it has one, else its estimate; ``basis`` says what the sum is:
    ``measured`` or ``estimated`` when every device's figure is of that mode, ``mixed``
    otherwise (drawn apart, never on an axis with either); ``detail`` names the parts."""
    cols = ["machine", "cell_id", "epoch", "energy_j", "basis", "detail"]
    long = _energy_per_epoch(res)
    if long.empty or cells.empty:
        return pd.DataFrame(columns=cols)
    long = long.merge(cells[["machine", "cell_id"]].drop_duplicates(), how="inner")
    long = long.assign(_rank=(long["mode"] != "measured").astype(int))
    best = long.sort_values("_rank").groupby(["machine", "cell_id", "epoch", "device"]).head(1)
    rows = []
    for (machine, cell_id, epoch), g in best.groupby(["machine", "cell_id", "epoch"]):
        modes = set(g["mode"])
        g = g.sort_values("device")
        rows.append(
            {
                "machine": machine,
                "cell_id": cell_id,
                "epoch": epoch,
                "energy_j": float(g["energy_j"].sum()),
                "basis": modes.pop() if len(modes) == 1 else "mixed",
                "detail": " + ".join(
                    f"{d} {m}" for d, m in zip(g["device"], g["mode"], strict=True)
                ),
            }
        )
    return pd.DataFrame(rows, columns=cols)


def parse_tags(cell_ids: pd.Series) -> pd.DataFrame:
    """Batch size, device and hash settings from the ids ``harness.experiments`` gives the
    questions' cells (the frame has no config columns for them); NaN where an id has none."""
    found = cell_ids.astype(str).str.extract(_TAGS)
    for col in ("batch_size", "K", "L", "pool_input", "pool_hidden"):
        found[col] = pd.to_numeric(found[col])
    return found


def _cells(res: Results, experiment: str) -> pd.DataFrame:
    """The experiment's cells with their device, hash settings and a setting name."""
    c = res.cells
    if c.empty:
        return c
    c = c[c["experiment"] == experiment].copy()
    if c.empty:
        return c
    tags = parse_tags(c["cell_id"])
    for col in ("device", "selection", "K", "L", "pool_input", "pool_hidden"):
        if col not in c:  # a column the frame gains later wins over the id's tag
            c[col] = tags[col].to_numpy()
    c["device"] = c["device"].fillna("cpu")
    c["width"] = [int(h.split("-")[0]) if h else 0 for h in c["hidden"]]
    c["examples"] = c["n_train"] * c["epochs"]
    c["s_per_example"] = c["total_wall_s"] / c["examples"]
    c["setting"] = [_setting(m, b, f, d) for m, b, f, d in
                    zip(c["model"], c["batch_size"], c["fraction"], c["device"], strict=True)]
    return c


def _setting(model: str, batch: int, fraction: float, device: str) -> str:
    """A readable name for one model at one setting."""
    if model == "dense":
        return "standard (dense), batch 1" if batch == 1 else f"standard, mini-batch {batch}"
    label = catalogue.style(model).label
    if catalogue.style(model).sparse:
        return f"{label}, {100 * fraction:g}% active"
    return f"{label}, batch {batch}" + ("" if device == "cpu" else f", {device.upper()}")


def _style(model: str, batch: int, device: str) -> dict[str, str]:
    """The catalogue's colour; the standard network in mini-batches takes dense-minibatch's."""
    name = "dense-minibatch" if model == "dense" and batch > 1 else model
    return {"color": catalogue.style(name).colour}


def _decorate(settings: pd.DataFrame) -> dict[str, dict[str, str]]:
    """Colour, marker and line style per setting: settings of one model differ in marker and
    line; a GPU is drawn with filled squares."""
    out: dict[str, dict[str, str]] = {}
    rank: dict[str, int] = {}
    order = settings.drop_duplicates("setting").copy()
    order["_o"] = order["model"].map(lambda m: catalogue.style(m).order)
    for r in order.sort_values(["_o", "batch_size", "fraction", "device"]).itertuples():
        i = rank.get(r.model, 0)
        rank[r.model] = i + 1
        style = _style(r.model, int(r.batch_size), r.device)
        style["marker"] = "s" if r.device != "cpu" else _MARKERS[i % len(_MARKERS)]
        style["ls"] = _LINES[i % len(_LINES)]
        out[r.setting] = style
    return out


def _log_axes(ax, x: bool = True, y: bool = True) -> None:  # type: ignore[no-untyped-def]
    """Log scales. Matplotlib's own minor-tick labels stay: they appear only where an axis
    spans less than a decade, which would otherwise have no number on it at all."""
    for on, scale in ((x, ax.set_xscale), (y, ax.set_yscale)):
        if on:
            scale("log")


def _ordered_settings(df: pd.DataFrame) -> list[str]:
    o = df.drop_duplicates("setting").copy()
    o["_o"] = o["model"].map(lambda m: catalogue.style(m).order)
    return o.sort_values(["_o", "batch_size", "fraction", "device"])["setting"].tolist()


# -- width scaling -------------------------------------------------------------------------


@dataclass(frozen=True)
class Crossover:
    """Where LSH's figure drops below a peer's as width grows (ratio LSH / peer < 1)."""

    kind: str  # "every" | "never" | "at" | "not lasting"
    width: float  # the interpolated crossover width ("at"), else NaN

    def text(self, peer: str, what: str) -> str:
        if self.kind == "every":
            return f"LSH needs less {what} than {peer} at every width measured"
        if self.kind == "never":
            return f"LSH never needs less {what} than {peer} in the widths measured"
        if self.kind == "at":
            return f"LSH needs less {what} than {peer} from a width of about {self.width:,.0f}"
        return (
            f"LSH needs less {what} than {peer} at some widths but not at the largest measured"
        )


def crossover(widths: list[float], ratios: list[float]) -> Crossover:
    """The width from which LSH stays below the peer (ratio < 1), interpolated on log axes
    between the last width where it was not and the first where it is; widths ascending."""
    pairs = [(w, r) for w, r in sorted(zip(widths, ratios, strict=True)) if math.isfinite(r)]
    if not pairs:
        return Crossover("never", math.nan)
    below = [r < 1 for _, r in pairs]
    if all(below):
        return Crossover("every", math.nan)
    if not below[-1]:
        return Crossover("not lasting" if any(below) else "never", math.nan)
    i = max(k for k, b in enumerate(below) if not b)  # the last width where LSH was not below
    (w1, r1), (w2, r2) = pairs[i], pairs[i + 1]
    if r1 == 1:
        return Crossover("at", float(w1))
    t = math.log(r1) / (math.log(r1) - math.log(r2))
    return Crossover("at", float(math.exp(math.log(w1) + t * (math.log(w2) - math.log(w1)))))


def _width_crossovers(c: pd.DataFrame) -> pd.DataFrame:
    """Per machine, peer and metric: the ratio of LSH's mean to the peer's at each width, its
    interval over seeds, and the crossover."""
    rows = []
    for machine, m in c.groupby("machine"):
        lsh = m[m["model"] == LSH]
        if lsh.empty:
            continue
        for peer, p in m[m["model"] != LSH].groupby("setting"):
            for metric, what in (("s_per_example", "time"), ("mults_per_example", "work")):
                widths, ratios, cis = [], [], []
                for w in sorted(set(p["width"]) & set(lsh["width"])):
                    ci = ratio_ci(
                        lsh.loc[lsh["width"] == w, metric].tolist(),
                        p.loc[p["width"] == w, metric].tolist(),
                    )
                    widths.append(w)
                    ratios.append(ci.estimate)
                    cis.append(ci)
                cross = crossover(widths, ratios)
                for w, ci in zip(widths, cis, strict=True):
                    rows.append(
                        {
                            "machine": machine,
                            "peer": peer,
                            "metric": metric,
                            "width": w,
                            "lsh_over_peer": ci.estimate,
                            "ci_low": ci.low,
                            "ci_high": ci.high,
                            "verdict": _below_verdict(ci),
                            "crossover": cross.kind,
                            "crossover_width": cross.width,
                            "note": cross.text(peer, what),
                        }
                    )
    return pd.DataFrame(rows)


def _below_verdict(ci: Interval) -> str:
    if not ci.defined:
        return "lower (one seed)" if ci.estimate < 1 else "not lower (one seed)"
    if ci.high < 1:
        return "lower"
    if ci.low >= 1:
        return "not lower"
    return "inconclusive"


def width_scaling(res: Results) -> Figure | None:
    """Seconds and multiplications per training example against hidden width, log-log."""
    c = _cells(res, "width_scaling")
    if c.empty:
        return None
    keys = ["machine", "setting", "model", "batch_size", "fraction", "device", "width"]
    t = _seed_stats(c, keys, "s_per_example")
    m = _seed_stats(c, keys, "mults_per_example").drop(columns="n_runs")
    stats = t.merge(m, on=keys)
    cross = _width_crossovers(c)
    deco = _decorate(stats)
    machines = sorted(stats["machine"].unique())
    fig, axes = plt.subplots(
        len(machines), 2, figsize=(10, 3.8 * len(machines)), squeeze=False, layout="constrained"
    )
    for row, machine in zip(axes, machines, strict=True):
        sub = stats[stats["machine"] == machine]
        for setting in _ordered_settings(sub):
            s = sub[sub["setting"] == setting].sort_values("width")
            for ax, value in zip(row, ("s_per_example", "mults_per_example"), strict=True):
                y = s[value].to_numpy()
                err = np.vstack(
                    [y - s[f"{value}_ci_low"].to_numpy(), s[f"{value}_ci_high"].to_numpy() - y]
                )
                ax.errorbar(s["width"], y, yerr=err, capsize=3, label=setting, **deco[setting])
        here = cross[cross["machine"] == machine] if not cross.empty else cross
        for ax, metric in zip(row, ("s_per_example", "mults_per_example"), strict=True):
            marks = here[(here["metric"] == metric) & (here["crossover"] == "at")] if len(
                here
            ) else here
            for r in marks.drop_duplicates("peer").itertuples():
                ax.axvline(r.crossover_width, color=deco[r.peer]["color"], ls=":", lw=1.2)
                ax.annotate(
                    f"{r.crossover_width:,.0f}",
                    (r.crossover_width, 0.02),
                    xycoords=("data", "axes fraction"),
                    fontsize=7,
                    color=deco[r.peer]["color"],
                    rotation=90,
                )
            _log_axes(ax)
            ax.set_xlabel("hidden layer width (nodes, 2 hidden layers)")
            ax.grid(alpha=0.3, which="both")
        row[0].set_ylabel("wall time per training example (s)")
        row[1].set_ylabel("multiplications per training example")
        row[0].set_title(f"{machine}: time", fontsize=9)
        row[1].set_title(f"{machine}: multiplications", fontsize=9)
        row[0].legend(fontsize=7)
    notes = (
        "; ".join(sorted(set(cross["note"]))) + "." if not cross.empty else "No LSH cells."
    )
    return _figures().Figure(
        "width_scaling",
        "Time and multiplications per example against hidden width",
        "Two hidden layers of each width; LSH keeps 5% of each layer's nodes. Time is the whole "
        "run's wall time (every epoch, including LSH's table builds and rebuilds) over its "
        "training examples; the big widths train on few examples for throughput, not accuracy. "
        "Dotted vertical lines mark the width where LSH's mean overtakes a peer's (interpolated "
        f"on log axes). {notes} Per-width ratios, their intervals and verdicts are in "
        "width_scaling_crossover.csv. " + _spread_note(stats),
        fig,
        stats,
        section="questions",
        extra={"width_scaling_crossover": cross},
    )


# -- time to accuracy ----------------------------------------------------------------------


def _epochs(res: Results, experiment: str) -> pd.DataFrame:
    e = res.epochs
    if e.empty:
        return e
    e = e[e["experiment"] == experiment]
    if e.empty:
        return e
    cols = ["setting", "device"] if "device" not in e else ["setting"]
    cells = _cells(res, experiment)[["machine", "cell_id", *cols]]
    return e.merge(cells, on=["machine", "cell_id"], how="inner")


def _targets(res: Results) -> pd.DataFrame:
    """Per (dataset, hidden): the best of the dense networks' (every batch size, every
    device, every machine) mean final test accuracy over seeds, less ``TARGET_GAP``."""
    c = _cells(res, "time_to_accuracy")
    if c.empty:
        return pd.DataFrame(columns=["dataset", "hidden", "best_dense", "target_accuracy"])
    refs = c[c["model"].map(lambda m: catalogue.style(m).reference)]
    means = refs.groupby(["dataset", "hidden", "machine", "setting"])["test_accuracy"].mean()
    best = means.groupby(["dataset", "hidden"]).max().rename("best_dense").reset_index()
    best["target_accuracy"] = best["best_dense"] - TARGET_GAP
    return best


def reached_per_cell(res: Results) -> pd.DataFrame:
    """Per cell: the target, the epoch and cumulative time at which it was first reached
    (NaN if never), the whole run's time, and the energy spent by then with its basis."""
    e = _epochs(res, "time_to_accuracy")
    targets = _targets(res)
    if e.empty or targets.empty:
        return pd.DataFrame()
    e = e.merge(targets, on=["dataset", "hidden"], how="inner")
    hit = first_reaching(e, "target_accuracy")[
        ["machine", "cell_id", "epochs_to_target", "time_to_target_s"]
    ]
    energy = _cell_energy(res, e)
    cells = e.groupby(["machine", "cell_id"], as_index=False).agg(
        dataset=("dataset", "first"),
        hidden=("hidden", "first"),
        model=("model", "first"),
        setting=("setting", "first"),
        device=("device", "first"),
        seed=("seed", "first"),
        target_accuracy=("target_accuracy", "first"),
        time_total_s=("cum_wall_s", "max"),
        epochs_run=("epoch", "max"),
    )
    cells = cells.merge(hit, on=["machine", "cell_id"], how="left")
    if not energy.empty:
        tot = energy.groupby(["machine", "cell_id"], as_index=False).agg(
            energy_total_j=("energy_j", "sum"),
            energy_basis=("basis", "first"),
            energy_detail=("detail", "first"),
        )
        merged = energy.merge(cells[["machine", "cell_id", "epochs_to_target"]], how="inner")
        upto = merged[merged["epoch"] <= merged["epochs_to_target"]]
        to = upto.groupby(["machine", "cell_id"], as_index=False)["energy_j"].sum()
        cells = cells.merge(tot, how="left").merge(
            to.rename(columns={"energy_j": "energy_to_target_j"}), how="left"
        )
    else:
        cells = cells.assign(
            energy_total_j=math.nan, energy_basis="", energy_detail="",
            energy_to_target_j=math.nan,
        )
    return cells


def _first(values: pd.Series) -> str:
    """The first non-empty value, or "" (energy's basis where a cell has readings)."""
    found = values.dropna()
    found = found[found.astype(str) != ""]
    return str(found.iloc[0]) if len(found) else ""


def time_to_target(res: Results) -> pd.DataFrame:
    """Per (machine, dataset, hidden, setting): the target, how many seeds reached it, the
    mean time (and energy, with its basis) to reach it over those seeds with 95% intervals."""
    r = reached_per_cell(res)
    if r.empty:
        return pd.DataFrame()
    rows = []
    for key, g in r.groupby(["machine", "dataset", "hidden", "setting"]):
        hit = g[g["epochs_to_target"].notna()]
        t = positive_mean_ci(hit["time_to_target_s"].tolist())
        j = positive_mean_ci(hit["energy_to_target_j"].dropna().tolist())
        rows.append(
            {
                **dict(zip(["machine", "dataset", "hidden", "setting"], key, strict=True)),
                "model": g["model"].iloc[0],
                "device": g["device"].iloc[0],
                "target_accuracy": g["target_accuracy"].iloc[0],
                "seeds": len(g),
                "seeds_reached": len(hit),
                "epochs_to_target": hit["epochs_to_target"].mean() if len(hit) else math.nan,
                "time_to_target_s": t.estimate,
                "time_ci_low": t.low,
                "time_ci_high": t.high,
                "energy_to_target_j": j.estimate,
                "energy_ci_low": j.low,
                "energy_ci_high": j.high,
                "energy_basis": _first(g["energy_basis"]),
                "energy_detail": _first(g["energy_detail"]),
                "max_time_s": g["time_total_s"].max(),
            }
        )
    return pd.DataFrame(rows)


def time_to_accuracy(res: Results) -> Figure | None:
    """Test accuracy against cumulative training time, and against energy (one panel per
    energy basis), with the target accuracy drawn."""
    e = _epochs(res, "time_to_accuracy")
    if e.empty:
        return None
    energy = _cell_energy(res, e)
    if not energy.empty:
        energy = energy.sort_values("epoch")
        energy["cum_energy_j"] = energy.groupby(["machine", "cell_id"])["energy_j"].cumsum()
        e = e.merge(energy[["machine", "cell_id", "epoch", "cum_energy_j", "basis", "detail"]],
                    how="left")
    else:
        e = e.assign(cum_energy_j=math.nan, basis=None, detail=None)
    keys = ["machine", "dataset", "hidden", "setting", "model", "batch_size", "fraction", "device",
            "epoch"]
    acc = _seed_stats(e, keys, "test_accuracy")
    time = _seed_stats(e, keys, "cum_wall_s").drop(columns="n_runs")
    stats = acc.merge(time, on=keys)
    bases = sorted(e["basis"].dropna().unique())
    en_stats = []
    for basis in bases:
        sub = e[e["basis"] == basis]
        s = _seed_stats(sub, keys, "cum_energy_j").drop(columns="n_runs")
        en_stats.append(s.assign(basis=basis, detail=", ".join(sorted(sub["detail"].unique()))))
    energy_stats = pd.concat(en_stats, ignore_index=True) if en_stats else pd.DataFrame()
    groups = stats[["machine", "dataset", "hidden"]].drop_duplicates().values.tolist()
    targets = _targets(res)
    deco = _decorate(stats)
    fig, axes = plt.subplots(
        len(groups), 1 + len(bases), figsize=(4.6 * (1 + len(bases)), 3.8 * len(groups)),
        squeeze=False, layout="constrained",
    )
    for row, (machine, dataset, hidden) in zip(axes, groups, strict=True):
        where = (stats["machine"] == machine) & (stats["dataset"] == dataset) & (
            stats["hidden"] == hidden)
        sub = stats[where]
        for setting in _ordered_settings(sub):
            s = sub[sub["setting"] == setting].sort_values("epoch")
            y = s["test_accuracy"].to_numpy()
            err = np.vstack([y - s["test_accuracy_ci_low"], s["test_accuracy_ci_high"] - y])
            row[0].errorbar(s["cum_wall_s"], y, yerr=err, capsize=2, label=setting,
                            **deco[setting])
        row[0].set_xlabel("cumulative training wall time (s)")
        row[0].set_title(f"{machine}: {dataset}, hidden {hidden}", fontsize=9)
        for ax, basis in zip(row[1:], bases, strict=True):
            es = energy_stats[(energy_stats["basis"] == basis)
                              & (energy_stats["machine"] == machine)
                              & (energy_stats["dataset"] == dataset)
                              & (energy_stats["hidden"] == hidden)]
            es = es.merge(sub[[*keys, "test_accuracy", "test_accuracy_ci_low",
                               "test_accuracy_ci_high"]], on=keys)
            for setting in _ordered_settings(es) if not es.empty else []:
                s = es[es["setting"] == setting].sort_values("epoch")
                y = s["test_accuracy"].to_numpy()
                err = np.vstack([y - s["test_accuracy_ci_low"], s["test_accuracy_ci_high"] - y])
                ax.errorbar(s["cum_energy_j"], y, yerr=err, capsize=2, label=setting,
                            **deco[setting])
            detail = ", ".join(sorted(es["detail"].unique())) if not es.empty else basis
            ax.set_xlabel(f"cumulative training energy (J, {basis}: {detail})", fontsize=8)
            ax.set_title(f"energy {basis}", fontsize=9)
        tgt = targets[(targets["dataset"] == dataset) & (targets["hidden"] == hidden)]
        for ax in row:
            if not tgt.empty:
                ax.axhline(tgt["target_accuracy"].iloc[0], color="#999999", ls="--", lw=1,
                           label="target (best dense - 1 point)")
            _log_axes(ax, y=False)
            ax.set_ylabel("test accuracy (fraction correct)")
            ax.grid(alpha=0.3, which="both")
        row[0].legend(fontsize=7)
    data = stats.merge(energy_stats, on=keys, how="left") if not energy_stats.empty else stats
    seeds = f"{int(stats['n_runs'].min())}-{int(stats['n_runs'].max())}"
    return _figures().Figure(
        "time_to_accuracy",
        "Accuracy against training time and energy",
        "Test accuracy after each epoch against the training wall time (and energy) spent so "
        "far, for the standard network at several batch sizes, PyTorch's dense network and LSH "
        "at several active fractions. The dashed grey line is the target: the best dense "
        "setting's mean final accuracy less 1 point. Energy panels are one per basis: "
        "'measured' (every device read from a meter), 'estimated' (every device estimated) or "
        "'mixed' (labelled with its parts); they are never drawn on one axis. Energy is gross "
        f"(idle draw not subtracted). Seeds per point: {seeds}. " + _spread_note(stats),
        fig,
        data,
        section="questions",
    )


# -- hash quality --------------------------------------------------------------------------


def hash_quality(res: Results) -> Figure | None:
    """LSH's accuracy, multiplications and time per example (and retrieval recall where the
    records have it) against tables L, per bits K, selection rule and pooling."""
    c = _cells(res, "hash_quality")
    if not c.empty:  # ids without hash tags (another version's) cannot be placed
        c = c[c["K"].notna() & c["L"].notna() & c["selection"].notna()]
    if c.empty:
        return None
    c = c.assign(pooling=[f"pooled {int(a)}/{int(b)}" if a > 1 or b > 1 else "not pooled"
                          for a, b in zip(c["pool_input"], c["pool_hidden"], strict=True)])
    metrics = [
        ("test_accuracy", "test accuracy (fraction correct)"),
        ("mults_per_example", "multiplications per training example"),
        ("s_per_example", "wall time per training example (s)"),
    ]
    has_recall = "recall" in c and c["recall"].notna().any()
    if has_recall:
        metrics.append(("recall", "retrieval recall vs exact top-k"))
    keys = ["machine", "dataset", "hidden", "selection", "K", "L", "pooling"]
    stats = None
    for value, _ in metrics:
        s = _seed_stats(c, keys, value)
        stats = s if stats is None else stats.merge(s.drop(columns="n_runs"), on=keys)
    assert stats is not None
    panels = stats[["machine", "dataset", "hidden", "selection"]].drop_duplicates()
    panels = panels.values.tolist()
    fig, axes = plt.subplots(
        len(panels), len(metrics), figsize=(4.0 * len(metrics), 3.5 * len(panels)),
        squeeze=False, layout="constrained",
    )
    colour = catalogue.style(LSH).colour
    ks = sorted(stats["K"].unique())
    pools = sorted(stats["pooling"].unique())
    for row, (machine, dataset, hidden, selection) in zip(axes, panels, strict=True):
        sub = stats[(stats["machine"] == machine) & (stats["dataset"] == dataset)
                    & (stats["hidden"] == hidden) & (stats["selection"] == selection)]
        for (k, pooling), s in sub.groupby(["K", "pooling"]):
            s = s.sort_values("L")
            for ax, (value, _) in zip(row, metrics, strict=True):
                y = s[value].to_numpy()
                err = np.vstack([y - s[f"{value}_ci_low"], s[f"{value}_ci_high"] - y])
                ax.errorbar(
                    s["L"], y, yerr=err, capsize=2, color=colour,
                    marker=_MARKERS[ks.index(k) % len(_MARKERS)],
                    ls=_LINES[pools.index(pooling) % len(_LINES)],
                    # hollow markers: not pooled, so single points tell the two apart too
                    markerfacecolor="white" if pooling == "not pooled" else colour,
                    alpha=0.55 + 0.45 * (ks.index(k) + 1) / len(ks),
                    label=f"K = {int(k)}, {pooling}",
                )
        for ax, (value, ylabel) in zip(row, metrics, strict=True):
            ax.set_xscale("log", base=2)
            ticks = sorted(sub["L"].unique())
            ax.set_xticks(ticks)
            ax.set_xticklabels([str(int(t)) for t in ticks])
            ax.set_xlabel("hash tables L")
            ax.set_ylabel(ylabel)
            if value != "test_accuracy" and value != "recall":
                _log_axes(ax, x=False)
            ax.grid(alpha=0.3, which="both")
        row[0].set_title(f"{machine}: {dataset}, hidden {hidden}\nselection '{selection}'",
                         fontsize=9)
        row[0].legend(fontsize=7)
    recall_note = (
        "Recall is the share of the exact top-k neurons (by pre-activation) the hashing "
        "retrieved, averaged over hidden layers."
        if has_recall
        else "The records hold no retrieval recall ('recall' column absent), so no recall "
        "panel is drawn."
    )
    fraction = c["fraction"].min()
    return _figures().Figure(
        "hash_quality",
        "LSH against its hash settings",
        f"LSH at {100 * fraction:g}% active: K bits per table, L tables, pooling of input and "
        "hidden vectors before hashing (blocks averaged; 'not pooled' hashes every "
        "coordinate). With selection 'hamming' neurons are ranked by sign bits shared over all "
        "K x L bits, so K and L act through their product; with 'topk' they shape the buckets "
        "probed. Multiplications include hashing and table rebuilds; time is the whole run's "
        f"over its examples. {recall_note} " + _spread_note(stats),
        fig,
        stats,
        section="questions",
    )


# -- hardware comparison -------------------------------------------------------------------


def pareto_front(x: list[float], y: list[float]) -> list[bool]:
    """True for each point no other point dominates (no worse in both, better in one);
    lower is better on both axes."""
    out = []
    for i, (xi, yi) in enumerate(zip(x, y, strict=True)):
        dominated = any(
            xj <= xi and yj <= yi and (xj < xi or yj < yi)
            for j, (xj, yj) in enumerate(zip(x, y, strict=True))
            if j != i
        )
        out.append(not dominated)
    return out


_MISSING_GPU = (
    "no dense runs on a GPU here (torch-dense with device 'cuda' runs where torch sees one; "
    "copy that machine's results folder beside these)"
)


def hardware_table(res: Results) -> pd.DataFrame:
    """Per (machine, device, setting) of the time-to-accuracy runs: seconds and joules per
    training example (means over seeds with 95% intervals, energy with its basis), and the
    time and energy to the target accuracy."""
    c = _cells(res, "time_to_accuracy")
    if c.empty:
        return pd.DataFrame()
    e = _epochs(res, "time_to_accuracy")
    energy = _cell_energy(res, e)
    per_cell = c[["machine", "cell_id", "dataset", "hidden", "setting", "model", "device",
                  "batch_size", "fraction", "seed", "s_per_example", "examples"]]
    if not energy.empty:
        tot = energy.groupby(["machine", "cell_id"], as_index=False).agg(
            energy_j=("energy_j", "sum"), basis=("basis", "first"), detail=("detail", "first")
        )
        per_cell = per_cell.merge(tot, how="left")
        per_cell["j_per_example"] = per_cell["energy_j"] / per_cell["examples"]
    else:
        per_cell = per_cell.assign(j_per_example=math.nan, basis="", detail="")
    target = time_to_target(res)
    rows = []
    keys = ["machine", "dataset", "hidden", "setting"]
    for key, g in per_cell.groupby(keys):
        s = positive_mean_ci(g["s_per_example"].tolist())
        j = positive_mean_ci(g["j_per_example"].dropna().tolist())
        row = {
            **dict(zip(keys, key, strict=True)),
            "model": g["model"].iloc[0],
            "device": g["device"].iloc[0],
            "batch_size": int(g["batch_size"].iloc[0]),
            "fraction": float(g["fraction"].iloc[0]),
            "seeds": g["seed"].nunique(),
            "s_per_example": s.estimate,
            "s_ci_low": s.low,
            "s_ci_high": s.high,
            "j_per_example": j.estimate,
            "j_ci_low": j.low,
            "j_ci_high": j.high,
            "energy_basis": _first(g["basis"]),
            "energy_detail": _first(g["detail"]),
        }
        if not target.empty:
            t = target.set_index(keys)
            if key in t.index:
                hit = t.loc[key]
                row.update(
                    seeds_reached=hit["seeds_reached"],
                    time_to_target_s=hit["time_to_target_s"],
                    energy_to_target_j=hit["energy_to_target_j"],
                )
        rows.append(row)
    return pd.DataFrame(rows)


def hardware_missing(res: Results) -> list[str]:
    """What the hardware comparison lacks, in words."""
    t = hardware_table(res)
    if t.empty:
        return ["no time-to-accuracy runs (run_all.py --only time_to_accuracy)"]
    notes = []
    if not (t["device"] != "cpu").any():
        notes.append(_MISSING_GPU)
    if not (t["model"] == LSH).any():
        notes.append("no LSH runs")
    if not (t["energy_basis"] == "measured").any():
        notes.append(
            "no measured energy: every joule here is estimated (no readable RAPL or NVML "
            "counters), so the energy axis follows CPU time, not a meter"
        )
    if t["machine"].nunique() < 2:
        notes.append("one machine only (copy other machines' results folders beside these)")
    return notes


def hardware_pareto(res: Results) -> Figure | None:
    """Seconds against joules per training example (and to the target accuracy) for every
    setting on every machine and device, with the Pareto front; one panel per energy basis."""
    t = hardware_table(res)
    if t.empty or not t["energy_basis"].astype(bool).any():
        return None
    t = t[t["energy_basis"].astype(bool)].copy()
    t["point"] = t["setting"] + " @ " + t["machine"] + " (" + t["device"].str.upper() + ")"
    views = [("s_per_example", "j_per_example", "per training example", "s", "J")]
    if "time_to_target_s" in t and t["time_to_target_s"].notna().any():
        views.append(("time_to_target_s", "energy_to_target_j", "to the target accuracy", "s",
                      "J"))
    bases = sorted(t["energy_basis"].unique())
    deco = _decorate(t)
    fig, axes = plt.subplots(
        len(views), len(bases), figsize=(5.2 * len(bases), 4.2 * len(views)), squeeze=False,
        layout="constrained",
    )
    fronts = []
    for r, (xc, yc, what, xu, yu) in enumerate(views):
        for col, basis in enumerate(bases):
            ax = axes[r][col]
            sub = t[(t["energy_basis"] == basis) & t[xc].notna() & t[yc].notna()].copy()
            if xc == "time_to_target_s":  # a mean over the seeds that got there flatters
                sub = sub[sub["seeds_reached"] == sub["seeds"]]
            if sub.empty:
                ax.set_axis_off()
                ax.set_title(f"{what}, energy {basis}: nothing reached the target", fontsize=8)
                continue
            sub["pareto"] = pareto_front(sub[xc].tolist(), sub[yc].tolist())
            fronts.append(sub.assign(view=what))
            for p in sub.itertuples():
                style = deco[p.setting]
                ax.plot(getattr(p, xc), getattr(p, yc), ls="", markersize=8,
                        color=style["color"], marker="s" if p.device != "cpu" else
                        style["marker"], label=p.point,
                        markeredgecolor="black" if p.pareto else style["color"])
            front = sub[sub["pareto"]].sort_values(xc)
            ax.step(front[xc], front[yc], where="post", color="#444444", lw=1, ls="--",
                    label="Pareto front")
            detail = ", ".join(sorted(sub["energy_detail"].unique()))
            _log_axes(ax)
            ax.set_xlabel(f"wall time {what} ({xu})")
            ax.set_ylabel(f"energy {what} ({yu}, {basis})")
            ax.set_title(f"energy {basis}: {detail}", fontsize=8)
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=6)
    missing = hardware_missing(res)
    if missing:  # said on the figure as well as in its caption
        fig.suptitle("missing: " + "; ".join(m.split(" (")[0] for m in missing), fontsize=8,
                     color="#884400")
    data = pd.concat(fronts, ignore_index=True) if fronts else t
    return _figures().Figure(
        "hardware_pareto",
        "Time against energy across machines and devices",
        "Each point is one setting on one machine and device (means over seeds; intervals in "
        "the CSV): the time-to-accuracy runs on the first dataset. Points with a black edge "
        "are on the Pareto front (no other point is both faster and cheaper), joined by the "
        "dashed line; to-target points only for settings that reached the target in every "
        "seed. One panel per energy basis: measured, estimated and mixed energy never "
        "share an axis. " + ("Missing: " + "; ".join(missing) + "." if missing else ""),
        fig,
        data,
        section="hardware",
    )


QUESTION_FIGURES = (width_scaling, time_to_accuracy, hash_quality, hardware_pareto)


def display(df: pd.DataFrame) -> pd.DataFrame:
    """The table for the page: each estimate with its 95% interval in one column, rounded;
    the CSVs keep the numbers."""
    if df.empty:
        return df
    out = df.copy()
    for value, low, high, name, fmt in (
        ("time_to_target_s", "time_ci_low", "time_ci_high", "time to target (s)", "{:.3g}"),
        ("energy_to_target_j", "energy_ci_low", "energy_ci_high", "energy to target (J)",
         "{:.3g}"),
        ("s_per_example", "s_ci_low", "s_ci_high", "s per example", "{:.3g}"),
        ("j_per_example", "j_ci_low", "j_ci_high", "J per example", "{:.3g}"),
    ):
        if value not in out:
            continue
        lo = out[low] if low in out else pd.Series(math.nan, index=out.index)
        hi = out[high] if high in out else pd.Series(math.nan, index=out.index)
        out[name] = [
            "–" if pd.isna(v) else fmt.format(v) + (
                "" if pd.isna(a) else f" ({fmt.format(a)}-{fmt.format(b)})"
            )
            for v, a, b in zip(out[value], lo, hi, strict=True)
        ]
        out = out.drop(columns=[c for c in (value, low, high) if c in out])
    if "target_accuracy" in out:
        out["target_accuracy"] = out["target_accuracy"].map("{:.4f}".format)
    for col in ("max_time_s",):  # epochs_to_target is formatted by tables.to_html
        if col in out:
            out[col] = out[col].map(lambda v: "–" if pd.isna(v) else f"{v:.3g}")
    return out
