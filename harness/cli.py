"""The one command line, behind ``python -m harness``, the ``hashsparse`` script and
``run_all.py`` (which is ``run`` with the same options)::

    hashsparse run --profile quick        # train the profile's cells, then write the report
    hashsparse run --profile paper --plan # what it would run and how long here; no runs
    hashsparse report --compare ../gpu-box/results   # the report from stored results only
    hashsparse env                        # what this machine can measure, its fingerprint
    hashsparse datasets                   # which workloads this machine can load, and why not

Each command only parses its arguments and calls plain functions (which tests call directly).
Add a command by writing ``cmd_<name>(args) -> int`` and registering it in ``build_parser``.
User errors (``harness.errors.UserError``) print as one line and exit non-zero; so does an
option mistake (exit 2, no usage block).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from harness.energy.estimate import MAX_W_PER_LOGICAL_CPU
from harness.errors import UserError
from harness.experiments import EXPERIMENTS, PROFILES
from harness.measure import MAX_IDLE_S


class OneLineParser(argparse.ArgumentParser):
    """An option mistake is one line on stderr and exit status 2 (no usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


@dataclass(frozen=True)
class Bounded:
    """argparse ``type=`` for a number in [low, high] (``low`` excluded with ``open_low``).

    ``float`` alone lets "inf", "nan" and "1e999" through, and nothing downstream can store
    what they produce; every numeric option goes through this instead.
    """

    unit: str
    low: float
    high: float
    open_low: bool = False
    hint: str = ""

    def __call__(self, text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        above_low = value > self.low if self.open_low else value >= self.low
        if math.isfinite(value) and above_low and value <= self.high:
            return value
        low = f"{'>' if self.open_low else '>='} {self.low:g}"
        raise argparse.ArgumentTypeError(
            f"must be a finite number of {self.unit} {low} and <= {self.high:g} "
            f"(got {text!r}){'; ' + self.hint if self.hint else ''}"
        )


CPU_POWER_W = Bounded("watts per logical CPU", 0.0, MAX_W_PER_LOGICAL_CPU, open_low=True)


def _names(text: str) -> list[str]:
    """One meter name, or several separated by commas."""
    return [name.strip() for name in text.split(",") if name.strip()]


def _extend(values: list[list[str]] | None) -> list[str] | None:
    return [name for group in values for name in group] if values else None


def _meter_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--meter",
        action="append",
        dest="meters",
        type=_names,
        metavar="NAME",
        help="use this energy meter (rapl, pyrapl, nvml, cpu-estimate; repeatable)",
    )
    p.add_argument(
        "--no-meter",
        action="append",
        dest="no_meters",
        type=_names,
        metavar="NAME",
        help="never use this energy meter (repeatable)",
    )
    p.add_argument(
        "--cpu-power-w",
        type=CPU_POWER_W,
        default=None,
        metavar="W",
        help="watts per logical CPU for the CPU-time estimate (default: TDP table or 4 W assumed)",
    )
    p.add_argument(
        "--machine-id",
        default=None,
        help="name of this machine's results folder (default: hostname and a hardware hash)",
    )


def _report_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", type=Path, default=Path("results"),
                   help="folder of stored results (default: results)")
    p.add_argument("--report", type=Path, default=Path("report"),
                   help="folder the report is written to (default: report)")
    p.add_argument(
        "--compare",
        type=Path,
        action="append",
        default=[],
        help="another machine's results folder to include in the report (repeatable)",
    )


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="smoke", choices=sorted(PROFILES),
                   help="size of the experiment grid (default: smoke)")
    _report_options(p)
    p.add_argument("--only", action="append", choices=EXPERIMENTS,
                   help="run only this experiment (repeatable)")
    p.add_argument("--models", nargs="+", metavar="NAME",
                   help="only these models or variants, e.g. dense lsh lsh-paper (default: all)")
    p.add_argument(
        "--datasets",
        nargs="+",
        metavar="NAME",
        help="run these datasets instead of the profile's (`hashsparse datasets` lists what "
        "this machine has)",
    )
    p.add_argument("--force", action="store_true", help="rerun cells that already have results")
    p.add_argument(
        "--rerun-older-than",
        metavar="COMMIT",
        default=None,
        help="rerun cells whose records were produced by a commit older than COMMIT",
    )
    p.add_argument("--report-only", action="store_true",
                   help="skip training; rebuild the report from stored results")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="folder with user-supplied data files (MNIST IDX, smallNORB .mat)")
    _meter_options(p)
    p.add_argument(
        "--idle-s",
        type=Bounded("seconds", 0.0, MAX_IDLE_S, hint="0 skips the idle measurement"),
        default=None,
        help="seconds of idle-power measurement before the runs (default: the profile's; "
        "0 to skip)",
    )
    p.add_argument(
        "--cell-timeout",
        type=Bounded("seconds", 0.0, 30 * 86400.0, open_low=True),
        default=None,
        metavar="S",
        help="stop a cell after S seconds and store it as failed (default: no limit)",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="send cells to this dask.distributed scheduler (e.g. tcp://host:8786) instead "
        "of running them here",
    )
    p.add_argument("--no-wait", action="store_true",
                   help="stop at once if another sweep is writing the results folder")
    p.add_argument(
        "--in-process",
        action="store_true",
        help="run cells in this process, not one child each (for a debugger; a crash then "
        "ends the sweep)",
    )
    p.add_argument(
        "--plan",
        action="store_true",
        help="print what would run and how long it should take here (a short calibration), "
        "then exit without training or writing results",
    )


def build_parser(prog: str = "hashsparse") -> argparse.ArgumentParser:
    parser = OneLineParser(prog=prog, description="Energy-aware benchmark harness for "
                           "hash-sparse deep learning")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # -v after the command too (run_all.py -v is `run -v`); absent there, the top level's stands
    verbose = OneLineParser(add_help=False)
    verbose.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                         help="log details (every epoch)")

    run = commands.add_parser(
        "run", parents=[verbose], help="train a profile's cells, then write the report"
    )
    _run_options(run)
    run.set_defaults(func=cmd_run)

    report = commands.add_parser(
        "report", parents=[verbose], help="write the report from stored results only"
    )
    _report_options(report)
    report.set_defaults(func=cmd_report)

    env = commands.add_parser(
        "env", parents=[verbose], help="what this machine can measure, and its fingerprint"
    )
    env.add_argument("--json", action="store_true", help="print one JSON object instead")
    _meter_options(env)
    env.add_argument(
        "--sysfs-root",
        default=None,
        metavar="PATH",
        help="powercap folder to read (default /sys/class/powercap)",
    )
    env.set_defaults(func=cmd_env)

    data = commands.add_parser(
        "datasets", parents=[verbose], help="which workloads this machine can load, and why not"
    )
    data.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="folder with user-supplied files (MNIST IDX, smallNORB .mat)",
    )
    data.set_defaults(func=cmd_datasets)
    return parser


def parse_args(argv: Sequence[str] | None, prog: str = "hashsparse") -> argparse.Namespace:
    args = build_parser(prog).parse_args(argv)
    for name in ("meters", "no_meters"):
        if hasattr(args, name):
            setattr(args, name, _extend(getattr(args, name)))
    return args


# -- run and report -------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    from reports.html import build_report

    index = build_report([args.results, *args.compare], args.report)
    print(f"report: {index.resolve()}")
    return 0


def _check_writable(folder: Path) -> None:
    """Fail now, in one line, where results cannot be stored: not after a cell has trained."""
    from harness.files import atomic_write_text

    probe = folder / ".write-probe"
    atomic_write_text(probe, "")
    probe.unlink(missing_ok=True)


def select_cells(args: argparse.Namespace) -> list[Any]:
    """The cells the options name; a one-line error when they name nothing."""
    import models
    from harness import datasets
    from harness.experiments import VARIANTS, cells_for

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
    return cells


def cmd_run(args: argparse.Namespace) -> int:
    if not args.report_only:
        if sweep(args) is None:
            return 0  # --plan
    return cmd_report(args)


def sweep(args: argparse.Namespace) -> Any:
    from tqdm import tqdm

    from harness import machine, plan
    from harness.cell import MeterOptions
    from harness.experiments import profile
    from harness.runner import SweepOptions, run_cells
    from harness.store import ResultStore

    cells = select_cells(args)
    store = ResultStore(args.results, machine.machine_id(args.machine_id))
    if args.rerun_older_than:
        machine.commit_is_older(None, args.rerun_older_than)  # a bad commit: one line, now
    if not args.plan:
        _check_writable(store.machine_dir)
    # What will run, and (except for the seconds-long smoke profile) how long it should take
    # here, from per-model rates measured by a short calibration.
    calibrate = args.plan or args.profile != "smoke"
    if calibrate:
        print("planning: measuring per-model rates on this machine ...", flush=True)
    print(plan.plan_text(cells, store=store, force=args.force, data_dir=args.data_dir,
                         calibrate=calibrate), flush=True)
    if args.plan:
        return None
    options = SweepOptions(
        profile=args.profile,
        force=args.force,
        rerun_older_than=args.rerun_older_than,
        data_dir=args.data_dir,
        idle_s=args.idle_s if args.idle_s is not None else profile(args.profile).idle_s,
        meters=MeterOptions(args.meters, args.no_meters, args.cpu_power_w),
        cell_timeout_s=args.cell_timeout,
        in_process=args.in_process,
        wait_for_lock=not args.no_wait,
        scheduler=args.scheduler,
    )
    started = time.perf_counter()
    with tqdm(total=len(cells), desc=f"{args.profile} runs", unit="run") as bar:

        def progress(cell: Any, status: str) -> None:
            bar.set_postfix_str(f"{cell.model} {cell.dataset}: {status}", refresh=False)
            bar.update()

        summary = run_cells(cells, args.results, options, machine_id=args.machine_id,
                            on_cell=progress)
    where = ", ".join(str(args.results / m) for m in sorted(summary.machines)) or args.results
    print(
        f"{len(summary.done) - len(summary.failed)} runs done, {len(summary.skipped)} already "
        f"stored, {len(summary.failed)} failed in {time.perf_counter() - started:.1f} s; "
        f"results in {where}"
    )
    if summary.short_windows:
        print(
            f"note: {summary.short_windows} measurement windows were shorter than their "
            "meter resolves well (listed under 'warnings' in the records); energy figures "
            "need longer runs, e.g. --profile quick"
        )
    for cell_id in summary.refused:
        print(f"  left alone: {cell_id}: its record was written by newer code", file=sys.stderr)
    for cell_id, error in summary.failed:
        print(f"  failed: {cell_id}: {error}", file=sys.stderr)
    return summary


# -- datasets -------------------------------------------------------------------------------


def cmd_datasets(args: argparse.Namespace) -> int:
    from harness import datasets

    rows = datasets.available(args.data_dir)
    width = max(len(r.name) for r in rows)
    for r in rows:
        print(f"{r.name:<{width}}  {'yes' if r.available else 'no ':<3}  {r.detail}")
    return 0


# -- env ------------------------------------------------------------------------------------


def energy_capabilities(meters: Any) -> dict[str, Any]:
    """Per domain what is measured or estimated and how; per unused backend, why not."""
    from harness.energy import operation_energy

    domains = []
    for m in meters:
        for d in m.domains:
            domains.append(
                {"domain": d, "mode": m.mode, "backend": m.name, "source": m.source, "note": m.note}
            )
    ops = operation_energy(0)
    domains.append(
        {
            "domain": ops.domain,
            "mode": ops.mode,
            "backend": "op-count",
            "source": ops.source,
            "note": "from counted multiplications, per run",
        }
    )
    return {"domains": domains, "not_used": dict(getattr(meters, "skipped", {}))}


def format_env(caps: dict[str, Any], fp: dict[str, Any]) -> str:
    lines = ["Energy on this machine (by domain):"]
    width = max(len(d["domain"]) for d in caps["domains"])
    for d in caps["domains"]:
        lines.append(f"  {d['domain']:<{width}}  {d['mode']:<10} {d['source']}")
        if d["note"]:
            lines.append(f"  {'':<{width}}  {'':<10} note: {d['note']}")
    if not any(d["mode"] == "measured" for d in caps["domains"]):
        lines.append("  Nothing is measured here: all energy figures are labelled estimates.")
    if caps["not_used"]:
        lines.append("Backends not used:")
        for name, why in caps["not_used"].items():
            lines.append(f"  {name}: {why}")
    lines.append("Machine:")
    for key, value in machine_summary(fp):
        lines.append(f"  {key:<9} {value}")
    return "\n".join(lines)


def machine_summary(fp: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) rows of a fingerprint; items the fingerprint lacks are left out."""
    cpu = fp.get("cpu", {})
    rows: list[tuple[str, str | None]] = [
        ("id", fp.get("machine_id")),
        ("cpu", cpu.get("model")),
        (
            "cores",
            f"{cpu.get('logical_cores', '?')} logical, {cpu.get('physical_cores', '?')} physical",
        ),
        ("governor", " / ".join(filter(None, [cpu.get("governor"), cpu.get("scaling_driver")]))),
    ]
    if "memory_bytes" in fp:
        rows.append(("memory", f"{fp['memory_bytes'] / 2**30:.1f} GiB"))
    gpu = fp.get("gpu") or {}
    names = []
    for g in gpu.get("devices", []):
        size = f" {g['memory_bytes'] / 2**30:.0f} GiB" if g.get("memory_bytes") else ""
        mig = " MIG" if g.get("mig") else ""
        names.append(f"{g['name']}{size}{mig}")
    driver = f"; driver {gpu['driver']}" if gpu.get("driver") else ""
    rows.append(("gpu", ", ".join(names) + driver if names else "none (no NVIDIA GPU via NVML)"))
    rows.append(
        (
            "blas",
            ", ".join(
                f"{b.get('internal_api')} {b.get('version', '')} "
                f"({b.get('num_threads', '?')} threads)"
                for b in fp.get("blas", [])
            ),
        )
    )
    if "numba" in fp:
        n = fp["numba"]
        layer = n.get("threading_layer", n.get("threading_layer_config"))
        rows.append(
            ("numba", f"{n['version']} (threading layer {layer}, {n.get('num_threads')} threads)")
        )
    rows.append(("python", fp.get("python")))
    if "git" in fp:
        g = fp["git"]
        rows.append(("git", g["commit"][:12] + (" (dirty)" if g["dirty"] else "")))
    return [(k, v) for k, v in rows if v]


def cmd_env(args: argparse.Namespace) -> int:
    from harness.energy import select_meters
    from harness.machine import fingerprint

    meters = select_meters(
        include=args.meters,
        exclude=args.no_meters,
        sysfs_root=args.sysfs_root,
        cpu_power_w=args.cpu_power_w,
    )
    try:
        caps = energy_capabilities(meters)
    finally:
        meters.close()
    fp = fingerprint(args.machine_id)
    if args.json:
        print(json.dumps({"energy": caps, "machine": fp}, indent=2))
    else:
        print(format_env(caps, fp))
    return 0


# -- entry point ----------------------------------------------------------------------------


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so the cell in flight is stopped with it."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None, prog: str = "hashsparse") -> int:
    try:
        args = parse_args(argv, prog)
    except SystemExit as exc:  # --help (0), or a bad option whose one line is printed (2)
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.command == "run" and not args.verbose:
        # each window's warnings are stored in its record and counted in the summary line
        logging.getLogger("harness.measure").setLevel(logging.ERROR)
    import models

    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return int(args.func(args))
    except (UserError, models.ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt as exc:
        print(
            "interrupted: finished runs are stored; rerun the same command to resume",
            file=sys.stderr,
        )
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        signal.signal(signal.SIGTERM, previous)
