"""Labelled estimates for when nothing can be measured. Every reading here is "estimated".

Two models:

* CPU-time model (what CodeCarbon does without RAPL): energy = process CPU seconds x power per
  logical CPU. The power comes from the processor's TDP divided by its hardware threads when
  the model is in ``TDP_TABLE``, else an explicit assumed 4 W per logical CPU (CodeCarbon's
  constant), or whatever the user passes as ``cpu_power_w``. It counts only this process's CPU
  time, so it has no idle term.
* Operation-count model (the paper's own argument): multiplications and additions times the
  Horowitz (ISSCC 2014, 45 nm) energy per operation. It ranks algorithms; it does not predict
  what a meter would read on a modern chip (several times less).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from harness.energy.base import EnergyReading, Meter
from harness.errors import MeterError

log = logging.getLogger(__name__)

ASSUMED_W_PER_LOGICAL_CPU = 4.0  # CodeCarbon's constant when only the thread count is known
# A user-set power above this per logical CPU is a typo (whole sockets draw ~500 W at most).
MAX_W_PER_LOGICAL_CPU = 1000.0


def check_cpu_power_w(cpu_power_w: float) -> float:
    """``cpu_power_w`` as a float when it is watts per logical CPU in (0, 1000]; else MeterError.

    An infinite or NaN power would give an estimate no record can store (it would read back as
    null, which means unavailable), so it is refused here, before any window.
    """
    if not (
        isinstance(cpu_power_w, int | float)
        and math.isfinite(cpu_power_w)
        and 0 < cpu_power_w <= MAX_W_PER_LOGICAL_CPU
    ):
        raise MeterError(
            f"bad cpu_power_w={cpu_power_w!r}: must be a finite number of watts per logical "
            f"CPU, > 0 and <= {MAX_W_PER_LOGICAL_CPU:g}"
        )
    return float(cpu_power_w)


# Processor name fragment -> (TDP in W, hardware threads of one processor), vendor data sheets.
TDP_TABLE: dict[str, tuple[float, int]] = {
    "EPYC 7763": (280.0, 128),
    "EPYC 9654": (360.0, 192),
    "Xeon(R) Platinum 8380": (270.0, 80),
    "Xeon(R) Platinum 8480+": (350.0, 112),
    "Xeon(R) Gold 6248": (150.0, 40),
    "Core(TM) i9-13900K": (125.0, 32),
    "Ryzen 9 7950X": (170.0, 32),
}

# Horowitz, "Computing's energy problem", ISSCC 2014, 45 nm, energy per operation in pJ.
HOROWITZ_45NM_PJ: dict[str, tuple[float, float]] = {
    # precision: (multiply, add)
    "fp32": (3.7, 0.9),
    "fp16": (1.1, 0.4),
    "int32": (3.1, 0.1),
}


def cpu_power_per_logical_cpu(
    cpu_power_w: float | None = None, cpu_model: str | None = None
) -> tuple[float, str]:
    """(watts per logical CPU, how that number was obtained) for the CPU-time model."""
    if cpu_power_w is not None:
        cpu_power_w = check_cpu_power_w(cpu_power_w)
        return cpu_power_w, f"{cpu_power_w} W/logical CPU, user-set"
    if cpu_model:
        for fragment, (tdp_w, threads) in TDP_TABLE.items():
            if fragment in cpu_model:
                per_cpu_w = tdp_w / threads
                return per_cpu_w, (
                    f"{per_cpu_w:.3g} W/logical CPU = TDP {tdp_w:g} W / {threads} threads "
                    f"of {fragment}"
                )
    return ASSUMED_W_PER_LOGICAL_CPU, f"{ASSUMED_W_PER_LOGICAL_CPU} W/logical CPU, assumed"


def read_cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str | None:
    """The processor's name, or None where it cannot be read."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware")):
                    return line.split(":", 1)[1].strip() or None
    except OSError:
        return None
    return None


class CpuTimeEstimateMeter(Meter):
    """Estimated CPU energy of this process: CPU seconds x watts per logical CPU."""

    name = "cpu-estimate"
    mode = "estimated"
    min_window_s = 0.0  # process CPU time is read at ns resolution: no quantisation to warn of

    def __init__(
        self,
        cpu_power_w: float | None = None,
        cpu_model: str | None = None,
        reason: str = "",
        domain: str = "cpu",
    ) -> None:
        if cpu_model is None:
            cpu_model = read_cpu_model()
        self.power_w, how = cpu_power_per_logical_cpu(cpu_power_w, cpu_model)
        self._source = f"cpu-time-model({how})"
        self._reason = reason  # why nothing could be measured, kept with every reading
        self._domain = domain

    @property
    def domains(self) -> tuple[str, ...]:
        return (self._domain,)

    @property
    def source(self) -> str:
        return self._source

    @property
    def note(self) -> str:
        return self._reason

    def begin(self) -> float:
        return time.process_time()

    def end(self, start: Any) -> list[EnergyReading]:
        cpu_s = max(0.0, time.process_time() - float(start))
        return [
            EnergyReading(
                domain=self._domain,
                energy_j=cpu_s * self.power_w,
                mode="estimated",
                source=self._source,
                reason=self._reason,
            )
        ]


def operation_energy(
    mults: int, adds: int | None = None, precision: str = "fp32", domain: str = "operations"
) -> EnergyReading:
    """Estimated energy of ``mults`` multiplications and ``adds`` additions (Horowitz 45 nm).

    By default every multiplication comes with one addition (multiply-accumulate), which is
    what dense and sparse products do. Memory traffic is not included.
    """
    if precision not in HOROWITZ_45NM_PJ:
        raise ValueError(f"precision must be one of {sorted(HOROWITZ_45NM_PJ)}, got {precision!r}")
    mults = int(mults)
    adds = mults if adds is None else int(adds)
    if mults < 0 or adds < 0:
        raise ValueError(f"operation counts must be >= 0, got mults={mults}, adds={adds}")
    mult_pj, add_pj = HOROWITZ_45NM_PJ[precision]
    energy_j = (mults * mult_pj + adds * add_pj) * 1e-12
    return EnergyReading(
        domain=domain,
        energy_j=energy_j,
        mode="estimated",
        source=(
            f"op-count-model(Horowitz ISSCC 2014 45 nm, {precision}: "
            f"mult {mult_pj} pJ, add {add_pj} pJ)"
        ),
        reason=(
            f"{mults} mults + {adds} adds; arithmetic only (no memory traffic); ranks "
            "algorithms, modern chips use several times less"
        ),
    )
