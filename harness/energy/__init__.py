"""Energy meters: one interface (``Meter``), several backends, labelled readings.

Use ``select_meters()`` for this machine's meters and ``harness.measure.measure`` for windows.
Every reading says whether it was measured, estimated or is unavailable, and where it came from.
"""

from __future__ import annotations

from harness.energy.base import (
    MODES,
    EnergyReading,
    Meter,
)
from harness.energy.estimate import CpuTimeEstimateMeter, operation_energy
from harness.energy.nvml import NvmlMeter
from harness.energy.pyrapl_meter import PyRaplMeter
from harness.energy.rapl import RaplMeter
from harness.energy.select import BACKENDS, MeterSet, select_meters

__all__ = [
    "BACKENDS",
    "MODES",
    "CpuTimeEstimateMeter",
    "EnergyReading",
    "Meter",
    "MeterSet",
    "NvmlMeter",
    "PyRaplMeter",
    "RaplMeter",
    "operation_energy",
    "select_meters",
]
