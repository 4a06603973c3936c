"""Implausible meter readings become "unavailable" with the reason, never "measured".

RAPL on powercap trees built in tmp_path with a scripted clock; pyRAPL through its real
module with a fake sensor; NVML through replayed answers. The joules and watts expected are
worked out by hand in the comments.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from harness.energy import EnergyReading, Meter, select_meters
from harness.energy.nvml import NvmlError, NvmlMeter
from harness.energy.rapl import RaplMeter
from harness.errors import MeterError
from harness.measure import measure

# A real package counter's range: 2^32 units of 61 uJ, about 262,143 J.
RANGE_UJ = 262_143_328_850


class Clock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def package(root: Path, energy_uj: int | str, max_range: int = RANGE_UJ) -> Path:
    path = root / "intel-rapl:0"
    path.mkdir()
    (path / "name").write_text("package-0\n")
    (path / "max_energy_range_uj").write_text(f"{max_range}\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    return path


def set_uj(path: Path, value: int | str) -> None:
    (path / "energy_uj").write_text(f"{value}\n")


def rapl_meter(root: Path, clock: Clock) -> RaplMeter:
    return RaplMeter(sysfs_root=root, start_poller=False, clock=clock)


# -- RAPL -----------------------------------------------------------------------------------


def test_counter_going_back_by_less_than_a_wrap_is_unavailable(tmp_path, caplog):
    pkg = package(tmp_path, 100_000_000_000)
    clock = Clock()
    m = rapl_meter(tmp_path, clock)
    start = m.begin()
    set_uj(pkg, 99_999_000_000)  # 1 J lower: as a wrap, 262,142 J in 0.6 s = 436,904 W
    clock.t = 0.6
    (r,) = m.end(start)
    assert r.mode == "unavailable" and r.energy_j is None
    assert "went back" in r.reason and "energy_uj" in r.reason
    assert "1000 W" in r.reason  # the documented bound it broke
    assert "went back" in caplog.text  # and it was logged


def test_counter_going_back_in_a_tiny_window_without_a_clock_is_unavailable(tmp_path):
    # The defect as it was seen: the real clock, a window of microseconds.
    pkg = package(tmp_path, 100_000_000_000)
    m = RaplMeter(sysfs_root=tmp_path, start_poller=False)
    start = m.begin()
    set_uj(pkg, 99_999_000_000)
    (r,) = m.end(start)
    assert r.mode == "unavailable" and r.energy_j is None


def test_plausible_wrap_is_still_measured(tmp_path):
    pkg = package(tmp_path, RANGE_UJ - 10_000_000)  # 10 J below the top
    clock = Clock()
    m = rapl_meter(tmp_path, clock)
    start = m.begin()
    set_uj(pkg, 5_000_000)  # wrapped: 10 J + 5 J = 15 J in 0.6 s = 25 W
    clock.t = 0.6
    (r,) = m.end(start)
    assert r.mode == "measured" and r.energy_j == pytest.approx(15.0, abs=1e-9)


def test_a_decrease_over_a_long_window_is_a_plausible_wrap(tmp_path):
    # The same 1 J decrease over an hour: one wrap is 262,142 J / 3600 s = 72.8 W, plausible.
    pkg = package(tmp_path, 100_000_000_000)
    clock = Clock()
    m = rapl_meter(tmp_path, clock)
    start = m.begin()
    set_uj(pkg, 99_999_000_000)
    clock.t = 3600.0
    (r,) = m.end(start)
    assert r.mode == "measured"
    assert r.energy_j == pytest.approx((RANGE_UJ - 1_000_000) * 1e-6, abs=1e-6)


def test_implausible_jump_forward_is_unavailable(tmp_path):
    pkg = package(tmp_path, 0)
    clock = Clock()
    m = rapl_meter(tmp_path, clock)
    start = m.begin()
    set_uj(pkg, 1_200_000_000)  # 1,200 J in 1 s = 1,200 W > 1,000 W
    clock.t = 1.0
    (r,) = m.end(start)
    assert r.mode == "unavailable" and "1200 W" in r.reason
    start = m.begin()  # the next window starts from the new value and is fine
    set_uj(pkg, 1_300_000_000)  # 100 J in 1 s
    clock.t = 2.0
    (r,) = m.end(start)
    assert r.mode == "measured" and r.energy_j == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (RANGE_UJ + 1, "max_energy_range_uj"),
        (-5, "negative"),
        ("12.5", "whole number"),
        ("lots", "whole number"),
        ("", "whole number"),
    ],
)
def test_impossible_counter_contents_mid_run_are_unavailable(tmp_path, content, needle):
    pkg = package(tmp_path, 1_000_000)
    clock = Clock()
    m = rapl_meter(tmp_path, clock)
    start = m.begin()
    set_uj(pkg, content)
    clock.t = 1.0
    (r,) = m.end(start)
    assert r.mode == "unavailable" and r.energy_j is None
    assert needle in r.reason and "energy_uj" in r.reason


@pytest.mark.parametrize("content", [RANGE_UJ + 1, -5, "12.5"])
def test_impossible_counter_contents_at_start_are_a_one_line_error(tmp_path, content):
    package(tmp_path, content)
    with pytest.raises(MeterError) as info:
        RaplMeter(sysfs_root=tmp_path, start_poller=False)
    assert "energy_uj" in str(info.value) and "\n" not in str(info.value)


def test_counter_beyond_range_at_start_is_refused_when_selected_automatically(tmp_path):
    package(tmp_path, RANGE_UJ + 1)
    meters = select_meters(sysfs_root=tmp_path, exclude=["nvml"])
    assert [m.name for m in meters] == ["cpu-estimate"]
    assert "max_energy_range_uj" in meters.skipped["rapl"]


def test_poller_seeing_the_counter_go_back_spoils_only_its_window(tmp_path):
    pkg = package(tmp_path, 50_000_000_000)
    clock = Clock()
    m = rapl_meter(tmp_path, clock)
    start = m.begin()
    set_uj(pkg, 60_000_000_000)  # +10,000 J in 100 s: 100 W
    clock.t = 100.0
    m.poll()
    set_uj(pkg, 59_999_000_000)  # back 1 J: as a wrap, 262,142 J in 1 s
    clock.t = 101.0
    m.poll()
    set_uj(pkg, 60_099_000_000)
    clock.t = 102.0
    (r,) = m.end(start)
    assert r.mode == "unavailable" and "went back" in r.reason
    start = m.begin()  # after the event, windows measure again
    set_uj(pkg, 60_199_000_000)
    clock.t = 103.0
    (r,) = m.end(start)
    assert r.mode == "measured" and r.energy_j == pytest.approx(100.0)


def test_poller_tracks_plausible_wraps_with_the_clock(tmp_path):
    pkg = package(tmp_path, RANGE_UJ - 1_000_000_000)  # 1,000 J below the top
    clock = Clock()
    m = rapl_meter(tmp_path, clock)
    start = m.begin()
    set_uj(pkg, 4_000_000_000)  # wrapped: 1,000 + 4,000 J in 50 s = 100 W
    clock.t = 50.0
    m.poll()
    set_uj(pkg, 9_000_000_000)
    clock.t = 100.0
    (r,) = m.end(start)
    assert r.mode == "measured" and r.energy_j == pytest.approx(10_000.0, abs=1e-6)


def test_counter_unreadable_longer_than_a_wrap_takes_is_unavailable(tmp_path):
    # At the 1,000 W bound, 262,143 J wrap in 262 s: reads failing for longer may miss one.
    pkg = package(tmp_path, 1_000_000_000)
    clock = Clock()
    m = rapl_meter(tmp_path, clock)
    start = m.begin()
    (pkg / "energy_uj").unlink()
    for t in (100.0, 200.0, 300.0):
        clock.t = t
        m.poll()  # fails: logged, no crash
    set_uj(pkg, 2_000_000_000)
    clock.t = 400.0
    (r,) = m.end(start)
    assert r.mode == "unavailable" and "unreadable" in r.reason and "wrap" in r.reason


def test_counter_unreadable_briefly_is_still_measured(tmp_path):
    pkg = package(tmp_path, 1_000_000_000)
    clock = Clock()
    m = rapl_meter(tmp_path, clock)
    start = m.begin()
    (pkg / "energy_uj").unlink()
    clock.t = 10.0
    m.poll()
    set_uj(pkg, 2_000_000_000)  # 1,000 J in 20 s: 50 W
    clock.t = 20.0
    (r,) = m.end(start)
    assert r.mode == "measured" and r.energy_j == pytest.approx(1000.0)


def test_clock_going_back_is_unavailable(tmp_path):
    pkg = package(tmp_path, 0)
    clock = Clock(10.0)
    m = rapl_meter(tmp_path, clock)
    start = m.begin()
    set_uj(pkg, 1_000_000)
    clock.t = 9.0
    (r,) = m.end(start)
    assert r.mode == "unavailable" and "clock went backwards" in r.reason
    start = m.begin()  # the poller's read sees it, though the window as a whole moves on
    clock.t = 5.0
    m.poll()
    clock.t = 20.0
    (r,) = m.end(start)
    assert r.mode == "unavailable" and "clock went backwards between reads" in r.reason


def test_zero_length_window(tmp_path):
    pkg = package(tmp_path, 0)
    clock = Clock(5.0)
    m = rapl_meter(tmp_path, clock)
    (r,) = m.end(m.begin())  # no time, no energy: 0 J is a measurement
    assert r.mode == "measured" and r.energy_j == 0.0
    start = m.begin()
    set_uj(pkg, 500_000_000)  # 500 J in no time at all
    (r,) = m.end(start)
    assert r.mode == "unavailable"


# -- readings, estimates ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan, -1.0])
def test_a_reading_never_carries_a_non_finite_or_negative_energy(bad):
    with pytest.raises(ValueError, match="energy_j"):
        EnergyReading("cpu", bad, "estimated", "x")


class InfiniteMeter(Meter):
    name = "broken"

    @property
    def domains(self) -> tuple[str, ...]:
        return ("cpu",)

    def begin(self) -> None:
        return None

    def end(self, start: object) -> list[EnergyReading]:
        return [EnergyReading("cpu", math.inf, "estimated", "broken")]


def test_a_meter_producing_infinity_gives_unavailable_not_null_estimated():
    with measure([InfiniteMeter()]) as w:
        pass
    (r,) = w.readings
    assert r.mode == "unavailable" and r.energy_j is None and "energy_j" in r.reason


# -- pyRAPL -----------------------------------------------------------------------------------


def _install_pyrapl(monkeypatch, readings, sockets=(0,)):
    """The real pyRAPL module over a fake sensor: [pkg0, dram0, pkg1, dram1, ...] in uJ."""
    pyRAPL = pytest.importorskip("pyRAPL")
    from pyRAPL.sensor import SubstractableList

    class FakeSensor:
        _socket_ids = list(sockets)

        def energy(self):
            return SubstractableList(readings.pop(0))

    def setup(devices=None, socket_ids=None):
        pyRAPL._sensor = FakeSensor()

    monkeypatch.setattr(pyRAPL, "setup", setup)
    monkeypatch.setattr(pyRAPL, "_sensor", None)


def test_pyrapl_implausible_power_is_unavailable(monkeypatch):
    from harness.energy.pyrapl_meter import PyRaplMeter

    # package: 5,000 J in 2 s = 2,500 W (implausible); DRAM: 20 J in 2 s = 10 W (fine)
    _install_pyrapl(monkeypatch, [[0, 0], [5_000_000_000, 20_000_000]])
    clock = Clock()
    m = PyRaplMeter(clock=clock)
    start = m.begin()
    clock.t = 2.0
    readings = {r.domain: r for r in m.end(start)}
    assert readings["cpu-package-0"].mode == "unavailable"
    assert "2500 W" in readings["cpu-package-0"].reason
    assert readings["dram-0"].mode == "measured"
    assert readings["dram-0"].energy_j == pytest.approx(20.0)


def test_pyrapl_not_a_number_is_unavailable():
    # pyRAPL's own sensor turns NaN into -1; a module handing back NaN or inf is caught too.
    from types import SimpleNamespace

    from harness.energy.pyrapl_meter import PyRaplMeter

    class Measurement:
        def __init__(self, label: str) -> None: ...
        def begin(self) -> None: ...

        def end(self) -> None:
            self.result = SimpleNamespace(pkg=[math.nan, math.inf], dram=[1e6, 2e6])

    fake = SimpleNamespace(
        Device=SimpleNamespace(PKG="pkg", DRAM="dram"),
        setup=lambda devices: None,
        Measurement=Measurement,
        _sensor=SimpleNamespace(_socket_ids=[0, 1]),
    )
    clock = Clock()
    m = PyRaplMeter(module=fake, clock=clock)  # type: ignore[arg-type]
    start = m.begin()
    clock.t = 1.0
    readings = {r.domain: r for r in m.end(start)}
    assert readings["cpu-package-0"].mode == "unavailable"
    assert "nan" in readings["cpu-package-0"].reason
    assert readings["cpu-package-1"].mode == "unavailable"
    assert "inf" in readings["cpu-package-1"].reason
    assert readings["dram-1"].energy_j == pytest.approx(2.0)


# -- NVML -------------------------------------------------------------------------------------


class ReplayNvml:
    """One GPU; each call takes the next scripted value, the last one repeats."""

    def __init__(self, energy_mj: list[int] | None = None, power_mw: list[int] | None = None):
        self.energy_mj, self.power_mw_values = energy_mj, power_mw

    @staticmethod
    def _next(queue: list[int]) -> int:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def init(self) -> None: ...
    def shutdown(self) -> None: ...

    def device_count(self) -> int:
        return 1

    def name(self, index: int) -> str:
        return "Replay GPU"

    def total_energy_mj(self, index: int) -> int:
        if self.energy_mj is None:
            raise NvmlError("not supported")
        return self._next(self.energy_mj)

    def power_mw(self, index: int) -> int:
        assert self.power_mw_values is not None
        return self._next(self.power_mw_values)

    def mig_enabled(self, index: int) -> bool:
        return False

    def memory_total_bytes(self, index: int) -> int:
        return 0

    def driver_version(self) -> str:
        return "0"


def test_nvml_counter_implying_implausible_power_is_unavailable():
    clock = Clock()
    # probe, begin, end: 30,000 J in 10 s = 3,000 W > 2,000 W per GPU
    m = NvmlMeter(adapter=ReplayNvml([0, 0, 30_000_000]), model_gpus=[0], clock=clock)
    start = m.begin()
    clock.t = 10.0
    (r,) = m.end(start)
    assert r.mode == "unavailable" and "3000 W" in r.reason and "2000 W" in r.reason


def test_nvml_counter_with_plausible_power_is_measured():
    clock = Clock()
    m = NvmlMeter(adapter=ReplayNvml([0, 0, 7_000_000]), model_gpus=[0], clock=clock)
    start = m.begin()
    clock.t = 10.0  # 7,000 J in 10 s = 700 W (an H100 at full load)
    (r,) = m.end(start)
    assert r.mode == "measured" and r.energy_j == pytest.approx(7000.0)


def test_nvml_power_samples_above_the_bound_are_unavailable():
    clock = Clock()
    nv = ReplayNvml(power_mw=[300_000, 5_000_000, 300_000])  # one sample of 5,000 W
    m = NvmlMeter(adapter=nv, model_gpus=[0], clock=clock, start_sampler=False)
    start = m.begin()
    clock.t = 1.0
    m.sample()
    clock.t = 2.0
    (r,) = m.end(start)
    assert r.mode == "unavailable" and "5000 W" in r.reason


@pytest.mark.parametrize("path", ["counter", "power"])
def test_nvml_clock_going_back_is_unavailable(path):
    clock = Clock(10.0)
    nv = ReplayNvml([0, 0, 1_000]) if path == "counter" else ReplayNvml(power_mw=[100_000])
    m = NvmlMeter(adapter=nv, model_gpus=[0], clock=clock, start_sampler=False)
    start = m.begin()
    clock.t = 5.0
    (r,) = m.end(start)
    assert r.mode == "unavailable" and "clock went backwards" in r.reason


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_meter_intervals_must_be_finite_and_positive(tmp_path, bad):
    package(tmp_path, 0)
    with pytest.raises(ValueError, match="poll_interval_s"):
        RaplMeter(sysfs_root=tmp_path, start_poller=False, poll_interval_s=bad)
    with pytest.raises(ValueError, match="peak_power_w"):
        RaplMeter(sysfs_root=tmp_path, start_poller=False, peak_power_w=bad)
    with pytest.raises(ValueError, match="sample_interval_s"):
        NvmlMeter(adapter=ReplayNvml(power_mw=[1]), start_sampler=False, sample_interval_s=bad)
