"""The paper's claims checked against the stored results.

One row per claim and per (machine, dataset, network shape): the LSH network at the lowest
swept fraction that is at most the paper's 5% against the standard network (batch 1) on the
same machine, data and shape; the estimate with its 95% interval over seeds
(``reports.stats``) and a verdict:

- ``met`` / ``not met``: the whole interval is on one side of the threshold;
- ``inconclusive``: the interval straddles the threshold, or a side has one seed (no interval);
- ``not tested``: the results hold nothing to test it with (the ``why`` column says what).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness import catalogue
from reports.frame import CELL_KEY, Results, last_epoch_energy
from reports.questions import reached_per_cell
from reports.stats import Interval, diff_ci, mean_diff_ci, ratio_ci, threshold_verdict
from reports.tables import BATCH1_REFERENCE

LSH = "lsh"  # the paper's method with this project's defaults
PAPER_FRACTION = 0.05
EFFICIENCY = 0.8  # "near-linear": at least 80% of linear speedup
COLUMNS = [
    "claim",
    "dataset",
    "hidden",
    "machine",
    "measured",
    "estimate",
    "ci_low",
    "ci_high",
    "threshold",
    "n_seeds",
    "verdict",
    "why",
]


@dataclass(frozen=True)
class Claim:
    text: str
    rule: str  # how the verdict is reached, for the report's text


MULTS_PAPER = Claim(
    "About 5% of the multiplications, counted the paper's way (forward pass, hidden layers)",
    "LSH's forward multiplications in hidden layers per example as a percentage of the "
    "standard network's; met if the interval's upper end is at most 5%, not met if its lower "
    "end is above 5%.",
)
MULTS_ALL = Claim(
    "About 5% of the multiplications, counted over everything",
    "The same with every multiplication of training (forward, backward, weight update, "
    "hashing, table rebuilds); threshold 5%.",
)
ACCURACY = Claim(
    "Within 1% of dense accuracy at 5% active",
    "Standard network's mean test accuracy minus LSH's, in percentage points (Welch interval "
    "of the difference); met if the upper end is at most 1.0 pp, not met if the lower end is "
    "above 1.0 pp. The 'all (mean)' row averages the per-dataset gaps; its variance is the "
    "sum of each dataset's two variances of the mean over the number of datasets squared, "
    "with Welch-Satterthwaite degrees of freedom.",
)
SCALING = Claim(
    "Near-linear multi-core speedup",
    "From the thread-scaling runs: speedup at the largest thread count T, the mean 1-thread "
    "epoch time over the mean T-thread one (median epoch after the first); near-linear means "
    f"at least {EFFICIENCY:.0%} of linear: met if the interval's lower end is at least "
    f"{EFFICIENCY:g} T, not met if its upper end is below.",
)
SPEED = Claim(
    "Less time than dense (batch 1)",
    "LSH's training examples per second over the standard network's at batch 1 (the paper's "
    "protocol); met if the interval's lower end is above 1, not met if its upper end is at "
    "most 1.",
)
SPEED_MB = Claim(
    "Less time than dense at its best mini-batch",
    "The same against the fastest reference network trained in mini-batches (batch size > 1) "
    "on the same machine.",
)
ENERGY = Claim(
    "Less energy than dense",
    "CPU energy per training example in the last epoch, LSH over the standard network "
    "(batch 1), measured where both have meter readings, else estimated (labelled); met if "
    "the interval's upper end is below 1, not met if its lower end is at least 1.",
)
TIME_TO_TARGET = Claim(
    "Less time than dense to the target accuracy",
    "From the time-to-accuracy runs: cumulative training wall time until test accuracy first "
    "reaches the target (the best dense setting's mean final accuracy less 1 point), LSH at "
    "its fastest fraction over the fastest dense setting on the same machine (any batch size "
    "or device), each chosen by its mean among the settings that reached the target in every "
    "seed; met if the interval's upper end is below 1, not met if its lower end is at least "
    "1. A choice of the best of several settings flatters both sides alike.",
)
ENERGY_TO_TARGET = Claim(
    "Less energy than dense to the target accuracy",
    "The same with the energy spent until the target is reached (every device the run used, "
    "gross), compared only where both sides' energy has the same basis (measured, estimated); "
    "each side's least-energy setting is chosen as above.",
)
CLAIMS = (
    MULTS_PAPER,
    MULTS_ALL,
    ACCURACY,
    SCALING,
    SPEED,
    SPEED_MB,
    ENERGY,
    TIME_TO_TARGET,
    ENERGY_TO_TARGET,
)
# (comparison the whole interval must pass, threshold, threshold as shown in the table)
MULTS_RULE = ("<=", 100 * PAPER_FRACTION, f"<= {100 * PAPER_FRACTION:g}%")
GAP_RULE = ("<=", 1.0, "<= 1.0 pp")
FASTER_RULE = (">", 1.0, "> 1x")
LESS_RULE = ("<", 1.0, "< 1x")


def _measured(ci: Interval, unit: str, suffix: str = "") -> str:
    """'0.81% (95% CI 0.79-0.83%)', or the estimate alone where there is no interval."""
    space = " " if unit == "pp" else ""
    head = f"{ci.estimate:.2f}{space}{unit}{suffix}"
    if not ci.defined:
        return f"{head} (one seed: no interval)"
    return f"{head} (95% CI {ci.low:.2f}-{ci.high:.2f}{space}{unit})"


def _scaled(ci: Interval, k: float) -> Interval:
    return Interval(ci.estimate * k, ci.low * k, ci.high * k, ci.dof)


class _Rows:
    """Collects the table's rows, one call per claim and group."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def untested(self, claim: Claim, where: dict[str, Any], why: str) -> None:
        self.rows.append(
            {**where, "claim": claim.text, "verdict": "not tested", "why": why, "n_seeds": 0}
        )

    def tested(
        self,
        claim: Claim,
        where: dict[str, Any],
        ci: Interval,
        rule: tuple[str, float, str],  # (comparison, threshold, threshold as shown)
        unit: str,
        n_seeds: int,
        basis: str,
        suffix: str = "",
    ) -> None:
        op, threshold, shown = rule
        verdict, reason = threshold_verdict(ci, op, threshold)
        self.rows.append(
            {
                **where,
                "claim": claim.text,
                "measured": _measured(ci, unit, suffix),
                "estimate": ci.estimate,
                "ci_low": ci.low,
                "ci_high": ci.high,
                "threshold": shown,
                "n_seeds": n_seeds,
                "verdict": verdict,
                "why": f"{basis}; {reason}",
            }
        )


def _values(df: pd.DataFrame, col: str) -> list[float]:
    return [] if col not in df else [float(v) for v in df[col] if pd.notna(v)]


def _seeds(a: pd.DataFrame, b: pd.DataFrame) -> str:
    na, nb = a["seed"].nunique(), b["seed"].nunique()
    return f"{na} seed(s)" if na == nb else f"{na} and {nb} seeds"


def claims(res: Results) -> pd.DataFrame:
    """The claims table (``COLUMNS``), ordered by claim, then machine, dataset and shape."""
    c = res.cells
    if c.empty:
        return pd.DataFrame(columns=COLUMNS)
    sweep = c[c["experiment"] == "fraction_sweep"]
    threads = c[(c["experiment"] == "thread_scaling") & (c["model"] == LSH)]
    keys = ["machine", "dataset", "hidden"]
    groups = sorted(
        set(map(tuple, sweep[keys].drop_duplicates().values.tolist()))
        | set(map(tuple, threads[keys].drop_duplicates().values.tolist()))
    )
    out = _Rows()
    energy = last_epoch_energy(res, "cpu")
    gaps: dict[tuple[str, str], list[tuple[str, list[float], list[float]]]] = {}
    for machine, dataset, hidden in groups:
        where = {"machine": machine, "dataset": dataset, "hidden": hidden}
        sub = sweep[
            (sweep["machine"] == machine)
            & (sweep["dataset"] == dataset)
            & (sweep["hidden"] == hidden)
        ]
        dense = sub[sub["model"] == BATCH1_REFERENCE]
        lsh_all = sub[sub["model"] == LSH]
        low = lsh_all.loc[lsh_all["fraction"] <= PAPER_FRACTION + 1e-9, "fraction"]
        lsh = lsh_all[lsh_all["fraction"] == low.min()] if not low.empty else lsh_all.iloc[:0]
        missing = None
        if sub.empty:
            missing = "no fraction-sweep cells for this dataset and shape"
        elif lsh.empty:
            lowest = (
                f" (lowest swept: {100 * lsh_all['fraction'].min():g}%)" if len(lsh_all) else ""
            )
            missing = f"no LSH cells at <= {100 * PAPER_FRACTION:g}% active{lowest}"
        elif dense.empty:
            missing = "no standard-network (dense, batch 1) reference"
        pair = f"LSH at {100 * low.min():g}% active vs dense (batch 1)" if not low.empty else ""
        sweep_claims = (MULTS_PAPER, MULTS_ALL, ACCURACY, SPEED, SPEED_MB, ENERGY)
        if missing is not None:
            for claim in sweep_claims:
                out.untested(claim, where, missing)
        else:
            _mults(out, where, lsh, dense, pair)
            a, d = _values(lsh, "test_accuracy"), _values(dense, "test_accuracy")
            gaps.setdefault((machine, hidden), []).append((dataset, a, d))
            ci = diff_ci([100 * x for x in d], [100 * x for x in a])
            out.tested(
                ACCURACY,
                where,
                ci,
                GAP_RULE,
                "pp",
                min(len(a), len(d)),
                f"{pair}, gap = dense - LSH, {_seeds(lsh, dense)}",
            )
            _speed(out, where, lsh, dense, sub, pair)
            _energy(out, where, lsh, dense, pair, energy)
        _scaling(out, where, threads, machine, dataset, hidden)
    _mean_gap(out, sweep, gaps)
    _to_target(out, res)
    order = {cl.text: i for i, cl in enumerate(CLAIMS)}
    table = pd.DataFrame(out.rows).reindex(columns=COLUMNS)
    table["n_seeds"] = table["n_seeds"].fillna(0).astype(int)
    table = table.assign(_o=table["claim"].map(order), _all=table["dataset"] == "all (mean)")
    table = table.sort_values(["_o", "machine", "hidden", "_all", "dataset"], kind="stable")
    return table.drop(columns=["_o", "_all"]).reset_index(drop=True)


def _mults(
    out: _Rows, where: dict[str, Any], lsh: pd.DataFrame, dense: pd.DataFrame, pair: str
) -> None:
    for claim, col, lacking in (
        (MULTS_PAPER, "mults_forward_hidden_per_example", "the hidden-layer forward count"),
        (MULTS_ALL, "mults_per_example", "multiplication counts"),
    ):
        a, b = _values(lsh, col), _values(dense, col)
        if len(a) < len(lsh) or len(b) < len(dense):
            out.untested(claim, where, f"records lack {lacking}")
            continue
        ci = _scaled(ratio_ci(a, b), 100)
        out.tested(
            claim,
            where,
            ci,
            MULTS_RULE,
            "%",
            min(len(a), len(b)),
            f"{pair}, per example, as % of dense, {_seeds(lsh, dense)}",
        )


def _speed(
    out: _Rows,
    where: dict[str, Any],
    lsh: pd.DataFrame,
    dense: pd.DataFrame,
    sub: pd.DataFrame,
    pair: str,
) -> None:
    a = _values(lsh, "examples_per_s")
    ci = ratio_ci(a, _values(dense, "examples_per_s"))
    out.tested(
        SPEED,
        where,
        ci,
        FASTER_RULE,
        "x",
        min(len(a), len(dense)),
        f"{pair}, training examples/s over dense's, {_seeds(lsh, dense)}",
    )
    refs = sub[sub["model"].map(lambda m: catalogue.style(m).reference) & (sub["batch_size"] > 1)]
    if refs.empty:
        out.untested(SPEED_MB, where, "no mini-batch reference (e.g. dense-minibatch) here")
        return
    best = refs.groupby("model")["examples_per_s"].mean().idxmax()  # the fastest one
    ref = refs[refs["model"] == best]
    ci = ratio_ci(a, _values(ref, "examples_per_s"))
    batch = int(ref["batch_size"].iloc[0])
    out.tested(
        SPEED_MB,
        where,
        ci,
        FASTER_RULE,
        "x",
        min(len(a), len(ref)),
        f"LSH at {100 * lsh['fraction'].iloc[0]:g}% active vs {best} (batch {batch}, the "
        f"fastest mini-batch reference here), examples/s, {_seeds(lsh, ref)}",
    )


def _energy(
    out: _Rows,
    where: dict[str, Any],
    lsh: pd.DataFrame,
    dense: pd.DataFrame,
    pair: str,
    energy: pd.DataFrame,
) -> None:
    """Energy per example, LSH over dense, in one mode: a meter where every cell of both has
    one, else the estimate. Measured and estimated are never mixed in one ratio."""
    for mode in ("measured", "estimated"):
        e = energy[energy["mode"] == mode]
        a = lsh.merge(e, on=CELL_KEY, suffixes=("", "_e"))
        b = dense.merge(e, on=CELL_KEY, suffixes=("", "_e"))
        if len(a) and len(b) and len(a) == len(lsh) and len(b) == len(dense):
            break
    else:
        out.untested(ENERGY, where, "no CPU energy readings (measured or estimated) for both")
        return
    per_a = (a["energy_j"] / a["n_train"]).tolist()
    per_b = (b["energy_j"] / b["n_train"]).tolist()
    ci = ratio_ci(per_a, per_b)
    src = f", source {a['source'].iloc[0]}"
    note = (
        ""
        if mode == "measured"
        else "; an estimate from CPU time times an assumed power, not a meter"
    )
    out.tested(
        ENERGY,
        where,
        ci,
        LESS_RULE,
        "x",
        min(len(per_a), len(per_b)),
        f"{pair}, CPU energy per example ({mode}{src}), last epoch, gross, "
        f"{_seeds(lsh, dense)}{note}",
        suffix=f" ({mode})",
    )


def _scaling(
    out: _Rows,
    where: dict[str, Any],
    threads: pd.DataFrame,
    machine: str,
    dataset: str,
    hidden: str,
) -> None:
    t = threads[
        (threads["machine"] == machine)
        & (threads["dataset"] == dataset)
        & (threads["hidden"] == hidden)
    ]
    if t.empty:
        out.untested(SCALING, where, "no thread-scaling cells for this dataset and shape")
        return
    top = int(t["threads"].max())
    one = _values(t[t["threads"] == 1], "epoch_wall_s")
    if top == 1:
        out.untested(SCALING, where, "only 1 thread was run (single core)")
        return
    if not one:
        out.untested(SCALING, where, "no 1-thread cells to measure speedup against")
        return
    at_top = t[t["threads"] == top]
    ci = ratio_ci(one, _values(at_top, "epoch_wall_s"))
    target = EFFICIENCY * top
    out.tested(
        SCALING,
        where,
        ci,
        (">=", target, f">= {target:g}x ({EFFICIENCY:.0%} of linear at {top} threads)"),
        "x",
        min(len(one), len(at_top)),
        f"LSH at {100 * t['fraction'].min():g}% active, median steady-state epoch, "
        f"1 vs {top} threads, {_seeds(t[t['threads'] == 1], at_top)}, parallel efficiency "
        f"{100 * ci.estimate / top:.0f}%",
        suffix=f" at {top} threads",
    )


def _to_target(out: _Rows, res: Results) -> None:
    """The time- and energy-to-target claims, per machine, dataset and shape of the
    time-to-accuracy runs (``reports.questions``)."""
    r = reached_per_cell(res)
    if r.empty:
        return
    for (machine, dataset, hidden), g in r.groupby(["machine", "dataset", "hidden"]):
        where = {"machine": machine, "dataset": dataset, "hidden": hidden}
        target = float(g["target_accuracy"].iloc[0])
        lsh = g[g["model"] == LSH]
        dense = g[g["model"].map(lambda m: catalogue.style(m).reference)]
        if lsh.empty or dense.empty:
            for claim in (TIME_TO_TARGET, ENERGY_TO_TARGET):
                out.untested(claim, where, "no LSH runs" if lsh.empty else "no dense runs")
            continue
        for claim, col in ((TIME_TO_TARGET, "time_to_target_s"),
                           (ENERGY_TO_TARGET, "energy_to_target_j")):
            _to_target_claim(out, claim, where, lsh, dense, col, target)


def _best_setting(cells: pd.DataFrame, col: str) -> tuple[str, pd.DataFrame] | None:
    """The setting with the least mean ``col`` among those that reached the target (and have
    ``col``) in every seed."""
    full = [
        (float(part[col].mean()), setting, part)
        for setting, part in cells.groupby("setting")
        if part[col].notna().all()
    ]
    if not full:
        return None
    _, setting, part = min(full, key=lambda t: t[0])
    return setting, part


def _to_target_claim(
    out: _Rows,
    claim: Claim,
    where: dict[str, Any],
    lsh: pd.DataFrame,
    dense: pd.DataFrame,
    col: str,
    target: float,
) -> None:
    energy = col.startswith("energy")
    what = "energy" if energy else "time"
    basis = ""
    if energy:  # only energy of one basis is compared: LSH's (measured, else estimated)
        bases = [b for b in ("measured", "estimated") if (lsh["energy_basis"] == b).any()]
        if not bases:
            out.untested(claim, where, "no energy readings for LSH")
            return
        basis = bases[0]
        lsh = lsh[lsh["energy_basis"] == basis]
        others = sorted(set(dense["energy_basis"]) - {basis})
        dense = dense[dense["energy_basis"] == basis]
        if dense.empty:
            out.untested(claim, where, f"LSH's energy is {basis} and no dense run's is "
                         f"(theirs: {', '.join(others) or 'none'}): not comparable")
            return
    best_d = _best_setting(dense, col)
    if best_d is None:
        out.untested(claim, where, f"no dense setting reached the target accuracy {target:.4f} "
                     f"in every seed{' with ' + basis + ' energy' if energy else ''}")
        return
    d_name, d = best_d
    best_l = _best_setting(lsh, col)
    epochs = int(lsh["epochs_run"].max())
    if best_l is None:
        # LSH never reached it in every seed: compare what it had spent by then
        spent = lsh.loc[lsh[col].isna(), col.replace("to_target", "total")]
        ci = ratio_ci(spent.tolist(), d[col].tolist())
        if ci.defined and ci.low >= 1:
            verdict, why = "not met", (
                f"LSH did not reach the target accuracy {target:.4f} in every seed within "
                f"{epochs} epochs and had by then spent more {what} than {d_name} needed to "
                "reach it (whole interval >= 1)"
            )
        else:
            verdict, why = "inconclusive", (
                f"LSH did not reach the target accuracy {target:.4f} in every seed within "
                f"{epochs} epochs; more epochs would settle it"
            )
        out.rows.append({**where, "claim": claim.text, "measured": "target not reached",
                         "estimate": ci.estimate, "ci_low": ci.low, "ci_high": ci.high,
                         "threshold": LESS_RULE[2], "n_seeds": len(d), "verdict": verdict,
                         "why": why})
        return
    l_name, lp = best_l
    ci = ratio_ci(lp[col].tolist(), d[col].tolist())
    shown = lp["energy_basis"].iloc[0], lp["energy_detail"].iloc[0]
    basis = f", energy {shown[0]} ({shown[1]})" if energy else ""
    out.tested(
        claim,
        where,
        ci,
        LESS_RULE,
        "x",
        min(len(lp), len(d)),
        f"{l_name} vs {d_name}, {what} to test accuracy {target:.4f}{basis}, "
        f"{_seeds(lp, d)}",
        suffix=f" ({lp['energy_basis'].iloc[0]})" if energy else "",
    )


def _mean_gap(
    out: _Rows,
    sweep: pd.DataFrame,
    gaps: dict[tuple[str, str], list[tuple[str, list[float], list[float]]]],
) -> None:
    """The accuracy claim 'on average': the mean of the per-dataset gaps, per machine and shape."""
    for machine, hidden in sorted(set(map(tuple, sweep[["machine", "hidden"]].values.tolist()))):
        where = {"machine": machine, "dataset": "all (mean)", "hidden": hidden}
        tested = gaps.get((machine, hidden), [])
        if not tested:
            out.untested(ACCURACY, where, "no dataset with LSH at <= 5% and dense here")
            continue
        ci = mean_diff_ci([([100 * x for x in d], [100 * x for x in a]) for _, a, d in tested])
        names = ", ".join(name for name, _, _ in tested)
        n = min(min(len(a), len(d)) for _, a, d in tested)
        out.tested(
            ACCURACY,
            where,
            ci,
            GAP_RULE,
            "pp",
            n,
            f"mean of the dense - LSH gaps over {len(tested)} dataset(s) ({names}); each "
            "dataset's seed variances combined (Welch-Satterthwaite)",
        )
