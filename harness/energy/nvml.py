"""GPU energy through NVML (``nvidia-ml-py``, imported as ``pynvml``).

All NVML calls go through a tiny adapter (``NvmlAdapter``) so tests can replay readings. The
meter uses the cumulative energy counter (mJ, Volta and newer) where the GPU has one, else it
samples power in a background thread and integrates it (trapezoid). NVML counters update about
every 100 ms: short windows are warned about and a window that reads exactly 0 J is reported as
unavailable, never as 0 J. A GPU the model did not run on is reported as idle draw that is not
the model's cost (``attributable=False``). A counter going back, a window implying more than
``MAX_GPU_POWER_W`` or a power sample above it, or a clock going back, is unavailable with the
reason: a meter fault is never a measurement. Under MIG, figures are for the whole physical GPU.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from harness.energy.base import (
    MAX_GPU_POWER_W,
    NVML_SLACK_S,
    EnergyReading,
    Meter,
    check_positive,
    implausible_power,
)
from harness.errors import MeterError

log = logging.getLogger(__name__)

COUNTER_SOURCE = "nvml-energy-counter"
POWER_SOURCE = "nvml-power-integration"
COUNTER_MIN_WINDOW_S = 2.0  # counter ticks ~100 ms; ~20 s needed for 1% quantisation error
POWER_MIN_WINDOW_S = 1.0
MAX_SAMPLES = 1 << 20  # per GPU; ~29 h at 0.1 s


class NvmlError(Exception):
    """An NVML call failed (library missing, no such GPU, not supported)."""


class NvmlAdapter(Protocol):
    """The few NVML calls the harness makes; indices are NVML device indices."""

    def init(self) -> None: ...
    def shutdown(self) -> None: ...
    def device_count(self) -> int: ...
    def name(self, index: int) -> str: ...
    def total_energy_mj(self, index: int) -> int: ...
    def power_mw(self, index: int) -> int: ...
    def mig_enabled(self, index: int) -> bool: ...
    def memory_total_bytes(self, index: int) -> int: ...
    def driver_version(self) -> str: ...


class PynvmlAdapter:
    """``NvmlAdapter`` over NVIDIA's ``pynvml`` module; every failure becomes ``NvmlError``."""

    def __init__(self) -> None:
        try:
            import pynvml
        except ImportError as exc:
            raise NvmlError("nvidia-ml-py is not installed (pip install nvidia-ml-py)") from exc
        self._nv = pynvml
        self._handles: dict[int, Any] = {}

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except self._nv.NVMLError as exc:
            raise NvmlError(f"{fn.__name__}: {exc}") from exc

    def _handle(self, index: int) -> Any:
        if index not in self._handles:
            self._handles[index] = self._call(self._nv.nvmlDeviceGetHandleByIndex, index)
        return self._handles[index]

    def init(self) -> None:
        self._call(self._nv.nvmlInit)

    def shutdown(self) -> None:
        self._call(self._nv.nvmlShutdown)

    def device_count(self) -> int:
        return int(self._call(self._nv.nvmlDeviceGetCount))

    def name(self, index: int) -> str:
        name = self._call(self._nv.nvmlDeviceGetName, self._handle(index))
        return name.decode() if isinstance(name, bytes) else str(name)

    def total_energy_mj(self, index: int) -> int:
        return int(self._call(self._nv.nvmlDeviceGetTotalEnergyConsumption, self._handle(index)))

    def power_mw(self, index: int) -> int:
        # Instantaneous power where the driver offers it (GetPowerUsage is a 1 s average on
        # Ampere and newer), else the averaged value.
        try:
            field_id = self._nv.NVML_FI_DEV_POWER_INSTANT
            (value,) = self._nv.nvmlDeviceGetFieldValues(self._handle(index), [field_id])
            if value.nvmlReturn == self._nv.NVML_SUCCESS:
                return int(value.value.uiVal)
        except (AttributeError, self._nv.NVMLError, ValueError):
            pass
        return int(self._call(self._nv.nvmlDeviceGetPowerUsage, self._handle(index)))

    def mig_enabled(self, index: int) -> bool:
        try:
            current, _pending = self._call(self._nv.nvmlDeviceGetMigMode, self._handle(index))
        except NvmlError:
            return False  # GPUs without MIG support answer "not supported"
        return bool(current)

    def memory_total_bytes(self, index: int) -> int:
        return int(self._call(self._nv.nvmlDeviceGetMemoryInfo, self._handle(index)).total)

    def driver_version(self) -> str:
        v = self._call(self._nv.nvmlSystemGetDriverVersion)
        return v.decode() if isinstance(v, bytes) else str(v)


class NvmlMeter(Meter):
    """Energy of each NVIDIA GPU: counter where available, integrated power otherwise."""

    name = "nvml"
    mode = "measured"

    def __init__(
        self,
        adapter: NvmlAdapter | None = None,
        model_gpus: Iterable[int] = (),
        gpus: Iterable[int] | None = None,
        sample_interval_s: float = 0.1,
        start_sampler: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        sample_interval_s = check_positive("sample_interval_s", sample_interval_s)  # before init
        try:
            self._nv = adapter if adapter is not None else PynvmlAdapter()
            self._nv.init()
            count = self._nv.device_count()
        except NvmlError as exc:
            raise MeterError(f"NVML: not usable ({exc}); needs an NVIDIA GPU and driver") from exc
        if count < 1:
            self._shutdown_quietly()
            raise MeterError("NVML: no NVIDIA GPU found")
        self.gpus = list(range(count)) if gpus is None else list(gpus)
        self.model_gpus = frozenset(model_gpus)
        self._clock = clock
        self.counter_gpus: set[int] = set()
        self.mig_gpus: set[int] = set()
        self.names: dict[int, str] = {}
        for i in self.gpus:
            try:
                self.names[i] = self._nv.name(i)
                if self._nv.mig_enabled(i):
                    self.mig_gpus.add(i)
            except NvmlError as exc:
                self._shutdown_quietly()
                raise MeterError(f"NVML: cannot query GPU {i} ({exc})") from exc
            try:
                self._nv.total_energy_mj(i)
                self.counter_gpus.add(i)
            except NvmlError:
                log.info("GPU %d has no energy counter; integrating sampled power", i)
        self.power_gpus = [i for i in self.gpus if i not in self.counter_gpus]
        self.min_window_s = COUNTER_MIN_WINDOW_S if self.counter_gpus else POWER_MIN_WINDOW_S
        self.sample_interval_s = sample_interval_s
        self._samples: dict[int, tuple[list[float], list[float]]] = {
            i: ([], []) for i in self.power_gpus
        }
        self._lock = threading.Lock()
        self._closed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self.power_gpus and start_sampler:
            self._thread = threading.Thread(
                target=self._sample_loop, name="nvml-power", daemon=True
            )
            self._thread.start()

    # -- power sampling ---------------------------------------------------------------------
    def sample(self) -> float:
        """Record one power sample per power-path GPU; returns its timestamp."""
        t = self._clock()
        for i in self.power_gpus:
            try:
                p_w = self._nv.power_mw(i) / 1000.0
            except NvmlError as exc:
                log.debug("power sample of GPU %d failed: %s", i, exc)
                continue
            with self._lock:
                times, powers = self._samples[i]
                if times and t < times[-1]:
                    continue  # a late sample from the thread; keep the series ordered
                times.append(t)
                powers.append(p_w)
                if len(times) > MAX_SAMPLES:
                    del times[: MAX_SAMPLES // 2], powers[: MAX_SAMPLES // 2]
        return t

    def _sample_loop(self) -> None:
        while not self._stop.wait(self.sample_interval_s):
            self.sample()

    def _integrate(self, i: int, t0: float, t1: float) -> tuple[float, list[float]]:
        """Trapezoid integral of GPU ``i``'s power over [t0, t1] in J, and the samples used."""
        with self._lock:
            times, powers = self._samples[i]
            lo = bisect.bisect_left(times, t0)
            hi = bisect.bisect_right(times, t1)
            ts, ps = times[lo:hi], powers[lo:hi]
        energy_j = sum((ts[k + 1] - ts[k]) * (ps[k + 1] + ps[k]) / 2.0 for k in range(len(ts) - 1))
        return energy_j, ps

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        if not self._closed:
            self._closed = True
            self._shutdown_quietly()

    def _shutdown_quietly(self) -> None:
        try:
            self._nv.shutdown()  # NVML counts init/shutdown pairs
        except NvmlError as exc:
            log.debug("nvmlShutdown failed: %s", exc)

    # -- the meter interface ----------------------------------------------------------------
    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(f"gpu-{i}" for i in self.gpus)

    @property
    def source(self) -> str:
        return COUNTER_SOURCE if self.counter_gpus else POWER_SOURCE

    @property
    def note(self) -> str:
        parts = [f"gpu-{i}: {self.names.get(i, '?')}" for i in self.gpus]
        if self.mig_gpus:
            parts.append(f"MIG on GPU {sorted(self.mig_gpus)}: figures are the whole GPU's")
        return "; ".join(parts)

    def begin(self) -> dict[str, Any]:
        start: dict[str, Any] = {"t": self._clock(), "counter": {}}
        for i in self.counter_gpus:
            try:
                start["counter"][i] = self._nv.total_energy_mj(i)
            except NvmlError as exc:
                start["counter"][i] = f"energy counter read failed at start: {exc}"
        if self.power_gpus:
            start["t"] = self.sample()
        return start

    def end(self, start: Any) -> list[EnergyReading]:
        t_end = self.sample() if self.power_gpus else self._clock()
        duration_s = t_end - start["t"]
        out = []
        if duration_s < 0:
            why = f"the clock went backwards ({duration_s:.3g} s window)"
            return [
                self._finish(
                    i, None, COUNTER_SOURCE if i in self.counter_gpus else POWER_SOURCE, [why]
                )
                for i in self.gpus
            ]
        for i in self.gpus:
            if i in self.counter_gpus:
                out.append(self._counter_reading(i, start["counter"][i], duration_s))
            else:
                out.append(self._power_reading(i, start["t"], t_end, duration_s))
        return out

    def _notes(self, i: int) -> tuple[list[str], bool]:
        notes = []
        if i in self.mig_gpus:
            notes.append("MIG enabled: energy is for the whole physical GPU, all instances")
        attributable = i in self.model_gpus
        if not attributable:
            where = f"GPU {sorted(self.model_gpus)}" if self.model_gpus else "CPU"
            notes.insert(0, f"idle: model ran on {where}; idle draw, not the model's cost")
        return notes, attributable

    def _finish(
        self, i: int, energy_j: float | None, source: str, problems: list[str]
    ) -> EnergyReading:
        notes, attributable = self._notes(i)
        reason = "; ".join(problems + notes)
        for p in problems:
            log.warning("gpu-%d: %s", i, p)
        if energy_j is None:
            return EnergyReading(f"gpu-{i}", None, "unavailable", source, reason, attributable)
        return EnergyReading(f"gpu-{i}", energy_j, "measured", source, reason, attributable)

    def _counter_reading(self, i: int, first: int | str, duration_s: float) -> EnergyReading:
        if isinstance(first, str):
            return self._finish(i, None, COUNTER_SOURCE, [first])
        try:
            last = self._nv.total_energy_mj(i)
        except NvmlError as exc:
            return self._finish(i, None, COUNTER_SOURCE, [f"energy counter read failed: {exc}"])
        delta_mj = last - first
        if delta_mj < 0:
            return self._finish(
                i, None, COUNTER_SOURCE, ["energy counter went back (driver reloaded?)"]
            )
        if delta_mj == 0:
            return self._finish(
                i,
                None,
                COUNTER_SOURCE,
                [
                    f"0 J in a {duration_s:.3g} s window: shorter than the counter's ~100 ms "
                    f"update period; measure >= {COUNTER_MIN_WINDOW_S:g} s (20 s for 1%)"
                ],
            )
        why = implausible_power(delta_mj / 1000.0, duration_s, MAX_GPU_POWER_W, NVML_SLACK_S)
        if why:
            return self._finish(i, None, COUNTER_SOURCE, [f"energy counter not plausible: {why}"])
        problems = []
        if duration_s < COUNTER_MIN_WINDOW_S:
            problems.append(
                f"window of {duration_s:.3g} s is short for the NVML counter (~100 ms ticks): "
                f"measure >= {COUNTER_MIN_WINDOW_S:g} s, 20 s for 1% error"
            )
        return self._finish(i, delta_mj / 1000.0, COUNTER_SOURCE, problems)

    def _power_reading(self, i: int, t0: float, t1: float, duration_s: float) -> EnergyReading:
        energy_j, powers = self._integrate(i, t0, t1)
        if len(powers) < 2:
            return self._finish(
                i, None, POWER_SOURCE, [f"only {len(powers)} power sample(s) in the window"]
            )
        bad = [p for p in powers if not 0 <= p <= MAX_GPU_POWER_W]  # NaN fails both tests too
        if bad:
            return self._finish(
                i,
                None,
                POWER_SOURCE,
                [
                    f"{len(bad)} power sample(s) not plausible, e.g. {bad[0]:.0f} W (outside "
                    f"0 to {MAX_GPU_POWER_W:.0f} W)"
                ],
            )
        if energy_j == 0.0:
            return self._finish(
                i, None, POWER_SOURCE, ["power read 0 W throughout the window; not trusted"]
            )
        problems = []
        if duration_s < POWER_MIN_WINDOW_S:
            problems.append(
                f"window of {duration_s:.3g} s is short for power sampling every "
                f"{self.sample_interval_s:g} s: measure >= {POWER_MIN_WINDOW_S:g} s"
            )
        return self._finish(i, energy_j, POWER_SOURCE, problems)
