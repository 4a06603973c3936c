"""Choose the meters for this machine: measure what can be measured, estimate the rest.

Automatic selection (``include=None``): RAPL powercap for the CPU if readable, else the
CPU-time estimate with the reason recorded in every reading; NVML for NVIDIA GPUs when present.
``include`` forces backends by name (a forced backend that cannot work is a ``MeterError``,
except pyRAPL, which degrades to "unavailable" readings); ``exclude`` removes backends from the
automatic choice. Backends left out are listed, with why, in ``MeterSet.skipped``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from harness.energy.base import Meter
from harness.energy.estimate import CpuTimeEstimateMeter, check_cpu_power_w
from harness.energy.nvml import NvmlAdapter, NvmlMeter
from harness.energy.pyrapl_meter import PyRaplMeter
from harness.energy.rapl import RaplMeter
from harness.errors import MeterError

log = logging.getLogger(__name__)

BACKENDS = ("rapl", "pyrapl", "nvml", "cpu-estimate")


class MeterSet(list[Meter]):
    """The chosen meters (a plain list for ``measure``) plus why others were not chosen."""

    def __init__(self, meters: Iterable[Meter] = (), skipped: dict[str, str] | None = None):
        super().__init__(meters)
        self.skipped: dict[str, str] = dict(skipped or {})

    def close(self) -> None:
        for m in self:
            m.close()

    def __enter__(self) -> MeterSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _names(value: Iterable[str] | str | None, what: str) -> set[str] | None:
    if value is None:
        return None
    names = {value} if isinstance(value, str) else set(value)
    unknown = sorted(names - set(BACKENDS))
    if unknown:
        raise MeterError(f"unknown energy backend(s) {unknown} in {what}; known: {list(BACKENDS)}")
    return names


def select_meters(
    include: Iterable[str] | str | None = None,
    exclude: Iterable[str] | str | None = None,
    sysfs_root: str | Path | None = None,
    cpu_power_w: float | None = None,
    model_gpus: Iterable[int] = (),
    nvml_adapter: NvmlAdapter | None = None,
    pyrapl_module: ModuleType | None = None,
) -> MeterSet:
    """Meters for this machine.

    ``model_gpus``: NVML indices of the GPUs the model runs on; every other GPU is reported as
    idle draw, not the model's cost (the default, all GPUs idle, fits the CPU models here).
    ``cpu_power_w`` overrides the CPU-time estimate's watts per logical CPU.
    """
    if cpu_power_w is not None:
        check_cpu_power_w(cpu_power_w)  # refused even where RAPL makes the estimate unused
    forced = _names(include, "include")
    excluded = _names(exclude, "exclude") or set()
    if forced is not None and forced & excluded:
        raise MeterError(f"backend(s) {sorted(forced & excluded)} both included and excluded")
    chosen: list[Meter] = []
    skipped: dict[str, str] = {}

    def wanted(name: str, automatic: bool) -> bool:
        if name in excluded:
            skipped[name] = "excluded by the user"
            return False
        if forced is not None:
            if name not in forced:
                skipped[name] = "not included by the user"
            return name in forced
        if not automatic:
            skipped[name] = "chosen only on request (include it to cross-check rapl)"
        return automatic

    cpu_problem = ""
    if wanted("rapl", automatic=True):
        try:
            chosen.append(RaplMeter(sysfs_root=sysfs_root))
        except MeterError as exc:
            if forced is not None:
                raise
            cpu_problem = str(exc)
            skipped["rapl"] = cpu_problem
    if wanted("pyrapl", automatic=False):
        chosen.append(PyRaplMeter(module=pyrapl_module))
        if any(m.name == "rapl" for m in chosen):
            log.warning("rapl and pyrapl both measure the packages; never add their readings")
    if wanted("nvml", automatic=True):
        try:
            chosen.append(NvmlMeter(adapter=nvml_adapter, model_gpus=model_gpus))
        except MeterError as exc:
            if forced is not None:
                raise
            skipped["nvml"] = str(exc)
    cpu_measured = any(m.name in ("rapl", "pyrapl") for m in chosen)
    estimate_forced = forced is not None and "cpu-estimate" in forced
    if "cpu-estimate" in excluded:
        skipped["cpu-estimate"] = "excluded by the user"
    elif estimate_forced or (forced is None and not cpu_measured):
        reason = f"no CPU energy measured: {cpu_problem}" if cpu_problem else ""
        chosen.append(CpuTimeEstimateMeter(cpu_power_w=cpu_power_w, reason=reason))
    elif forced is not None:
        skipped["cpu-estimate"] = "not included by the user"
    else:
        skipped["cpu-estimate"] = "CPU energy is measured"
    if cpu_problem:
        log.info("CPU energy will be estimated: %s", cpu_problem)
    return MeterSet(chosen, skipped)
