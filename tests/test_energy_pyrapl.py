"""pyRAPL backend: its known defects become "unavailable" readings, never a crash."""

from __future__ import annotations

import time

import pytest

pyRAPL = pytest.importorskip("pyRAPL")

from pyRAPL.sensor import SubstractableList  # noqa: E402

from harness.energy import select_meters  # noqa: E402
from harness.energy.pyrapl_meter import PyRaplMeter  # noqa: E402
from harness.energy.rapl import RaplMeter  # noqa: E402
from harness.errors import MeterError  # noqa: E402
from harness.measure import measure  # noqa: E402


class FakeSensor:
    """Stands in for pyRAPL's sensor: scripted (pkg, dram) counters per socket, in uJ."""

    def __init__(self, readings: list[list[float]], sockets: list[int]) -> None:
        self._readings = readings
        self._socket_ids = sockets

    def energy(self) -> SubstractableList:
        return SubstractableList(self._readings.pop(0))


def install(monkeypatch, readings, sockets=(0,), dram=True, setup_error=None):
    """Make the real pyRAPL module use a fake sensor; its own Measurement code still runs."""

    def setup(devices=None, socket_ids=None):
        if setup_error is not None:
            raise setup_error
        if not dram and pyRAPL.Device.DRAM in (devices or []):
            raise pyRAPL.PyRAPLCantRecordEnergyConsumption(pyRAPL.Device.DRAM)
        pyRAPL._sensor = FakeSensor(readings, list(sockets))

    monkeypatch.setattr(pyRAPL, "setup", setup)
    monkeypatch.setattr(pyRAPL, "_sensor", None)


def test_package_and_dram(monkeypatch):
    install(monkeypatch, [[1_000_000, 500], [3_500_000, 600_500]])
    m = PyRaplMeter()
    assert m.domains == ("cpu-package-0", "dram-0")
    readings = {r.domain: r for r in m.end(m.begin())}
    assert readings["cpu-package-0"].energy_j == pytest.approx(2.5)
    assert readings["dram-0"].energy_j == pytest.approx(0.6)
    assert all(r.mode == "measured" and r.source == "pyrapl" for r in readings.values())


def test_machine_without_dram_zone(monkeypatch):
    install(monkeypatch, [[0, -1], [1_000_000, -1]], dram=False)
    m = PyRaplMeter()
    assert m.domains == ("cpu-package-0",) and "no DRAM zone" in m.note
    (r,) = m.end(m.begin())
    assert r.energy_j == pytest.approx(1.0)


def test_wrapped_window_negative_delta(monkeypatch):
    # Socket 0 wrapped (negative delta), socket 1 did not: pyRAPL keeps the list.
    install(monkeypatch, [[900, 0, 100, 0], [100, 0, 300, 0]], sockets=(0, 1))
    m = PyRaplMeter()
    readings = {r.domain: r for r in m.end(m.begin())}
    pkg0 = readings["cpu-package-0"]
    assert pkg0.mode == "unavailable" and pkg0.energy_j is None
    assert "wrap" in pkg0.reason and "rapl backend" in pkg0.reason
    assert readings["cpu-package-1"].energy_j == pytest.approx(200e-6)


def test_wrapped_window_all_negative_gives_none(monkeypatch):
    install(monkeypatch, [[900, 900], [100, 100]])
    m = PyRaplMeter()
    readings = m.end(m.begin())
    assert [r.mode for r in readings] == ["unavailable", "unavailable"]
    assert all("None" in r.reason and "wrap" in r.reason for r in readings)


def test_missing_package_zone_for_a_socket(monkeypatch):
    install(monkeypatch, [[0, 0], [1_000, 0]], sockets=(0, 1))  # pyRAPL saw only socket 0
    m = PyRaplMeter()
    readings = {r.domain: r for r in m.end(m.begin())}
    assert readings["cpu-package-0"].energy_j == pytest.approx(0.001)
    assert readings["cpu-package-1"].mode == "unavailable"
    assert "socket 1" in readings["cpu-package-1"].reason


def test_setup_failure_never_raises(monkeypatch):
    install(monkeypatch, [], setup_error=pyRAPL.PyRAPLCantInitDeviceAPI())
    m = PyRaplMeter()
    assert "setup failed" in m.note
    with measure([m]) as w:
        pass
    assert w.readings and all(r.mode == "unavailable" for r in w.readings)
    assert "setup failed" in w.readings[0].reason


def test_failure_inside_a_window_is_unavailable(monkeypatch):
    install(monkeypatch, [[0, 0]])  # nothing left for end(): the sensor raises
    m = PyRaplMeter()
    readings = m.end(m.begin())
    assert all(r.mode == "unavailable" and "end failed" in r.reason for r in readings)


def test_not_installed(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pyRAPL", None)
    m = PyRaplMeter()
    assert "pip install pyRAPL" in m.note
    (r,) = m.end(m.begin())
    assert r.mode == "unavailable"


def test_selected_only_on_request(monkeypatch):
    install(monkeypatch, [[0, 0], [2_000_000, 0]])
    auto = select_meters(sysfs_root="/nonexistent", exclude=["nvml"])
    assert "pyrapl" not in [m.name for m in auto]
    forced = select_meters(include=["pyrapl"])
    assert [m.name for m in forced] == ["pyrapl"]
    with measure(forced) as w:
        pass
    assert w.reading("cpu-package-0").energy_j == pytest.approx(2.0)


def _rapl_readable() -> bool:
    try:
        RaplMeter(start_poller=False).close()
        return True
    except MeterError:
        return False


@pytest.mark.skipif(_rapl_readable(), reason="this machine has RAPL; the no-RAPL path needs none")
def test_real_pyrapl_without_rapl_is_unavailable():
    m = PyRaplMeter()  # the real module on a machine with no powercap: setup fails
    readings = m.end(m.begin())
    assert readings and all(r.mode == "unavailable" for r in readings)


@pytest.mark.rapl
@pytest.mark.skipif(not _rapl_readable(), reason="no readable RAPL powercap counters here")
def test_real_pyrapl_matches_rapl():
    rapl, py = RaplMeter(), PyRaplMeter()
    try:
        with measure([rapl, py]) as w:
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < 0.5:
                sum(range(1000))
        by_source = {(r.source, r.domain): r.energy_j for r in w.readings}
        pkg_rapl = by_source[("rapl-powercap", "cpu-package-0")]
        pkg_py = by_source.get(("pyrapl", "cpu-package-0"))
        if pkg_py is not None:
            assert pkg_py == pytest.approx(pkg_rapl, rel=0.05)
    finally:
        rapl.close()
