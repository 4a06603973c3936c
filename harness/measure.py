"""The measurement protocol: windows, idle baseline, net energy, short-window warnings.

This layer never touches sysfs or NVML; it only calls the meters' ``begin``/``end``::

    meters = harness.energy.select_meters()
    with measure(meters) as w:
        ...work...            # warm-up (JIT compilation) must happen before, outside
    w.wall_s, w.cpu_s, w.readings
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.energy.base import EnergyReading, Meter
from harness.errors import UserError
from harness.record import EnergyRow

log = logging.getLogger(__name__)

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
            return [dataclasses.replace(r, meter=meter.name) for r in meter.end(start)]
        except Exception as exc:
            log.warning("meter %s failed at window end: %s", meter.name, exc)
            problem = f"meter failed at window end: {exc}"
    return [
        dataclasses.replace(EnergyReading.unavailable(d, meter.source, problem), meter=meter.name)
        for d in meter.domains
    ]


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


def net_energy(gross_j: float, idle_power_w: float, duration_s: float) -> float:
    """Net energy: gross minus idle power x duration (may be slightly negative from noise)."""
    return gross_j - idle_power_w * duration_s


def energy_rows(window: Window, idle_w: dict[str, float]) -> list[EnergyRow]:
    """One long-form row per domain of ``window``: gross, and idle/net where the domain's idle
    power was measured. Unavailable readings stay, with their reason."""
    out = []
    for r in window.readings:
        p = idle_w.get(r.domain) if r.mode == "measured" and r.energy_j is not None else None
        out.append(
            EnergyRow(
                domain=r.domain,
                device="gpu" if r.domain.startswith("gpu") else "cpu",
                meter=r.meter,
                mode=r.mode,
                source=r.source,
                attributable=r.attributable,
                gross_j=r.energy_j,
                idle_power_w=p,
                idle_j=None if p is None else p * window.wall_s,
                net_j=None if p is None else net_energy(r.energy_j, p, window.wall_s),  # type: ignore[arg-type]
                reason=r.reason,
            )
        )
    return out
