"""The paper's figures (and the energy and machine comparisons) from the tidy frames.

Each function takes the frames and returns a ``Figure`` spec: the matplotlib figure, the exact
data drawn (written as CSV beside the PNG), a caption naming the statistic behind error bars,
or ``None`` when the results hold nothing to draw. Labels, colours, order and which networks
are references come only from ``harness.catalogue``: every model in the results is drawn,
known or not. Error bars are 95% t-intervals of the mean over seeds (``reports.stats``), of
its log for positive quantities (seconds, rates, joules, counts).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure as MplFigure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from harness import catalogue  # noqa: E402
from reports.frame import CELL_KEY, Results, last_epoch_energy  # noqa: E402
from reports.stats import mean_ci, positive_mean_ci, ratio_ci  # noqa: E402


@dataclass
class Figure:
    name: str
    title: str
    caption: str
    fig: MplFigure
    data: pd.DataFrame
    section: str = "results"  # the report's section: results, questions or hardware
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)  # more CSVs, by file stem


def _colour(model: str) -> str:
    return catalogue.style(model).colour


def _label(model: str) -> str:
    return catalogue.style(model).label


def _is_reference(model: str) -> bool:
    return catalogue.style(model).reference


def _references(models: pd.Series) -> pd.Series:
    return models.map(_is_reference).astype(bool)


# Positive quantities whose interval is taken on the log scale (stats.positive_mean_ci): a
# t-interval over two or three seeds' seconds or joules can reach below zero.
LOG_SCALE = frozenset({"examples_per_s", "epoch_wall_s", "s_per_example", "cum_wall_s",
                       "cum_energy_j", "mults_per_example"})


def _seed_stats(df: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
    """Mean, sd, 95% interval of the mean and count over seeds: ``stats.mean_ci``, or
    ``stats.positive_mean_ci`` (log scale) for LOG_SCALE values. Where ``keys`` leave out
    the machine, each seed's runs on different machines are averaged first, so the interval
    is over seeds, not machines."""
    per_seed = df.groupby([*keys, "seed"], dropna=False)[value].mean().reset_index()
    groups = per_seed.groupby(keys, dropna=False)[value]
    out = groups.agg(["mean", "std", "count"]).reset_index()
    interval = positive_mean_ci if value in LOG_SCALE else mean_ci
    cis = [interval(v.dropna().tolist()) for _, v in groups]  # the same (sorted) order
    return out.rename(columns={"mean": value, "std": f"{value}_sd", "count": "n_runs"}).assign(
        **{f"{value}_ci_low": [c.low for c in cis], f"{value}_ci_high": [c.high for c in cis]}
    )


def _spread_note(stats: pd.DataFrame) -> str:
    """The caption's statement of what the points and error bars are."""
    if stats.empty or stats["n_runs"].max() <= 1:
        return "One run per point (no interval)."
    lo, hi = int(stats["n_runs"].min()), int(stats["n_runs"].max())
    n = f"{hi}" if lo == hi else f"{lo}-{hi}"
    note = (f"Points are means over {n} seeds; error bars are 95% t-intervals of the mean "
            "(for seconds, rates and joules, of its log: they stay above zero).")
    return note + (" Points from one run have no error bar." if lo <= 1 else "")


def _panels(n: int, width: float = 4.2, height: float = 3.3):
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False, layout="constrained")
    return fig, axes[0]


def _legend(axes) -> None:  # type: ignore[no-untyped-def]
    """One legend on the first panel naming every model drawn in any panel."""
    seen: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    axes[0].legend(list(seen.values()), list(seen), fontsize=8)


def _pct_axis(ax) -> None:  # type: ignore[no-untyped-def]
    ax.set_xscale("log")
    ticks = [5, 10, 25, 50, 75, 100]
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(t) for t in ticks])
    ax.set_xlabel("active hidden nodes (%)")


def _errorbar(ax, x, stats: pd.DataFrame, value: str, model: str, **kw) -> None:  # type: ignore[no-untyped-def]
    y = stats[value].to_numpy()
    # NaN (one run) draws no bar
    err = np.vstack(
        [y - stats[f"{value}_ci_low"].to_numpy(), stats[f"{value}_ci_high"].to_numpy() - y]
    )
    ax.errorbar(
        x, y, yerr=err, color=_colour(model), label=_label(model), marker="o", capsize=3, **kw
    )


def _fraction_panel(
    ax,
    sub: pd.DataFrame,
    value: str,
    ylabel: str,
    title: str,
    log_y: bool = False,
    errorbars: bool = True,
) -> None:  # type: ignore[no-untyped-def]
    """One panel against % active: a curve per model in the results, references (networks
    with every node) as horizontal lines."""
    for model in catalogue.ordered(sub["model"]):
        m = sub[sub["model"] == model].sort_values("fraction")
        if _is_reference(model):
            style = catalogue.style(model).line_style
            ax.axhline(m[value].mean(), color=_colour(model), ls=style, label=_label(model))
        elif errorbars:
            _errorbar(ax, 100 * m["fraction"], m, value, model)
        else:
            ax.plot(
                100 * m["fraction"], m[value], marker="o", color=_colour(model), label=_label(model)
            )
    _pct_axis(ax)
    if log_y:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9 if "\n" in title else None)
    ax.grid(alpha=0.3, which="both" if log_y else "major")


def _of(frame: pd.DataFrame, experiment: str) -> pd.DataFrame:
    """The rows of one experiment (an empty frame, which has no columns, stays empty)."""
    return frame if frame.empty else frame[frame["experiment"] == experiment]


def _sweep(res: Results) -> pd.DataFrame:
    return _of(res.cells, "fraction_sweep")


def accuracy_vs_fraction(res: Results) -> Figure | None:
    """Figure 1: final test accuracy against % active nodes, one panel per dataset x depth."""
    df = _sweep(res)
    if df.empty:
        return None
    stats = _seed_stats(df, ["dataset", "hidden", "model", "fraction"], "test_accuracy")
    panels = stats[["dataset", "hidden"]].drop_duplicates().values.tolist()
    fig, axes = _panels(len(panels))
    for ax, (dataset, hidden) in zip(axes, panels, strict=True):
        sub = stats[(stats["dataset"] == dataset) & (stats["hidden"] == hidden)]
        _fraction_panel(
            ax,
            sub,
            "test_accuracy",
            "test accuracy (fraction correct)",
            f"{dataset}, hidden {hidden}",
        )
    _legend(axes)
    return Figure(
        "accuracy_vs_fraction",
        "Test accuracy against active nodes",
        "Accuracy after the last epoch, against the percentage of hidden nodes kept per "
        "example; horizontal lines are networks with every node (dashed: the standard "
        "network). " + _spread_note(stats),
        fig,
        stats,
    )


def accuracy_per_epoch(res: Results) -> Figure | None:
    """Figure 2: accuracy over epochs at the lowest active fraction (dense for reference)."""
    e = _of(res.epochs, "fraction_sweep")
    if e.empty:
        return None
    refs = _references(e["model"])
    if refs.all():
        return None
    low = e.loc[~refs, "fraction"].min()
    df = e[(e["fraction"] == low) | refs]
    stats = _seed_stats(df, ["dataset", "hidden", "model", "epoch"], "test_accuracy")
    panels = stats[["dataset", "hidden"]].drop_duplicates().values.tolist()
    fig, axes = _panels(len(panels))
    for ax, (dataset, hidden) in zip(axes, panels, strict=True):
        sub = stats[(stats["dataset"] == dataset) & (stats["hidden"] == hidden)]
        for model in catalogue.ordered(sub["model"]):
            m = sub[sub["model"] == model].sort_values("epoch")
            ls = catalogue.style(model).line_style if _is_reference(model) else "-"
            _errorbar(ax, m["epoch"], m, "test_accuracy", model, ls=ls)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("test accuracy (fraction correct)")
        ax.set_title(f"{dataset}, hidden {hidden}")
        ax.grid(alpha=0.3)
    _legend(axes)
    return Figure(
        "accuracy_per_epoch",
        f"Accuracy per epoch at {100 * low:g}% active nodes",
        f"Test accuracy after each epoch with {100 * low:g}% of hidden nodes active; the "
        "networks with every node in broken lines. " + _spread_note(stats),
        fig,
        stats,
    )


def mults_vs_fraction(res: Results) -> Figure | None:
    """Figure 3: counted training multiplications per example against % active."""
    df = _sweep(res)
    if df.empty:
        return None
    stats = _seed_stats(df, ["dataset", "hidden", "model", "fraction"], "mults_per_example")
    phases = df.groupby(["dataset", "hidden", "model", "fraction"], as_index=False)[
        [c for c in df.columns if c.startswith("mults_") and c != "mults_per_example"]
    ].mean()
    data = stats.merge(phases, on=["dataset", "hidden", "model", "fraction"], how="left")
    panels = stats[["dataset", "hidden"]].drop_duplicates().values.tolist()
    fig, axes = _panels(len(panels))
    for ax, (dataset, hidden) in zip(axes, panels, strict=True):
        sub = stats[(stats["dataset"] == dataset) & (stats["hidden"] == hidden)]
        _fraction_panel(
            ax,
            sub,
            "mults_per_example",
            "multiplications per training example",
            f"{dataset}, hidden {hidden}",
            log_y=True,
        )
    _legend(axes)
    return Figure(
        "mults_vs_fraction",
        "Multiplications per training example",
        "Exact counts of the multiplications each implementation performed in training "
        "(forward, backward, weight update, hashing and table rebuilds), per example, averaged "
        "over the run. Baselines compute every pre-activation, so their counts stay at or above "
        "the standard network's. Per-phase counts are in the CSV. " + _spread_note(stats),
        fig,
        data,
    )


def throughput_vs_fraction(res: Results) -> Figure | None:
    """Wall-clock training speed against % active: does the sparsity save time?"""
    df = _sweep(res)
    if df.empty:
        return None
    stats = _seed_stats(df, ["machine", "dataset", "hidden", "model", "fraction"], "examples_per_s")
    panels = stats[["machine", "dataset", "hidden"]].drop_duplicates().values.tolist()
    fig, axes = _panels(len(panels))
    for ax, (machine, dataset, hidden) in zip(axes, panels, strict=True):
        sub = stats[
            (stats["machine"] == machine)
            & (stats["dataset"] == dataset)
            & (stats["hidden"] == hidden)
        ]
        _fraction_panel(
            ax,
            sub,
            "examples_per_s",
            "training examples per second",
            f"{machine}\n{dataset}, hidden {hidden}",
            log_y=True,
        )
    _legend(axes)
    return Figure(
        "throughput_vs_fraction",
        "Training speed against active nodes",
        "Training examples per second of wall time (all epochs), per machine. Sparse models "
        "and the dashed standard network train one example at a time (the paper's protocol); "
        "the dotted line, where present, is the standard network in mini-batches of 256 "
        "through BLAS, the speed its users actually get. " + _spread_note(stats),
        fig,
        stats,
    )


def thread_scaling(res: Results) -> Figure | None:
    """Figure 4: asynchronous (Hogwild) training: time per epoch and speedup against threads."""
    df = _of(res.cells, "thread_scaling")
    if df.empty:
        return None
    group = ["machine", "dataset", "hidden", "model"]
    stats = _seed_stats(df, [*group, "threads"], "epoch_wall_s")
    acc = _seed_stats(df, [*group, "threads"], "test_accuracy")
    stats = stats.merge(acc.drop(columns="n_runs"), on=[*group, "threads"])
    # speedup = mean 1-thread time / mean n-thread time, with the ratio's interval over seeds
    speed = []
    for key, cells in df.groupby(group):
        base = cells.loc[cells["threads"] == 1, "epoch_wall_s"].tolist()
        for t, at in cells.groupby("threads"):
            ci = ratio_ci(base, at["epoch_wall_s"].tolist())
            speed.append((*key, t, ci.estimate, ci.low, ci.high))
    stats = stats.merge(
        pd.DataFrame(
            speed, columns=[*group, "threads", "speedup", "speedup_ci_low", "speedup_ci_high"]
        ),
        on=[*group, "threads"],
    )
    # name only the facets that differ between curves
    facets = [c for c in group if c in ("machine", "dataset") or stats[c].nunique() > 1]
    fig, axes = _panels(3)
    for key, sub in stats.groupby(facets):
        sub = sub.sort_values("threads")
        names = dict(zip(facets, key, strict=True))
        label = " / ".join(
            _label(v) if c == "model" else f"hidden {v}" if c == "hidden" else str(v)
            for c, v in names.items()
        )
        for ax, value in zip(axes, ("epoch_wall_s", "speedup", "test_accuracy"), strict=True):
            y = sub[value].to_numpy()
            err = np.vstack(
                [y - sub[f"{value}_ci_low"].to_numpy(), sub[f"{value}_ci_high"].to_numpy() - y]
            )
            ax.errorbar(sub["threads"], y, yerr=err, marker="o", capsize=3, label=label)
    top = max(2, int(stats["threads"].max()))
    axes[1].plot([1, top], [1, top], color="#999999", ls=":", label="linear")
    ticks = sorted(stats["threads"].unique())
    for ax, ylabel in zip(
        axes,
        ["wall time per epoch (s)", "speedup over 1 thread", "test accuracy (fraction correct)"],
        strict=True,
    ):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(t) for t in ticks])
        ax.set_xlabel("threads")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    return Figure(
        "thread_scaling",
        "Asynchronous (Hogwild) training across threads",
        "LSH network at its lowest active fraction, lock-free updates shared by all threads. "
        "Time per epoch is the median epoch after the first (which builds the tables and "
        "starts the threads); speedup is the mean 1-thread time over the mean n-thread one "
        "(its interval by the delta method on logs); the dotted line is linear speedup. "
        + _spread_note(stats),
        fig,
        stats,
    )


def energy_per_example(res: Results) -> Figure | None:
    """CPU energy per training example, measured or estimated (labelled), and the
    operation-count estimate, against % active."""
    df = _sweep(res)
    if df.empty:
        return None
    keys = ["machine", "dataset", "hidden", "model", "fraction"]
    sweep_ids = df[CELL_KEY]
    rows = []
    for net in (False, True):  # gross, then net of idle where an idle power was measured
        e = last_epoch_energy(res, "cpu", net=net).merge(sweep_ids, on=CELL_KEY)
        for _, r in e.iterrows():
            mode = r["mode"] + (", net of idle" if net else "")
            rows.append({**r[keys].to_dict(), "meter": f"CPU ({mode})",
                         "j_per_example": r["energy_j"] / r["n_train"]})
    for _, r in df.iterrows():
        if pd.notna(r.get("op_estimate_j")):
            rows.append(
                {
                    **r[keys].to_dict(),
                    "meter": "operation count (estimated)",
                    "j_per_example": r["op_estimate_j"] / r["n_train"],
                }
            )
    if not rows:
        return None
    data = pd.DataFrame(rows)
    meters = sorted(data["meter"].unique())
    fig, axes = _panels(len(meters))
    for ax, meter in zip(axes, meters, strict=True):
        sub = (
            data[data["meter"] == meter]
            .groupby(["model", "fraction"], as_index=False)["j_per_example"]
            .mean()
        )
        _fraction_panel(
            ax,
            sub,
            "j_per_example",
            "energy per training example (J)",
            meter,
            log_y=True,
            errorbars=False,
        )
    _legend(axes)
    return Figure(
        "energy_per_example",
        "Energy per training example",
        "Each panel is one meter and one mode; measured and estimated energy are never summed "
        "or drawn on one axis. 'estimated' CPU energy is CPU time times an assumed power per "
        "logical CPU; the operation-count estimate applies 45 nm per-operation energies "
        "(Horowitz 2014) to the counted multiplications and their additions. Each figure is the "
        "last epoch's energy over its training examples: gross (idle draw included) unless "
        "the panel says 'net of idle'; means over datasets, seeds and machines.",
        fig,
        data,
    )


def machine_comparison(res: Results) -> Figure | None:
    """Training speed of each model on each machine (the cross-machine view)."""
    df = _sweep(res)
    if df.empty:
        return None
    sparse = ~_references(df["model"])
    low = df.loc[sparse, "fraction"].min() if sparse.any() else 1
    df = df[(df["fraction"] == low) | ~sparse]
    data = df.groupby(["machine", "model"], as_index=False)["examples_per_s"].mean()
    machines = sorted(data["machine"].unique())
    models_present = catalogue.ordered(data["model"])
    fig, ax = plt.subplots(
        figsize=(max(5.0, 0.8 * len(machines) * len(models_present)), 3.5), layout="constrained"
    )
    width = 0.8 / max(len(models_present), 1)
    x = np.arange(len(machines))
    for i, model in enumerate(models_present):
        vals = [
            data[(data["machine"] == mc) & (data["model"] == model)]["examples_per_s"].mean()
            for mc in machines
        ]
        ax.bar(x + i * width, vals, width, color=_colour(model), label=_label(model))
    ax.set_xticks(x + width * (len(models_present) - 1) / 2)
    ax.set_xticklabels(machines, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("training examples per second")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y", which="both")
    return Figure(
        "machine_comparison",
        "Machines compared",
        f"Training examples per second on each machine, at {100 * low:g}% active nodes for "
        "the sparse models and all nodes for the standard network; means over datasets and "
        "seeds.",
        fig,
        data,
    )


# The questions beyond the paper (width scaling, time to accuracy, hash quality, hardware).
from reports.questions import QUESTION_FIGURES  # noqa: E402

ALL_FIGURES = (
    accuracy_vs_fraction,
    accuracy_per_epoch,
    mults_vs_fraction,
    throughput_vs_fraction,
    energy_per_example,
    thread_scaling,
    machine_comparison,
    *QUESTION_FIGURES,
)
