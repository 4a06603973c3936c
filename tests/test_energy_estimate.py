"""Estimates: formulas against hand computation, labels, and never mixed with measurements."""

from __future__ import annotations

import time

import pytest

from harness.energy import (
    CpuTimeEstimateMeter,
    EnergyReading,
    operation_energy,
)
from harness.energy.estimate import cpu_power_per_logical_cpu
from harness.errors import MeterError


def test_operation_energy_fp32_mac_default():
    r = operation_energy(1_000_000)
    # 1e6 x 3.7 pJ + 1e6 x 0.9 pJ = 4.6e-6 J
    assert r.energy_j == pytest.approx(4.6e-6, rel=1e-12)
    assert r.mode == "estimated"
    assert "Horowitz" in r.source and "45 nm" in r.source and "3.7 pJ" in r.source


def test_operation_energy_explicit_adds_and_precisions():
    assert operation_energy(10, adds=0).energy_j == pytest.approx(37e-12)
    assert operation_energy(0, adds=10).energy_j == pytest.approx(9e-12)
    assert operation_energy(100, precision="fp16").energy_j == pytest.approx(100 * 1.5e-12)
    assert operation_energy(100, precision="int32").energy_j == pytest.approx(100 * 3.2e-12)
    with pytest.raises(ValueError, match="precision"):
        operation_energy(1, precision="fp8")
    with pytest.raises(ValueError):
        operation_energy(-1)


def test_cpu_power_sources():
    w, how = cpu_power_per_logical_cpu(None, "Intel(R) Xeon(R) Processor")
    assert w == 4.0 and "assumed" in how
    w, how = cpu_power_per_logical_cpu(None, "AMD EPYC 7763 64-Core Processor")
    assert w == pytest.approx(280 / 128) and "TDP 280 W" in how
    w, how = cpu_power_per_logical_cpu(2.5, "AMD EPYC 7763 64-Core Processor")
    assert w == 2.5 and "user-set" in how
    with pytest.raises(MeterError, match="cpu_power_w"):
        cpu_power_per_logical_cpu(0.0, None)


def test_cpu_time_meter_formula(monkeypatch):
    clock = iter([10.0, 12.5])
    monkeypatch.setattr(time, "process_time", lambda: next(clock))
    m = CpuTimeEstimateMeter(cpu_power_w=3.0, reason="no RAPL here")
    (r,) = m.end(m.begin())
    assert r.energy_j == pytest.approx(2.5 * 3.0)
    assert r.mode == "estimated"
    assert r.source == "cpu-time-model(3.0 W/logical CPU, user-set)"
    assert r.reason == "no RAPL here"


def test_cpu_time_meter_default_label():
    m = CpuTimeEstimateMeter(cpu_model="Some Unknown CPU")
    assert m.source == "cpu-time-model(4.0 W/logical CPU, assumed)"


def test_reading_invariants():
    with pytest.raises(ValueError):
        EnergyReading("cpu", 0.0, "unavailable", "x", "why")  # unavailable must carry None
    with pytest.raises(ValueError):
        EnergyReading("cpu", None, "measured", "x")  # no silent missing value
    with pytest.raises(ValueError):
        EnergyReading("cpu", None, "unavailable", "x")  # needs a reason
    with pytest.raises(ValueError):
        EnergyReading("cpu", 1.0, "guessed", "x")
    r = EnergyReading("cpu", 1.0, "estimated", "x", "r")
    assert r.to_dict() == {
        "domain": "cpu",
        "energy_j": 1.0,
        "mode": "estimated",
        "source": "x",
        "reason": "r",
        "attributable": True,
        "meter": "",  # filled in by harness.measure with the backend that read it
    }
