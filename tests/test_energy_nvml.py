"""NVML meter against replayed readings; the real library only where an NVIDIA GPU exists."""

from __future__ import annotations

import logging
import time

import pytest

from harness.energy import select_meters
from harness.energy.nvml import NvmlError, NvmlMeter, PynvmlAdapter
from harness.errors import MeterError
from harness.measure import measure


class ReplayNvml:
    """Replays scripted NVML answers: each call takes the next value, the last one repeats."""

    def __init__(self, gpus: list[dict], fail_init: bool = False) -> None:
        self.gpus = gpus
        self.fail_init = fail_init
        self.shutdowns = 0

    @staticmethod
    def _next(queue: list):
        value = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(value, Exception):
            raise value
        return value

    def init(self) -> None:
        if self.fail_init:
            raise NvmlError("nvmlInit: NVML Shared Library Not Found")

    def shutdown(self) -> None:
        self.shutdowns += 1

    def device_count(self) -> int:
        return len(self.gpus)

    def name(self, index: int) -> str:
        return self.gpus[index].get("name", "Replay GPU")

    def total_energy_mj(self, index: int) -> int:
        energy = self.gpus[index].get("energy_mj")
        if energy is None:
            raise NvmlError("nvmlDeviceGetTotalEnergyConsumption: Not Supported")
        return self._next(energy)

    def power_mw(self, index: int) -> int:
        return self._next(self.gpus[index]["power_mw"])

    def mig_enabled(self, index: int) -> bool:
        return self.gpus[index].get("mig", False)

    def memory_total_bytes(self, index: int) -> int:
        return 80 * 2**30

    def driver_version(self) -> str:
        return "550.54"


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def counter_meter(energies: list, clock: Clock, **kw) -> NvmlMeter:
    nv = ReplayNvml([{"energy_mj": energies, **kw.pop("gpu", {})}])
    return NvmlMeter(adapter=nv, clock=clock, **kw)


def test_counter_path_exact_joules():
    clock = Clock()
    # probe at start-up, then begin, then end
    m = counter_meter([5_000, 5_000, 65_000], clock, model_gpus=[0])
    assert m.counter_gpus == {0} and m.min_window_s == 2.0
    start = m.begin()
    clock.t = 10.0
    (r,) = m.end(start)
    assert (r.domain, r.energy_j, r.mode) == ("gpu-0", 60.0, "measured")
    assert r.source == "nvml-energy-counter" and r.attributable and r.reason == ""


def test_zero_joule_window_is_unavailable_and_warned(caplog):
    clock = Clock()
    m = counter_meter([7_000], clock, model_gpus=[0])
    start = m.begin()
    clock.t = 0.05
    with caplog.at_level(logging.WARNING):
        (r,) = m.end(start)
    assert r.mode == "unavailable" and r.energy_j is None
    assert "0 J" in r.reason and "100 ms" in r.reason
    assert "0 J" in caplog.text


def test_short_counter_window_warned(caplog):
    clock = Clock()
    m = counter_meter([0, 0, 1_500], clock, model_gpus=[0])
    start = m.begin()
    clock.t = 0.5
    with caplog.at_level(logging.WARNING):
        (r,) = m.end(start)
    assert r.energy_j == 1.5 and r.mode == "measured"
    assert "short" in r.reason and "20 s" in r.reason
    assert "short" in caplog.text


def test_counter_going_back_is_unavailable():
    clock = Clock()
    m = counter_meter([9_000, 9_000, 10], clock, model_gpus=[0])
    start = m.begin()
    clock.t = 5.0
    (r,) = m.end(start)
    assert r.mode == "unavailable" and "went back" in r.reason


def test_power_integration_trapezoid():
    clock = Clock()
    nv = ReplayNvml([{"energy_mj": None, "power_mw": [100_000, 200_000, 200_000, 100_000]}])
    m = NvmlMeter(adapter=nv, model_gpus=[0], clock=clock, start_sampler=False)
    assert m.power_gpus == [0] and m.min_window_s == 1.0
    start = m.begin()  # samples 100 W at t=0
    for t in (1.0, 2.0):
        clock.t = t
        m.sample()  # 200 W, 200 W
    clock.t = 3.0
    (r,) = m.end(start)  # samples 100 W at t=3
    # (100+200)/2 + 200 + (200+100)/2 = 500 J
    assert r.energy_j == pytest.approx(500.0)
    assert r.source == "nvml-power-integration" and r.mode == "measured" and r.reason == ""


def test_power_integration_ignores_samples_outside_window():
    clock = Clock()
    nv = ReplayNvml([{"energy_mj": None, "power_mw": [999_000, 50_000]}])
    m = NvmlMeter(adapter=nv, model_gpus=[0], clock=clock, start_sampler=False)
    m.sample()  # 999 W at t=0, before the window
    clock.t = 1.0
    start = m.begin()
    clock.t = 3.0
    (r,) = m.end(start)
    assert r.energy_j == pytest.approx(100.0)


def test_power_zero_watts_is_unavailable():
    clock = Clock()
    nv = ReplayNvml([{"energy_mj": None, "power_mw": [0]}])
    m = NvmlMeter(adapter=nv, model_gpus=[0], clock=clock, start_sampler=False)
    start = m.begin()
    clock.t = 2.0
    (r,) = m.end(start)
    assert r.mode == "unavailable" and "0 W" in r.reason


def test_power_sampler_thread_integrates():
    nv = ReplayNvml([{"energy_mj": None, "power_mw": [50_000]}])
    m = NvmlMeter(adapter=nv, model_gpus=[0], sample_interval_s=0.01)
    try:
        with measure([m]) as w:
            time.sleep(0.3)
        (r,) = w.readings
        times, _ = m._samples[0]
        assert len(times) > 5  # the thread sampled inside the window
        assert r.energy_j == pytest.approx(50.0 * w.wall_s, rel=0.05)
    finally:
        m.close()
    assert nv.shutdowns == 1


def test_mig_flagged():
    clock = Clock()
    m = counter_meter([0, 0, 30_000], clock, model_gpus=[0], gpu={"mig": True})
    assert "MIG" in m.note
    start = m.begin()
    clock.t = 30.0
    (r,) = m.end(start)
    assert r.energy_j == 30.0 and "MIG enabled" in r.reason and "whole physical GPU" in r.reason


def test_unused_gpus_are_idle_draw_not_model_cost():
    clock = Clock()
    nv = ReplayNvml([{"energy_mj": [0, 0, 40_000]}, {"energy_mj": [0, 0, 20_000]}])
    m = NvmlMeter(adapter=nv, model_gpus=[0], clock=clock)
    start = m.begin()
    clock.t = 20.0
    used, idle = m.end(start)
    assert used.attributable and used.energy_j == 40.0
    assert not idle.attributable and idle.mode == "measured" and idle.energy_j == 20.0
    assert idle.reason.startswith("idle: model ran on GPU [0]")

    nv = ReplayNvml([{"energy_mj": [0, 0, 40_000]}])
    m = NvmlMeter(adapter=nv, clock=clock)  # default: the model ran on the CPU
    clock.t = 0.0
    start = m.begin()
    clock.t = 20.0
    (r,) = m.end(start)
    assert not r.attributable and r.reason.startswith("idle: model ran on CPU")


def test_nvml_missing_in_selection():
    broken = ReplayNvml([], fail_init=True)
    meters = select_meters(nvml_adapter=broken, sysfs_root="/nonexistent")
    assert [m.name for m in meters] == ["cpu-estimate"]
    assert "Shared Library Not Found" in meters.skipped["nvml"]
    with pytest.raises(MeterError, match="NVML: not usable"):
        select_meters(include=["nvml"], nvml_adapter=broken)
    empty = ReplayNvml([])
    with pytest.raises(MeterError, match="no NVIDIA GPU"):
        select_meters(include=["nvml"], nvml_adapter=empty)
    assert empty.shutdowns == 1  # NVML released even when it is not used


def test_nvml_selected_with_replayed_gpu():
    nv = ReplayNvml([{"energy_mj": [0, 0, 3_000]}])
    meters = select_meters(nvml_adapter=nv, sysfs_root="/nonexistent", model_gpus=[0])
    try:
        assert [m.name for m in meters] == ["nvml", "cpu-estimate"]
    finally:
        meters.close()


def _real_nvml() -> bool:
    try:
        nv = PynvmlAdapter()
        nv.init()
        ok = nv.device_count() > 0
        nv.shutdown()
        return ok
    except NvmlError:
        return False


@pytest.mark.nvml
@pytest.mark.skipif(not _real_nvml(), reason="no NVIDIA GPU with NVML here")
def test_real_nvml_window():
    m = NvmlMeter(model_gpus=[0])
    try:
        with measure([m]) as w:
            time.sleep(2.5)
        for r in w.readings:
            assert r.mode in ("measured", "unavailable")
            if r.energy_j is not None:
                assert 0 < r.energy_j / w.wall_s < 2000  # plausible watts
    finally:
        m.close()
