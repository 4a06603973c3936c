"""Estimates: formulas against hand computation, labels, and never mixed with measurements."""

from __future__ import annotations

import time

import pytest

from harness.energy import (
    CpuTimeEstimateMeter,
    EnergyReading,
    MixedModesError,
    operation_energy,
    total_energy,
    totals_by_mode,
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


def test_estimates_never_summed_with_measurements():
    measured = EnergyReading("cpu-package-0", 10.0, "measured", "rapl-powercap")
    dram = EnergyReading("dram-0", 2.0, "measured", "rapl-powercap")
    estimated = EnergyReading("cpu", 7.0, "estimated", "cpu-time-model(4.0 W/logical CPU, assumed)")
    with pytest.raises(MixedModesError, match="measured and estimated|estimated and measured"):
        total_energy([measured, estimated])
    assert total_energy([measured, dram, estimated], mode="measured") == pytest.approx(12.0)
    assert total_energy([measured, estimated], mode="estimated") == pytest.approx(7.0)
    assert totals_by_mode([measured, dram, estimated]) == {"measured": 12.0, "estimated": 7.0}


def test_total_energy_refuses_duplicates_and_skips_idle_and_unavailable():
    a = EnergyReading("cpu-package-0", 10.0, "measured", "rapl-powercap")
    b = EnergyReading("cpu-package-0", 10.1, "measured", "pyrapl")
    with pytest.raises(MixedModesError, match="twice"):
        total_energy([a, b])
    idle_gpu = EnergyReading(
        "gpu-0",
        50.0,
        "measured",
        "nvml-energy-counter",
        "idle: model ran on CPU",
        attributable=False,
    )
    gone = EnergyReading.unavailable("dram-0", "rapl-powercap", "read failed")
    assert total_energy([a, idle_gpu, gone]) == pytest.approx(10.0)
    assert total_energy([gone]) is None


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
    assert EnergyReading.from_dict(r.to_dict()) == r
    assert r.to_dict() == {
        "domain": "cpu",
        "energy_j": 1.0,
        "mode": "estimated",
        "source": "x",
        "reason": "r",
        "attributable": True,
        "meter": "",  # filled in by harness.measure with the backend that read it
    }
