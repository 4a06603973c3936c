"""The meter interface every energy backend implements, and the reading it returns.

A meter opens a window with ``begin()`` (an opaque start state) and closes it with
``end(start)`` (a list of readings, one per domain). Meters never sleep or compute at either
end: a window costs a few file or library reads, so it stays far below 1% of any real run.
Hardware access lives in the backend modules; windows, idle baselines and repeats live in
``harness.measure``, which never touches sysfs or NVML itself.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

MODES = ("measured", "estimated", "unavailable")

# Plausibility bounds: a window implying more power than this is a meter fault (a counter
# reset, a misread, a wrap that was not one), so its reading is "unavailable", never measured.
# Generous on purpose: the largest server sockets draw ~500 W, GPU boards ~1,200 W.
MAX_CPU_DOMAIN_POWER_W = 1000.0  # per RAPL package or DRAM domain
MAX_GPU_POWER_W = 2000.0  # per GPU
# Counters tick (RAPL ~1 ms, NVML ~100 ms) and a read may be descheduled: energy up to this
# many seconds at the bound is allowed on top of the window's duration.
RAPL_SLACK_S = 0.05
NVML_SLACK_S = 0.25


def implausible_power(
    energy_j: float, duration_s: float, max_power_w: float, slack_s: float
) -> str:
    """Why ``energy_j`` over ``duration_s`` cannot be right, or "" when it is plausible."""
    if not math.isfinite(energy_j) or energy_j < 0:
        return f"energy of {energy_j!r} J is not a finite amount >= 0"
    if not math.isfinite(duration_s) or duration_s < 0:
        return f"the clock went backwards ({duration_s:.3g} s window)"
    if energy_j <= max_power_w * (duration_s + slack_s):
        return ""
    power = f"{energy_j / duration_s:.0f} W" if duration_s > 0 else "unbounded power"
    return (
        f"{energy_j:.6g} J in {duration_s:.3g} s is {power}, above the plausible "
        f"{max_power_w:.0f} W"
    )


def check_positive(name: str, value: float) -> float:
    """``value`` as a float when it is finite and > 0; else ValueError naming ``name``."""
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0 (got {value!r})")
    return float(value)


@dataclass(frozen=True)
class EnergyReading:
    """Energy of one domain over one window.

    ``energy_j`` is None exactly when ``mode`` is "unavailable" (never a silent 0 J).
    ``reason`` explains an unavailable reading or carries a warning (short window, MIG, ...).
    ``attributable`` is False for energy that is not the model's cost, such as the idle draw
    of a GPU the model did not run on: reports must never add it to the model's energy.
    """

    domain: str
    energy_j: float | None
    mode: str
    source: str
    reason: str = ""
    attributable: bool = True
    meter: str = ""  # the backend that read it (set by harness.measure)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if (self.energy_j is None) != (self.mode == "unavailable"):
            raise ValueError(
                f"{self.domain}: energy_j must be None exactly when mode is 'unavailable' "
                f"(got energy_j={self.energy_j!r}, mode={self.mode!r})"
            )
        if self.energy_j is not None and not (
            isinstance(self.energy_j, int | float)
            and math.isfinite(self.energy_j)
            and self.energy_j >= 0
        ):
            # null in a stored record means unavailable: a non-finite figure must not get there
            raise ValueError(
                f"{self.domain}: energy_j must be a finite number of joules >= 0 "
                f"(got {self.energy_j!r})"
            )
        if self.mode == "unavailable" and not self.reason:
            raise ValueError(f"{self.domain}: an unavailable reading needs a reason")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def unavailable(cls, domain: str, source: str, reason: str) -> EnergyReading:
        return cls(domain=domain, energy_j=None, mode="unavailable", source=source, reason=reason)


class Meter(ABC):
    """One backend measuring (or estimating) one or more domains.

    ``name`` is the backend name users pass to ``select_meters`` ("rapl", "pyrapl", "nvml",
    "cpu-estimate"); ``mode`` what its readings normally are; ``min_window_s`` the shortest
    window it can resolve to about 1% (used by ``harness.measure`` to warn).
    """

    name: str = ""
    mode: str = "measured"
    min_window_s: float = 0.0

    @property
    @abstractmethod
    def domains(self) -> tuple[str, ...]:
        """Domains this meter reports, as known before any window."""

    @property
    def source(self) -> str:
        """Label stored with each reading."""
        return self.name

    @property
    def note(self) -> str:
        """Anything a user should know about this meter (an estimate's reason, MIG, ...)."""
        return ""

    @abstractmethod
    def begin(self) -> Any:
        """Open a window; return the state ``end`` needs. Windows may overlap."""

    @abstractmethod
    def end(self, start: Any) -> list[EnergyReading]:
        """Close the window opened by ``begin``; one reading per domain."""

    def close(self) -> None:
        """Stop background threads and release the hardware; safe to call twice."""
        return None  # most meters hold nothing

    def __repr__(self) -> str:
        return f"{type(self).__name__}(domains={self.domains!r})"
