#!/usr/bin/env python3
"""Regenerate everything: run the paper's experiments for a profile, then write the report.

    python run_all.py --profile smoke      # about a minute: tiny digits, every model
    python run_all.py --profile quick      # minutes: real digits and the generated sets
    python run_all.py --profile paper      # the paper's protocol in full (hours)
    python run_all.py --profile paper --plan   # what it would run and how long here; no runs

Finished cells are kept and not rerun (``--force`` reruns them); an interrupted sweep resumes.
Results go to ``results/<machine>/<experiment>/``; the report to ``report/index.html``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from harness.__main__ import CPU_POWER_W, Bounded, OneLineParser
from harness.errors import UserError
from harness.experiments import EXPERIMENTS, PROFILES
from harness.measure import MAX_IDLE_S

log = logging.getLogger("run_all")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--profile",
        default="smoke",
        choices=sorted(PROFILES),
        help="size of the experiment grid (default: smoke)",
    )
    p.add_argument(
        "--results",
        type=Path,
        default=Path("results"),
        help="folder of stored results (default: results)",
    )
    p.add_argument(
        "--report",
        type=Path,
        default=Path("report"),
        help="folder the report is written to (default: report)",
    )
    p.add_argument(
        "--compare",
        type=Path,
        action="append",
        default=[],
        help="another machine's results folder to include in the report (repeatable)",
    )
    p.add_argument(
        "--only", action="append", choices=EXPERIMENTS, help="run only this experiment (repeatable)"
    )
    p.add_argument(
        "--models",
        nargs="+",
        metavar="NAME",
        help="only these models or variants, e.g. dense lsh lsh-paper (default: all)",
    )
    p.add_argument(
        "--datasets",
        nargs="+",
        metavar="NAME",
        help="run these datasets instead of the profile's (see `python -m harness "
        "datasets` for what this machine has)",
    )
    p.add_argument("--force", action="store_true", help="rerun cells that already have results")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="skip training; rebuild the report from stored results",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder with user-supplied data files (MNIST IDX, smallNORB .mat)",
    )
    p.add_argument(
        "--meter",
        action="append",
        dest="meters",
        metavar="NAME",
        help="force this energy meter (rapl, pyrapl, nvml, cpu-estimate; repeatable)",
    )
    p.add_argument(
        "--no-meter",
        action="append",
        dest="no_meters",
        metavar="NAME",
        help="never use this energy meter (repeatable)",
    )
    p.add_argument(
        "--cpu-power-w",
        type=CPU_POWER_W,
        default=None,
        help="assumed power per logical CPU for the CPU-time estimate (watts)",
    )
    p.add_argument(
        "--idle-s",
        type=Bounded("seconds", 0.0, MAX_IDLE_S, hint="0 skips the idle measurement"),
        default=None,
        help="seconds of idle-power measurement before the runs "
        "(default: 1 for smoke, 5 otherwise; 0 to skip)",
    )
    p.add_argument(
        "--machine-id",
        default=None,
        help="name of this machine's results folder (default: derived from hardware)",
    )
    p.add_argument(
        "--plan",
        action="store_true",
        help="print what would run and how long it should take here (a short calibration), "
        "then exit without training or writing results",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log every epoch")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def _check_writable(folder: Path) -> None:
    """Fail now, in one line, where results cannot be stored: not after a cell has trained."""
    from harness.store import atomic_write_text

    probe = folder / ".write-probe"
    atomic_write_text(probe, "")
    probe.unlink(missing_ok=True)


def run(args: argparse.Namespace) -> Path | None:
    from tqdm import tqdm

    import models
    from harness import datasets, energy, machine, plan
    from harness.experiments import VARIANTS, cells_for
    from harness.runner import run_cells
    from harness.store import ResultStore
    from reports.html import build_report

    if args.machine_id:
        os.environ["HASHSPARSE_MACHINE_ID"] = args.machine_id
    store = ResultStore(args.results, machine.machine_id())
    if not args.report_only:
        known = models.available() + sorted(VARIANTS)
        chosen = args.models or known
        unknown = sorted(set(chosen) - set(known))
        if unknown:
            raise UserError(f"unknown model(s) {unknown}; choose from {known}")
        for name in args.datasets or ():
            datasets.canonical(name, args.data_dir)  # an unknown name is a one-line error
        experiments = tuple(args.only or EXPERIMENTS)
        # Variants named on the command line run even where the profile does not list them.
        variants = tuple(v for v in chosen if v in VARIANTS) if args.models else None
        cells = cells_for(args.profile, models.available(), experiments, args.datasets, variants)
        cells = [c for c in cells if c.name in chosen]
        if not cells:
            raise UserError(
                f"nothing to run: profile {args.profile!r} has no runs of "
                f"{sorted(chosen)} in {list(experiments)}"
            )
        if not args.plan:
            _check_writable(store.machine_dir)
        # What will run, and (except for the seconds-long smoke profile) how long it should
        # take here, from per-model rates measured by a short calibration.
        calibrate = args.plan or args.profile != "smoke"
        if calibrate:
            print("planning: measuring per-model rates on this machine ...", flush=True)
        text = plan.plan_text(
            cells, store=store, force=args.force, data_dir=args.data_dir, calibrate=calibrate
        )
        print(text, flush=True)
        if args.plan:
            return None
        idle_s = (
            args.idle_s if args.idle_s is not None else (1.0 if args.profile == "smoke" else 5.0)
        )
        started = time.perf_counter()
        with (
            energy.select_meters(
                include=args.meters, exclude=args.no_meters, cpu_power_w=args.cpu_power_w
            ) as meters,
            tqdm(total=len(cells), desc=f"{args.profile} runs", unit="run") as bar,
        ):
            fingerprint = machine.fingerprint()
            fingerprint["energy_meters"] = {
                "used": {m.name: m.note or m.source for m in meters},
                "not_used": meters.skipped,
            }
            # machine.json is written beside the first record this sweep stores, not before:
            # a sweep that stops on its data (or on anything before a cell finishes) leaves
            # the previous machine.json, which describes the records already there, as it was.
            wrote_machine = False

            def progress(cell, status):  # type: ignore[no-untyped-def]
                nonlocal wrote_machine
                if status != "skipped" and not wrote_machine:
                    store.write_machine(fingerprint)
                    wrote_machine = True
                bar.set_postfix_str(f"{cell.model} {cell.dataset}: {status}", refresh=False)
                bar.update()

            summary = run_cells(
                cells,
                store,
                meters,
                profile=args.profile,
                force=args.force,
                data_dir=args.data_dir,
                idle_s=idle_s,
                on_cell=progress,
            )
            if not wrote_machine and not (store.machine_dir / "machine.json").exists():
                store.write_machine(fingerprint)  # every cell was stored already
        print(
            f"{len(summary.done)} runs done, {len(summary.skipped)} already stored, "
            f"{len(summary.failed)} failed in {time.perf_counter() - started:.1f} s; "
            f"results in {store.machine_dir}"
        )
        if summary.short_windows:
            print(
                f"note: {summary.short_windows} measurement windows were shorter than their "
                "meter resolves well (listed under 'warnings' in the records); energy figures "
                "need longer runs, e.g. --profile quick"
            )
        for cell_id, error in summary.failed:
            print(f"  failed: {cell_id}: {error}", file=sys.stderr)
    index = build_report([args.results, *args.compare], args.report)
    print(f"report: {index.resolve()}")
    return index


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # --help (0), or a bad option whose one line is printed (2)
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # each window's warnings are stored in its record and counted below
        logging.getLogger("harness.measure").setLevel(logging.ERROR)
    import models

    try:
        run(args)
    except (UserError, models.ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt:
        print(
            "interrupted: finished runs are stored; rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
