"""pyRAPL (PyPI 0.2.3.1) as a second CPU backend, guarded against its known defects.

That release reads the same powercap files as ``harness.energy.rapl`` but: does not track
wrap-around (a wrapped window gives a negative delta, or None when every socket wrapped),
crashes on machines without a DRAM zone, fails ``setup()`` on multi-die parts and when SMT is
off. It also reports whatever the counters say: a window implying more than the plausible
power per domain (``MAX_CPU_DOMAIN_POWER_W``), or not a number, is unavailable too. Here every
one of those becomes an "unavailable" reading with its reason; this meter never
raises into a run. Prefer the ``rapl`` backend; use this one to cross-check it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from harness.energy.base import (
    MAX_CPU_DOMAIN_POWER_W,
    RAPL_SLACK_S,
    EnergyReading,
    Meter,
    implausible_power,
)

log = logging.getLogger(__name__)

SOURCE = "pyrapl"


def _import_pyrapl() -> ModuleType:
    """Import pyRAPL without letting it configure the root logger.

    Its import calls ``logging.warning`` about an optional MongoDB output, which would install
    a stderr handler on the root logger of whatever program imports it.
    """
    root = logging.getLogger()
    guard = None
    if not root.handlers:
        guard = logging.NullHandler()
        root.addHandler(guard)
    try:
        import pyRAPL
    finally:
        if guard is not None:
            root.removeHandler(guard)
    return pyRAPL


class PyRaplMeter(Meter):
    """Package and DRAM energy per socket through pyRAPL's ``Measurement``."""

    name = "pyrapl"
    mode = "measured"
    min_window_s = 0.2

    def __init__(
        self, module: ModuleType | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self._problem = ""  # set when pyRAPL cannot measure at all
        self._note = ""
        self._sockets: list[int] = [0]
        self._has_dram = False
        self._pyrapl: Any = module
        if self._pyrapl is None:
            try:
                self._pyrapl = _import_pyrapl()
            except Exception as exc:  # ImportError, or its own import-time failures
                self._problem = f"pyRAPL not importable ({exc}); pip install pyRAPL"
                return
        self._setup()

    def _setup(self) -> None:
        nv = self._pyrapl
        try:
            nv.setup(devices=[nv.Device.PKG, nv.Device.DRAM])
            self._has_dram = True
        except Exception as first:
            # pyRAPL crashes on machines without a DRAM zone: retry with the package only.
            try:
                nv.setup(devices=[nv.Device.PKG])
                self._note = f"no DRAM zone for pyRAPL ({type(first).__name__})"
            except Exception as exc:
                self._problem = (
                    f"pyRAPL setup failed ({type(exc).__name__}: {exc}); it fails on "
                    "multi-die CPUs, with SMT off, without RAPL, or without read access to "
                    "energy_uj; use the rapl backend instead"
                )
                log.warning(self._problem)
                return
        try:
            self._sockets = sorted(int(s) for s in nv._sensor._socket_ids)
        except Exception:
            self._sockets = [0]

    @property
    def domains(self) -> tuple[str, ...]:
        names = [f"cpu-package-{s}" for s in self._sockets]
        if self._has_dram:
            names += [f"dram-{s}" for s in self._sockets]
        return tuple(names)

    @property
    def source(self) -> str:
        return SOURCE

    @property
    def note(self) -> str:
        return self._problem or self._note

    def _all_unavailable(self, reason: str) -> list[EnergyReading]:
        return [EnergyReading.unavailable(d, SOURCE, reason) for d in self.domains]

    def begin(self) -> Any:
        if self._problem:
            return None
        try:
            m = self._pyrapl.Measurement("harness-window")
            m.begin()
            return m, self._clock()
        except Exception as exc:
            return f"pyRAPL begin failed: {type(exc).__name__}: {exc}"

    def end(self, start: Any) -> list[EnergyReading]:
        if self._problem:
            return self._all_unavailable(self._problem)
        if isinstance(start, str):
            return self._all_unavailable(start)
        measurement, t0 = start
        try:
            measurement.end()
            result = measurement.result
        except Exception as exc:
            return self._all_unavailable(f"pyRAPL end failed: {type(exc).__name__}: {exc}")
        duration_s = self._clock() - t0
        out = self._per_socket("cpu-package", getattr(result, "pkg", None), duration_s)
        if self._has_dram:
            out += self._per_socket("dram", getattr(result, "dram", None), duration_s)
        return out

    def _per_socket(self, kind: str, values: Any, duration_s: float) -> list[EnergyReading]:
        wrapped = (
            "pyRAPL 0.2.3.1 does not track counter wrap-around; the counter wrapped inside "
            "this window (use the rapl backend, which does)"
        )
        out = []
        for s in self._sockets:
            domain = f"{kind}-{s}"
            if values is None:
                out.append(
                    EnergyReading.unavailable(domain, SOURCE, f"pyRAPL gave None: {wrapped}")
                )
                continue
            try:
                value_uj = float(values[s])
            except (IndexError, TypeError, ValueError):
                out.append(
                    EnergyReading.unavailable(
                        domain, SOURCE, f"pyRAPL gave no value for socket {s}"
                    )
                )
                continue
            if value_uj < 0:
                out.append(
                    EnergyReading.unavailable(
                        domain, SOURCE, f"negative delta {value_uj:g} uJ: {wrapped}"
                    )
                )
                continue
            why = implausible_power(
                value_uj * 1e-6, duration_s, MAX_CPU_DOMAIN_POWER_W, RAPL_SLACK_S
            )
            if why:
                log.warning("pyRAPL %s: %s", domain, why)
                out.append(EnergyReading.unavailable(domain, SOURCE, f"not plausible: {why}"))
                continue
            out.append(EnergyReading(domain, value_uj * 1e-6, "measured", SOURCE))
        return out
