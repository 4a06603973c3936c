"""CPU energy from RAPL through the Linux powercap files (``/sys/class/powercap``).

Hardware layer: ``discover_zones`` finds zones by their ``name`` file; ``RaplMeter`` reads the
package zones (and DRAM zones when present) and never adds overlapping domains: psys contains
the packages and a package contains its core and uncore zones, so those are left out.
Per-die package zones that mirror one counter (multi-die Zen 1 and 2) are detected by equal
deltas and counted once. Counters wrap at ``max_energy_range_uj``; a background poller reads
them more often than range / (2 x peak power) so every wrap is seen and added back.

Readings are checked, not trusted: a counter file that is not a whole number in
[0, max_energy_range_uj], a decrease that would be an implausible wrap (the energy it implies
over the time since the last read exceeds ``MAX_CPU_DOMAIN_POWER_W``), a jump or a window
above that power, a clock going back, or reads failing for longer than a wrap takes, make the
window "unavailable" with the reason: never a measured number.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.energy.base import (
    MAX_CPU_DOMAIN_POWER_W,
    RAPL_SLACK_S,
    EnergyReading,
    Meter,
    check_positive,
    implausible_power,
)
from harness.errors import MeterError

log = logging.getLogger(__name__)

DEFAULT_SYSFS_ROOT = Path("/sys/class/powercap")
SOURCE = "rapl-powercap"
ASSUMED_PEAK_POWER_W = 500.0  # per zone; generous, so the poll interval errs on the safe side
POLL_SAFETY = 5.0  # poll this many times more often than the wrap bound strictly needs

_PACKAGE = re.compile(r"^package-(\d+)(?:-die-(\d+))?$")

PERMISSION_FIX = (
    "Linux >= 5.10 makes RAPL counters readable by root only. Fix: run as root; or grant read "
    'access with the udev rule SUBSYSTEM=="powercap", ACTION=="add", '
    'RUN+="/bin/chmod o+r /sys%p/energy_uj" (e.g. /etc/udev/rules.d/90-powercap.rules, then '
    "reboot); or, until reboot, sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj "
    "/sys/class/powercap/intel-rapl:*:*/energy_uj"
)


def read_text(path: Path) -> str:
    """Read one sysfs file. Module-level so tests can replace it."""
    with open(path, encoding="ascii") as fh:
        return fh.read()


@dataclass(frozen=True)
class PowercapZone:
    """One RAPL zone directory (e.g. ``intel-rapl:0:2`` named ``dram``)."""

    zone_id: str
    path: Path
    name: str
    max_energy_range_uj: int | None
    parent_id: str | None

    @property
    def energy_file(self) -> Path:
        return self.path / "energy_uj"

    @property
    def kind(self) -> str:
        if _PACKAGE.match(self.name):
            return "package"
        return self.name  # "dram", "psys", "core", "uncore", ...


def _parent_id(zone_id: str) -> str | None:
    head, _, tail = zone_id.rpartition(":")
    return head if head.count(":") >= 1 and tail.isdigit() else None


def discover_zones(
    root: Path = DEFAULT_SYSFS_ROOT, reader: Callable[[Path], str] | None = None
) -> list[PowercapZone]:
    """All RAPL zones under ``root``, top-level links and nested sub-zones alike, once each.

    ``intel-rapl-mmio`` zones are skipped: they are a second interface to the same package
    counter and would double count it.
    """
    reader = reader or read_text
    found: dict[str, Path] = {}

    def visit(folder: Path, depth: int) -> None:
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith("intel-rapl:") and entry.is_dir():
                found.setdefault(entry.name, entry)
                if depth < 3:
                    visit(entry, depth + 1)
            elif entry.name == "intel-rapl" and depth == 0 and entry.is_dir():
                visit(entry, depth + 1)  # the control-type folder some trees nest zones in

    visit(Path(root), 0)
    zones = []
    for zone_id, path in sorted(found.items()):
        try:
            name = reader(path / "name").strip()
        except OSError as exc:
            log.debug("skipping RAPL zone %s: name unreadable (%s)", path, exc)
            continue
        try:
            max_range: int | None = int(reader(path / "max_energy_range_uj").strip())
            if max_range is not None and max_range <= 0:
                max_range = None
        except (OSError, ValueError):
            max_range = None
        zones.append(PowercapZone(zone_id, path, name, max_range, _parent_id(zone_id)))
    return zones


def parse_counter(text: str, path: Path, max_range_uj: int | None) -> int:
    """A counter file's value in uJ; ValueError, naming the file, for what no counter holds."""
    value = text.strip()
    if not re.fullmatch(r"-?[0-9]+", value):
        raise ValueError(f"{path} holds {value!r}, not a whole number of microjoules")
    raw = int(value)
    if raw < 0:
        raise ValueError(f"{path} holds {raw}, a negative energy counter")
    if max_range_uj is not None and raw > max_range_uj:
        raise ValueError(f"{path} holds {raw}, above its max_energy_range_uj {max_range_uj}")
    return raw


class _WrapCounter:
    """A zone's counter extended past its wraps: raw + wraps x max_energy_range_uj.

    Every read (poller, window begin, window end) goes through ``read_extended`` under one
    lock, so each step between two reads is judged exactly once. A decrease is a wrap only if
    the energy it implies (up to the top and on from 0) is plausible for the time between the
    reads; otherwise, like an implausible jump, a clock going back, a wrap that cannot be
    sized, or reads failing for longer than a wrap takes, it is a *problem*: windows that
    span one are unavailable, with its reason.
    """

    def __init__(
        self, zone: PowercapZone, reader: Callable[[Path], str], clock: Callable[[], float]
    ) -> None:
        self.zone = zone
        self._reader = reader
        self._clock = clock
        self._lock = threading.Lock()
        self._last_raw: int | None = None
        self._last_t = 0.0  # clock at the last successful read
        self._failing = False  # a read failed since the last successful one
        self.wraps = 0
        self.problems = 0  # count only: a broken counter polled for hours must not grow memory
        self.last_problem = ""

    def read_raw(self) -> int:
        path = self.zone.energy_file
        return parse_counter(self._reader(path), path, self.zone.max_energy_range_uj)

    def read_extended(self) -> tuple[int, int]:
        """(extended counter in uJ, problems so far)."""
        with self._lock:
            try:
                raw = self.read_raw()
            except (OSError, ValueError):
                self._failing = self._last_raw is not None
                raise
            t = self._clock()
            if self._last_raw is not None:
                self._judge_step(self._last_raw, raw, t - self._last_t)
            self._last_raw, self._last_t, self._failing = raw, t, False
            span = self.zone.max_energy_range_uj or 0
            return raw + self.wraps * span, self.problems

    def _judge_step(self, last: int, raw: int, dt: float) -> None:
        path, span = self.zone.energy_file, self.zone.max_energy_range_uj
        if dt < 0:
            return self._problem(f"the clock went backwards between reads of {path}")
        if span is not None and self._failing and dt > span * 1e-6 / MAX_CPU_DOMAIN_POWER_W:
            return self._problem(
                f"{path} was unreadable for {dt:.3g} s, longer than a wrap takes at "
                f"{MAX_CPU_DOMAIN_POWER_W:.0f} W, so a wrap may have been missed"
            )
        if raw >= last:
            why = implausible_power((raw - last) * 1e-6, dt, MAX_CPU_DOMAIN_POWER_W, RAPL_SLACK_S)
            if why:
                self._problem(f"{path} jumped from {last} to {raw} uJ: {why}")
            return None
        if span is None:
            return self._problem(
                f"counter {path} wrapped but max_energy_range_uj is missing, so the wrap "
                "cannot be corrected"
            )
        why = implausible_power(
            (raw + span - last) * 1e-6, dt, MAX_CPU_DOMAIN_POWER_W, RAPL_SLACK_S
        )
        if why:
            return self._problem(
                f"{path} went back from {last} to {raw} uJ: not a plausible wrap ({why}); "
                "a reset or a misread"
            )
        self.wraps += 1
        return None

    def _problem(self, why: str) -> None:
        self.problems += 1
        self.last_problem = why
        log.warning("RAPL: %s; windows spanning it are unavailable", why)


def poll_interval_for(zones: list[PowercapZone], peak_power_w: float) -> float:
    """Seconds between background reads: well under the fastest wrap, range / (2 x peak)."""
    bounds = [
        z.max_energy_range_uj * 1e-6 / (2.0 * peak_power_w)
        for z in zones
        if z.max_energy_range_uj is not None
    ]
    if not bounds:
        return 1.0  # wraps cannot be corrected anyway; poll to detect them
    return min(30.0, max(0.01, min(bounds) / POLL_SAFETY))


class RaplMeter(Meter):
    """Package (and DRAM) energy from powercap counters, wrap-safe, mirrored dies once."""

    name = "rapl"
    mode = "measured"
    min_window_s = 0.2  # counters tick about every ms: 0.2 s keeps quantisation under 1%

    def __init__(
        self,
        sysfs_root: str | Path | None = None,
        include_dram: bool = True,
        poll_interval_s: float | None = None,
        start_poller: bool = True,
        peak_power_w: float = ASSUMED_PEAK_POWER_W,
        reader: Callable[[Path], str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        peak_power_w = check_positive("peak_power_w", peak_power_w)
        if poll_interval_s is not None:
            poll_interval_s = check_positive("poll_interval_s", poll_interval_s)
        self._clock = clock
        self.root = Path(sysfs_root) if sysfs_root is not None else DEFAULT_SYSFS_ROOT
        self._reader = reader or (lambda p: read_text(p))  # late-bound for monkeypatching
        if not self.root.is_dir():
            raise MeterError(f"RAPL: no powercap folder at {self.root} (VMs expose none)")
        zones = discover_zones(self.root, self._reader)
        if not zones:
            raise MeterError(f"RAPL: no intel-rapl zones under {self.root}")
        self.zones = zones
        packages = [z for z in zones if z.kind == "package"]
        if not packages:
            raise MeterError(
                f"RAPL: no package zone under {self.root} (found {[z.name for z in zones]})"
            )
        by_id = {z.zone_id: z for z in zones}
        self._package_of: dict[str, PowercapZone] = {}
        chosen = list(packages)
        if include_dram:
            for z in zones:
                parent = by_id.get(z.parent_id or "")
                if z.kind == "dram" and parent is not None and parent.kind == "package":
                    chosen.append(z)
                    self._package_of[z.zone_id] = parent
        self._counters = [_WrapCounter(z, self._reader, clock) for z in chosen]
        for c in self._counters:  # fail now, with the fix, rather than mid-run
            try:
                c.read_extended()
            except PermissionError as exc:
                raise MeterError(
                    f"RAPL: cannot read {c.zone.energy_file}: {PERMISSION_FIX}"
                ) from exc
            except (OSError, ValueError) as exc:
                raise MeterError(f"RAPL: cannot read {c.zone.energy_file}: {exc}") from exc
        self._mirrored = self._detect_mirrors()
        skipped = sorted({z.name for z in zones if z.kind not in ("package", "dram")})
        self._note = f"not added (overlap package): {', '.join(skipped)}" if skipped else ""
        if include_dram and not any(c.zone.kind == "dram" for c in self._counters):
            self._note = "; ".join(filter(None, [self._note, "no DRAM zone"]))
        if any(c.zone.max_energy_range_uj is None for c in self._counters):
            self._note = "; ".join(
                filter(None, [self._note, "max_energy_range_uj missing: wraps not correctable"])
            )
        self.poll_interval_s = poll_interval_s or poll_interval_for(chosen, peak_power_w)
        self.polls = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if start_poller:
            self._thread = threading.Thread(
                target=self._poll_loop, name="rapl-wrap-poller", daemon=True
            )
            self._thread.start()

    def _groups(self) -> dict[tuple[str, str], list[_WrapCounter]]:
        groups: dict[tuple[str, str], list[_WrapCounter]] = {}
        for c in self._counters:
            groups.setdefault(self._group_key(c.zone), []).append(c)
        return groups

    def _detect_mirrors(self, attempts: int = 5) -> dict[tuple[str, str], bool]:
        """Zones of one package that read one counter show equal raw values.

        A counter ticks about every ms and reads take microseconds, so a few reads catch the
        mirrored zones equal; distinct dies' large counters are practically never equal.
        """
        mirrored = {}
        for key, members in self._groups().items():
            if len(members) < 2:
                continue
            mirrored[key] = False
            for _ in range(attempts):
                try:
                    raws = {c.read_raw() for c in members}
                except (OSError, ValueError):
                    break
                if len(raws) == 1:
                    mirrored[key] = True
                    break
        return mirrored

    # -- background wrap tracking -----------------------------------------------------------
    def poll(self) -> None:
        """Read every counter once so wraps between windows' ends are seen."""
        for c in self._counters:
            try:
                c.read_extended()
            except (OSError, ValueError) as exc:
                log.debug("RAPL poll of %s failed: %s", c.zone.energy_file, exc)
        self.polls += 1

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            self.poll()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        self._thread = None

    # -- the meter interface ----------------------------------------------------------------
    def _group_key(self, zone: PowercapZone) -> tuple[str, str]:
        if zone.kind == "package":
            m = _PACKAGE.match(zone.name)
            assert m is not None
            return ("cpu-package", m.group(1))
        pkg = _PACKAGE.match(self._package_of[zone.zone_id].name)
        assert pkg is not None
        return ("dram", pkg.group(1))

    @property
    def domains(self) -> tuple[str, ...]:
        names: list[str] = []
        for key, members in self._groups().items():
            if len(members) == 1 or self._mirrored[key]:
                names.append(f"{key[0]}-{key[1]}")
            else:
                names += [self._die_domain(key, c) for c in members]
        return tuple(names)

    @staticmethod
    def _die_domain(key: tuple[str, str], counter: _WrapCounter) -> str:
        die = _PACKAGE.match(counter.zone.name)
        suffix = f"die-{die.group(2)}" if die and die.group(2) else counter.zone.zone_id
        return f"{key[0]}-{key[1]}-{suffix}"

    @property
    def source(self) -> str:
        return SOURCE

    @property
    def note(self) -> str:
        return self._note

    def begin(self) -> dict[str, Any]:
        counters: dict[str, tuple[int, int] | str] = {}
        for c in self._counters:
            try:
                counters[c.zone.zone_id] = c.read_extended()
            except (OSError, ValueError) as exc:
                counters[c.zone.zone_id] = f"read of {c.zone.energy_file} failed at start: {exc}"
        return {"t": self._clock(), "counters": counters}

    def end(self, start: Any) -> list[EnergyReading]:
        deltas: dict[str, int | str] = {}
        for c in self._counters:
            first = start["counters"][c.zone.zone_id]
            deltas[c.zone.zone_id] = first if isinstance(first, str) else self._delta(c, first)
        duration_s = self._clock() - start["t"]
        for zid, delta in deltas.items():
            # Each step was judged when read; the whole window is judged too (any route).
            if isinstance(delta, int):
                why = implausible_power(
                    delta * 1e-6, duration_s, MAX_CPU_DOMAIN_POWER_W, RAPL_SLACK_S
                )
                if why:
                    deltas[zid] = f"window reading not plausible: {why}"
                    log.warning("RAPL %s: %s", zid, deltas[zid])
        return self._readings(deltas)

    @staticmethod
    def _delta(c: _WrapCounter, first: tuple[int, int]) -> int | str:
        """uJ since ``first`` (from ``begin``), or why there is no trustworthy figure."""
        try:
            value_uj, problems = c.read_extended()
        except (OSError, ValueError) as exc:
            return f"read of {c.zone.energy_file} failed at end: {exc}"
        if problems != first[1]:
            more = problems - first[1] - 1
            return c.last_problem + (f" (and {more} more problem(s))" if more else "")
        return value_uj - first[0]

    def _readings(self, deltas: dict[str, int | str]) -> list[EnergyReading]:
        out: list[EnergyReading] = []
        for key, members in self._groups().items():
            kind, idx = key
            domain = f"{kind}-{idx}"
            values = [deltas[c.zone.zone_id] for c in members]
            if len(members) == 1:
                out.append(self._reading(domain, values[0]))
                continue
            equal = all(isinstance(v, int) for v in values) and len(set(values)) == 1
            if equal and values[0] != 0 and not self._mirrored[key]:
                # Equal non-zero deltas: the zones mirror one counter after all (sticky).
                log.info("RAPL zones of %s mirror one counter; counting it once", domain)
                self._mirrored[key] = True
            if self._mirrored[key]:
                # Mirrored per-die zones read one counter: count it once (the first die's).
                first = next((v for v in values if isinstance(v, int)), values[0])
                out.append(
                    self._reading(domain, first, f"{len(members)} mirrored die zones counted once")
                )
                continue
            for c, v in zip(members, values, strict=True):
                out.append(self._reading(self._die_domain(key, c), v))
        return out

    @staticmethod
    def _reading(domain: str, delta: int | str, note: str = "") -> EnergyReading:
        if isinstance(delta, str):
            return EnergyReading.unavailable(domain, SOURCE, delta)
        return EnergyReading(domain, delta * 1e-6, "measured", SOURCE, note)
