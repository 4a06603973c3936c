"""The measurement protocol: windows, idle baseline, net energy, repeats, stability warnings.

This layer never touches sysfs or NVML; it only calls the meters' ``begin``/``end``::

    meters = harness.energy.select_meters()
    with measure(meters) as w:
        ...work...            # warm-up (JIT compilation) must happen before, outside
    w.wall_s, w.cpu_s, w.readings
"""

from __future__ import annotations

import contextlib
import logging
import math
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.energy.base import EnergyReading, Meter
from harness.errors import UserError

log = logging.getLogger(__name__)

SPREAD_WARN = 0.10  # warn when (max - min) / median reaches 10%
MAX_IDLE_S = 3600.0  # an idle baseline longer than an hour is a typo, not a protocol


class MeasureError(UserError, ValueError):
    """A measurement setting is out of range (idle seconds, repeats)."""


def check_idle_s(seconds: float) -> float:
    """``seconds`` as a float when it is a finite idle duration in [0, MAX_IDLE_S]."""
    if not (
        isinstance(seconds, int | float) and math.isfinite(seconds) and 0 <= seconds <= MAX_IDLE_S
    ):
        raise MeasureError(
            f"idle seconds must be a finite number >= 0 and <= {MAX_IDLE_S:g} (got {seconds!r}); "
            "0 skips the idle baseline"
        )
    return float(seconds)


@dataclass
class Window:
    """One measured window; filled in when the ``with`` block ends."""

    wall_s: float = float("nan")
    cpu_s: float = float("nan")  # this process's CPU seconds, all threads
    readings: list[EnergyReading] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def reading(self, domain: str) -> EnergyReading | None:
        return next((r for r in self.readings if r.domain == domain), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
            "readings": [r.to_dict() for r in self.readings],
            "warnings": list(self.warnings),
        }


@contextlib.contextmanager
def measure(meters: Sequence[Meter], sync: Callable[[], None] | None = None) -> Iterator[Window]:
    """Time and meter the ``with`` block.

    ``sync`` (e.g. a GPU synchronise) runs before the window opens and again before it closes,
    so asynchronous device work is inside the window it belongs to. The meters are read just
    outside the clock readings; nothing heavy happens at either end.
    """
    window = Window()
    if sync is not None:
        sync()
    starts = [_begin(m) for m in meters]
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    try:
        yield window
    finally:
        if sync is not None:
            sync()
        window.wall_s = time.perf_counter() - wall0
        window.cpu_s = time.process_time() - cpu0
        for meter, start in zip(meters, starts, strict=True):
            window.readings.extend(_end(meter, start))
        window.warnings = short_window_warnings(window, meters)
        for w in window.warnings:
            log.warning(w)


class _FailedStart:
    def __init__(self, error: Exception) -> None:
        self.error = error


def _begin(meter: Meter) -> Any:
    try:
        return meter.begin()
    except Exception as exc:  # a meter must never cost the run its result
        log.warning("meter %s failed at window start: %s", meter.name, exc)
        return _FailedStart(exc)


def _end(meter: Meter, start: Any) -> list[EnergyReading]:
    if isinstance(start, _FailedStart):
        problem = f"meter failed at window start: {start.error}"
    else:
        try:
            return meter.end(start)
        except Exception as exc:
            log.warning("meter %s failed at window end: %s", meter.name, exc)
            problem = f"meter failed at window end: {exc}"
    return [EnergyReading.unavailable(d, meter.source, problem) for d in meter.domains]


def short_window_warnings(window: Window, meters: Sequence[Meter]) -> list[str]:
    """A warning per meter whose ``min_window_s`` the window did not reach, with the fix."""
    out = []
    for m in meters:
        if m.min_window_s and window.wall_s < m.min_window_s:
            out.append(
                f"window of {window.wall_s:.3g} s is too short for the {m.name} meter "
                f"(needs >= {m.min_window_s:g} s): measure more work per window (more examples "
                "or epochs) or repeat the work inside one window"
            )
    return out


# -- idle baseline and net energy -----------------------------------------------------------


def idle_power(
    meters: Sequence[Meter], seconds: float = 5.0, sleep: Callable[[float], None] = time.sleep
) -> dict[str, float]:
    """Idle power in W per measured domain, from one window of ``seconds`` doing nothing.

    Take it on the same meters just before a block of runs. Estimated domains are left out:
    the CPU-time model counts only this process's CPU time, so it has no idle term.
    ``seconds`` must be finite and within [0, ``MAX_IDLE_S``] (``MeasureError`` otherwise);
    0 measures nothing and returns {} (a zero-length window has no power to divide out).
    """
    if check_idle_s(seconds) == 0:
        return {}
    with measure(meters) as w:
        sleep(seconds)
    if w.wall_s <= 0:
        return {}
    return {
        r.domain: r.energy_j / w.wall_s
        for r in w.readings
        if r.mode == "measured" and r.energy_j is not None
    }


@dataclass(frozen=True)
class EnergySplit:
    """Gross, idle and net energy of one domain over one window, kept apart."""

    domain: str
    gross_j: float
    idle_power_w: float | None
    idle_j: float | None
    net_j: float | None
    mode: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def net_energy(gross_j: float, idle_power_w: float, duration_s: float) -> float:
    """Net energy: gross minus idle power x duration (may be slightly negative from noise)."""
    return gross_j - idle_power_w * duration_s


def split_energy(window: Window, idle_w: dict[str, float]) -> list[EnergySplit]:
    """Gross / idle / net per domain of ``window``; net only where an idle power is known."""
    out = []
    for r in window.readings:
        if r.energy_j is None:
            continue
        p = idle_w.get(r.domain) if r.mode == "measured" else None
        idle_j = None if p is None else p * window.wall_s
        net_j = None if p is None else net_energy(r.energy_j, p, window.wall_s)
        out.append(EnergySplit(r.domain, r.energy_j, p, idle_j, net_j, r.mode, r.source))
    return out


# -- repeats --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """Median and spread of one quantity over repeated windows."""

    median: float
    min: float
    max: float
    n: int

    @property
    def spread_rel(self) -> float:
        """(max - min) / median; inf when the median is 0."""
        if self.median == 0:
            return 0.0 if self.max == self.min else float("inf")
        return (self.max - self.min) / abs(self.median)

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        return cls(
            float(statistics.median(values)), float(min(values)), float(max(values)), len(values)
        )


@dataclass
class RepeatResult:
    windows: list[Window]
    wall_s: Summary
    cpu_s: Summary
    energy_j: dict[str, Summary]  # per domain, only domains with energy in every window
    modes: dict[str, str]  # domain -> mode, so estimates stay labelled
    warnings: list[str]


def repeat(
    fn: Callable[[], Any],
    meters: Sequence[Meter],
    repeats: int = 5,
    warmup: int = 1,
    sync: Callable[[], None] | None = None,
) -> RepeatResult:
    """Run ``fn`` ``warmup`` times unmeasured, then ``repeats`` times each in its own window.

    Warns (in the result and the log) when a quantity's spread reaches 10% of its median, and
    when windows are too short for a meter.
    """
    if repeats < 1:
        raise MeasureError(f"repeats must be >= 1, got {repeats}")
    if warmup < 0:
        raise MeasureError(f"warmup must be >= 0, got {warmup}")
    for _ in range(warmup):
        fn()
    windows = []
    for _ in range(repeats):
        with measure(meters, sync=sync) as w:
            fn()
        windows.append(w)
    window_warnings = list(dict.fromkeys(m for w in windows for m in w.warnings))
    extra: list[str] = []  # found here; the window warnings were logged already
    wall = Summary.of([w.wall_s for w in windows])
    cpu = Summary.of([w.cpu_s for w in windows])
    energy: dict[str, Summary] = {}
    modes: dict[str, str] = {}
    domains = dict.fromkeys(r.domain for w in windows for r in w.readings)
    for d in domains:
        rs = [w.reading(d) for w in windows]
        vals = [r.energy_j for r in rs if r is not None and r.energy_j is not None]
        if len(vals) == len(windows):
            energy[d] = Summary.of(vals)
            modes[d] = rs[0].mode  # type: ignore[union-attr]
        else:
            extra.append(f"{d}: energy unavailable in {len(windows) - len(vals)} window(s)")
    if repeats >= 2:
        for label, s in [("wall time", wall), *((f"{d} energy", s) for d, s in energy.items())]:
            if s.spread_rel >= SPREAD_WARN:
                extra.append(
                    f"{label} varies by {s.spread_rel:.0%} of its median over {s.n} repeats: "
                    "close other programs, fix the CPU frequency governor, or repeat more"
                )
    for msg in extra:
        log.warning(msg)
    return RepeatResult(windows, wall, cpu, energy, modes, window_warnings + extra)
