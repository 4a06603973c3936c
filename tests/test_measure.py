"""The window protocol against scripted meters: times, readings, idle, net, repeats, warnings."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from harness.energy import EnergyReading, Meter, select_meters
from harness.measure import (
    Window,
    energy_rows,
    idle_power,
    measure,
    net_energy,
)


class ScriptedMeter(Meter):
    """Counter-like meter whose value is advanced by the test: energy = end - begin."""

    name = "scripted"
    min_window_s = 0.0

    def __init__(self, domain: str = "cpu-package-0", mode: str = "measured") -> None:
        self.value_j = 0.0
        self._domain = domain
        self.mode = mode
        self.calls: list[str] = []

    @property
    def domains(self) -> tuple[str, ...]:
        return (self._domain,)

    def begin(self) -> Any:
        self.calls.append("begin")
        return self.value_j

    def end(self, start: Any) -> list[EnergyReading]:
        self.calls.append("end")
        return [EnergyReading(self._domain, self.value_j - start, self.mode, "scripted")]


def test_window_times_and_readings():
    m = ScriptedMeter()
    with measure([m]) as w:
        m.value_j += 5.0
        time.sleep(0.05)
        t0 = time.process_time()
        while time.process_time() - t0 < 0.05:
            pass
    assert w.wall_s >= 0.1 - 1e-3
    assert 0.04 <= w.cpu_s <= w.wall_s + 0.05
    # each reading names the meter that took it, for the record's long-form energy rows
    assert w.readings == [
        EnergyReading("cpu-package-0", 5.0, "measured", "scripted", meter=m.name)
    ]


def test_sync_runs_at_both_ends_around_meter_reads():
    m = ScriptedMeter()
    order: list[str] = []
    m.calls = order
    with measure([m], sync=lambda: order.append("sync")):
        order.append("work")
    assert order == ["sync", "begin", "work", "sync", "end"]


def test_window_closes_meters_when_work_raises():
    m = ScriptedMeter()
    with pytest.raises(RuntimeError):
        with measure([m]) as w:
            m.value_j += 1.0
            raise RuntimeError("cell crashed")
    assert w.readings[0].energy_j == 1.0


def test_failing_meter_becomes_unavailable_not_crash():
    class Broken(ScriptedMeter):
        def end(self, start: Any) -> list[EnergyReading]:
            raise OSError("device vanished")

    class BrokenStart(ScriptedMeter):
        def begin(self) -> Any:
            raise RuntimeError("driver gone")

    with measure([Broken(), BrokenStart(domain="gpu-0"), ScriptedMeter(domain="x")]) as w:
        pass
    broken, broken_start, fine = w.readings
    assert broken.mode == "unavailable" and broken.energy_j is None
    assert "window end: device vanished" in broken.reason
    assert broken_start.domain == "gpu-0" and "window start: driver gone" in broken_start.reason
    assert fine.mode == "measured" and fine.energy_j == 0.0


def test_short_window_warning_names_fix(caplog):
    m = ScriptedMeter()
    m.min_window_s = 0.2
    m.name = "rapl"
    with caplog.at_level(logging.WARNING):
        with measure([m]) as w:
            pass
    assert len(w.warnings) == 1
    assert "too short for the rapl meter" in w.warnings[0] and "0.2 s" in w.warnings[0]
    assert "more work per window" in caplog.text


def test_idle_power_and_net_energy():
    m = ScriptedMeter()
    est = ScriptedMeter(domain="cpu", mode="estimated")

    def fake_sleep(seconds: float) -> None:
        m.value_j += 3.0  # what the meter would have seen while idle
        time.sleep(seconds)

    idle = idle_power([m, est], seconds=0.2, sleep=fake_sleep)
    assert set(idle) == {"cpu-package-0"}  # estimates have no idle term
    assert idle["cpu-package-0"] == pytest.approx(3.0 / 0.2, rel=0.1)

    w = Window(
        wall_s=2.0,
        cpu_s=1.0,
        readings=[
            EnergyReading("cpu-package-0", 50.0, "measured", "scripted"),
            EnergyReading("cpu", 8.0, "estimated", "cpu-time-model"),
            EnergyReading.unavailable("dram-0", "scripted", "no dram"),
        ],
    )
    rows = {r.domain: r for r in energy_rows(w, {"cpu-package-0": 15.0, "dram-0": 2.0})}
    assert rows["cpu-package-0"].gross_j == 50.0 and rows["cpu-package-0"].device == "cpu"
    assert rows["cpu-package-0"].idle_j == pytest.approx(30.0)
    assert rows["cpu-package-0"].net_j == pytest.approx(20.0)
    assert rows["cpu"].net_j is None and rows["cpu"].mode == "estimated"
    # an unavailable domain stays a row, with its reason and no joules (idle or net)
    assert rows["dram-0"].gross_j is None and rows["dram-0"].net_j is None
    assert rows["dram-0"].reason == "no dram"
    assert net_energy(10.0, 2.0, 3.0) == pytest.approx(4.0)


def test_window_overhead_is_small_with_real_meters():
    meters = select_meters()
    try:
        n = 2000
        t0 = time.perf_counter()
        for _ in range(n):
            with measure(meters):
                pass
        per_window_s = (time.perf_counter() - t0) / n
    finally:
        meters.close()
    # Under 1% of a 0.2 s window (the shortest a meter can resolve).
    assert per_window_s < 0.002
