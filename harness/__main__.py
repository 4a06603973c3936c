"""Command line: ``python -m harness <command>``.

Each command only parses its arguments and calls plain functions (which tests call directly).
Add a command by writing ``cmd_<name>(args) -> int`` and registering it in ``build_parser``.
User errors (``harness.errors.UserError``) print as one line and exit non-zero.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from harness.energy.estimate import MAX_W_PER_LOGICAL_CPU
from harness.errors import UserError


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


def _backend_list(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m harness", description="Energy-aware benchmark harness for hash-sparse DL"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    env = commands.add_parser("env", help="what this machine can measure, and its fingerprint")
    env.add_argument("--json", action="store_true", help="print one JSON object instead")
    env.add_argument(
        "--include",
        type=_backend_list,
        default=None,
        metavar="NAMES",
        help="force these energy backends (comma-separated: rapl,pyrapl,nvml,cpu-estimate)",
    )
    env.add_argument(
        "--exclude",
        type=_backend_list,
        default=None,
        metavar="NAMES",
        help="leave these energy backends out",
    )
    env.add_argument(
        "--sysfs-root",
        default=None,
        metavar="PATH",
        help="powercap folder to read (default /sys/class/powercap)",
    )
    env.add_argument(
        "--cpu-power-w",
        type=CPU_POWER_W,
        default=None,
        metavar="W",
        help="watts per logical CPU for the CPU-time estimate (default: TDP table or 4 W assumed)",
    )
    env.set_defaults(func=cmd_env)

    data = commands.add_parser(
        "datasets", help="which workloads this machine can load, and why not"
    )
    data.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="folder with user-supplied files (MNIST IDX, smallNORB .mat)",
    )
    data.set_defaults(func=cmd_datasets)
    return parser


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
        include=args.include,
        exclude=args.exclude,
        sysfs_root=args.sysfs_root,
        cpu_power_w=args.cpu_power_w,
    )
    try:
        caps = energy_capabilities(meters)
    finally:
        meters.close()
    fp = fingerprint()
    if args.json:
        print(json.dumps({"energy": caps, "machine": fp}, indent=2))
    else:
        print(format_env(caps, fp))
    return 0


# -- entry point ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0), or a bad option whose one line is printed (2)
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
