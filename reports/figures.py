"""The paper's figures (and the energy and machine comparisons) from the tidy frames.

Each function takes the frames and returns a ``Figure`` spec: the matplotlib figure, the exact
data drawn (written as CSV beside the PNG), a caption naming the statistic behind error bars,
or ``None`` when the results hold nothing to draw. One colour per model in every figure.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure as MplFigure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from reports.frame import Results  # noqa: E402

MODEL_COLOURS = {
    "dense": "#333333",
    "dense-minibatch": "#8c8c8c",
    "lsh": "#d62728",
    "lsh-paper": "#ff7f0e",
    "dropout": "#1f77b4",
    "standout": "#2ca02c",
    "wta": "#9467bd",
}
MODEL_LABELS = {
    "dense": "standard (dense)",
    "dense-minibatch": "standard, mini-batch 256",
    "lsh": "LSH",
    "lsh-paper": "LSH, released code's settings",
    "dropout": "vanilla dropout",
    "standout": "adaptive dropout",
    "wta": "winner-take-all",
}
SPARSE_ORDER = ("lsh", "lsh-paper", "dropout", "standout", "wta")
# Networks with every node, drawn as horizontal reference lines (name -> line style).
REFERENCES = {"dense": "--", "dense-minibatch": ":"}


@dataclass
class Figure:
    name: str
    title: str
    caption: str
    fig: MplFigure
    data: pd.DataFrame


def _colour(model: str) -> str:
    return MODEL_COLOURS.get(model, "#7f7f7f")


def _label(model: str) -> str:
    return MODEL_LABELS.get(model, model)


def _seed_stats(df: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
    """Mean, min, max and count over seeds (and machines when grouped so)."""
    g = df.groupby(keys, dropna=False)[value]
    out = g.agg(["mean", "min", "max", "count"]).reset_index()
    return out.rename(
        columns={"mean": value, "min": f"{value}_min", "max": f"{value}_max", "count": "n_runs"}
    )


def _spread_note(stats: pd.DataFrame) -> str:
    if stats.empty or stats["n_runs"].max() <= 1:
        return "One run per point (no error bars)."
    return "Points are means over seeds; error bars span the minimum and maximum."


def _panels(n: int, width: float = 4.2, height: float = 3.3):
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False, layout="constrained")
    return fig, axes[0]


def _pct_axis(ax) -> None:  # type: ignore[no-untyped-def]
    ax.set_xscale("log")
    ticks = [5, 10, 25, 50, 75, 100]
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(t) for t in ticks])
    ax.set_xlabel("active hidden nodes (%)")


def _errorbar(ax, x, stats: pd.DataFrame, value: str, model: str, **kw) -> None:  # type: ignore[no-untyped-def]
    y = stats[value].to_numpy()
    err = np.vstack([y - stats[f"{value}_min"].to_numpy(), stats[f"{value}_max"].to_numpy() - y])
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
    """One panel against % active: a curve per sparse model, the dense network as a line."""
    for model in SPARSE_ORDER:
        m = sub[sub["model"] == model].sort_values("fraction")
        if m.empty:
            continue
        if errorbars:
            _errorbar(ax, 100 * m["fraction"], m, value, model)
        else:
            ax.plot(
                100 * m["fraction"], m[value], marker="o", color=_colour(model), label=_label(model)
            )
    for ref, style in REFERENCES.items():
        line = sub[sub["model"] == ref]
        if not line.empty:
            ax.axhline(line[value].mean(), color=_colour(ref), ls=style, label=_label(ref))
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
    keys = ["machine", "dataset", "hidden", "model", "fraction"]
    stats = _seed_stats(df, keys, "test_accuracy")
    panels = stats[["dataset", "hidden"]].drop_duplicates().values.tolist()
    fig, axes = _panels(len(panels))
    for ax, (dataset, hidden) in zip(axes, panels, strict=True):
        sub = stats[(stats["dataset"] == dataset) & (stats["hidden"] == hidden)]
        sub = sub.groupby(["model", "fraction"], as_index=False).mean(numeric_only=True)
        _fraction_panel(
            ax,
            sub,
            "test_accuracy",
            "test accuracy (fraction correct)",
            f"{dataset}, hidden {hidden}",
        )
    axes[0].legend(fontsize=8)
    return Figure(
        "accuracy_vs_fraction",
        "Test accuracy against active nodes",
        "Accuracy after the last epoch, against the percentage of hidden nodes kept per "
        "example; the dashed line is the standard network with every node. " + _spread_note(stats),
        fig,
        stats,
    )


def accuracy_per_epoch(res: Results) -> Figure | None:
    """Figure 2: accuracy over epochs at the lowest active fraction (dense for reference)."""
    e = _of(res.epochs, "fraction_sweep")
    if e.empty:
        return None
    sparse = e[~e["model"].isin(REFERENCES)]
    if sparse.empty:
        return None
    low = sparse["fraction"].min()
    df = e[(e["fraction"] == low) | e["model"].isin(REFERENCES)]
    stats = _seed_stats(df, ["dataset", "hidden", "model", "epoch"], "test_accuracy")
    panels = stats[["dataset", "hidden"]].drop_duplicates().values.tolist()
    fig, axes = _panels(len(panels))
    for ax, (dataset, hidden) in zip(axes, panels, strict=True):
        sub = stats[(stats["dataset"] == dataset) & (stats["hidden"] == hidden)]
        for model in (*REFERENCES, *SPARSE_ORDER):
            m = sub[sub["model"] == model].sort_values("epoch")
            if not m.empty:
                _errorbar(ax, m["epoch"], m, "test_accuracy", model, ls=REFERENCES.get(model, "-"))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("test accuracy (fraction correct)")
        ax.set_title(f"{dataset}, hidden {hidden}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return Figure(
        "accuracy_per_epoch",
        f"Accuracy per epoch at {100 * low:g}% active nodes",
        f"Test accuracy after each epoch with {100 * low:g}% of hidden nodes active; the "
        "standard network (all nodes) dashed. " + _spread_note(stats),
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
    axes[0].legend(fontsize=8)
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
    df = df.assign(examples_per_s=df["n_train"] * df["epochs"] / df["total_wall_s"])
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
    axes[0].legend(fontsize=8)
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
    stats = _seed_stats(df, ["machine", "dataset", "threads"], "epoch_wall_s")
    acc = _seed_stats(df, ["machine", "dataset", "threads"], "test_accuracy")
    stats = stats.merge(
        acc[["machine", "dataset", "threads", "test_accuracy"]],
        on=["machine", "dataset", "threads"],
    )
    base = stats[stats["threads"] == 1].set_index(["machine", "dataset"])["epoch_wall_s"]
    stats["speedup"] = [
        base.get((m, d), np.nan) / w
        for m, d, w in zip(stats["machine"], stats["dataset"], stats["epoch_wall_s"], strict=True)
    ]
    fig, axes = _panels(3)
    for (machine, dataset), sub in stats.groupby(["machine", "dataset"]):
        sub = sub.sort_values("threads")
        label = f"{machine} / {dataset}"
        axes[0].plot(sub["threads"], sub["epoch_wall_s"], marker="o", label=label)
        axes[1].plot(sub["threads"], sub["speedup"], marker="o", label=label)
        axes[2].plot(sub["threads"], sub["test_accuracy"], marker="o", label=label)
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
        "starts the threads); speedup is the 1-thread time over the n-thread one; the dotted "
        "line is linear speedup. " + _spread_note(stats),
        fig,
        stats,
    )


def energy_per_example(res: Results) -> Figure | None:
    """CPU energy per training example, measured or estimated (labelled), and the
    operation-count estimate, against % active."""
    df = _sweep(res)
    if df.empty:
        return None
    cols = [c for c in df.columns if c.startswith("cpu_") and c.endswith("_j")]
    rows = []
    for _, r in df.iterrows():
        n = r["n_train"] * r["epochs"]
        for col in cols:
            if pd.notna(r.get(col)):
                mode = col.split("_")[1] + (", net of idle" if col.endswith("_net_j") else "")
                rows.append(
                    {
                        **r[["machine", "dataset", "hidden", "model", "fraction"]].to_dict(),
                        "meter": f"CPU ({mode})",
                        "j_per_example": r[col] * r["epochs"] / n,
                    }
                )
        if pd.notna(r.get("op_estimate_j")):
            rows.append(
                {
                    **r[["machine", "dataset", "hidden", "model", "fraction"]].to_dict(),
                    "meter": "operation count (estimated)",
                    "j_per_example": r["op_estimate_j"] * r["epochs"] / n,
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
    axes[0].legend(fontsize=8)
    return Figure(
        "energy_per_example",
        "Energy per training example",
        "Each panel is one meter and one mode; measured and estimated energy are never summed "
        "or drawn on one axis. 'estimated' CPU energy is CPU time times an assumed power per "
        "logical CPU; the operation-count estimate applies 45 nm per-operation energies "
        "(Horowitz 2014) to the counted multiplications and their additions. Gross energy "
        "(idle draw not subtracted); means over datasets, seeds and machines.",
        fig,
        data,
    )


def machine_comparison(res: Results) -> Figure | None:
    """Training speed of each model on each machine (the cross-machine view)."""
    df = _sweep(res)
    if df.empty:
        return None
    sparse = ~df["model"].isin(REFERENCES)
    low = df.loc[sparse, "fraction"].min() if sparse.any() else 1
    df = df[(df["fraction"] == low) | ~sparse]
    df = df.assign(examples_per_s=df["n_train"] * df["epochs"] / df["total_wall_s"])
    data = df.groupby(["machine", "model"], as_index=False)["examples_per_s"].mean()
    machines = sorted(data["machine"].unique())
    models_present = [m for m in (*REFERENCES, *SPARSE_ORDER) if m in set(data["model"])]
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


ALL_FIGURES = (
    accuracy_vs_fraction,
    accuracy_per_epoch,
    mults_vs_fraction,
    throughput_vs_fraction,
    energy_per_example,
    thread_scaling,
    machine_comparison,
)
