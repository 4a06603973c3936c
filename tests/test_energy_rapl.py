"""RAPL powercap backend on zone trees built in tmp_path; exact joules expected."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from harness.energy import rapl, select_meters
from harness.energy.rapl import RaplMeter, discover_zones, poll_interval_for
from harness.errors import MeterError
from harness.measure import measure

RANGE_UJ = 1_000_000  # small range so wraps are easy to script


def zone(
    root: Path,
    zone_id: str,
    name: str,
    energy_uj: int,
    max_range: int | None = RANGE_UJ,
    parent: Path | None = None,
) -> Path:
    """One zone folder; nested under ``parent`` with a top-level link, as sysfs lays it out."""
    base = parent if parent is not None else root
    path = base / zone_id
    path.mkdir(parents=True)
    (path / "name").write_text(name + "\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    if max_range is not None:
        (path / "max_energy_range_uj").write_text(f"{max_range}\n")
    if parent is not None:
        (root / zone_id).symlink_to(path)
    return path


def set_uj(path: Path, value: int) -> None:
    (path / "energy_uj").write_text(f"{value}\n")


def meter(root: Path, **kw) -> RaplMeter:
    kw.setdefault("start_poller", False)
    return RaplMeter(sysfs_root=root, **kw)


def test_plain_window_package_and_dram(tmp_path):
    pkg = zone(tmp_path, "intel-rapl:0", "package-0", 1_000)
    dram = zone(tmp_path, "intel-rapl:0:0", "dram", 100, parent=pkg)
    core = zone(tmp_path, "intel-rapl:0:1", "core", 5, parent=pkg)
    m = meter(tmp_path)
    assert m.domains == ("cpu-package-0", "dram-0")
    start = m.begin()
    set_uj(pkg, 251_000)
    set_uj(dram, 60_100)
    set_uj(core, 200_000)  # inside the package: never added
    readings = {r.domain: r for r in m.end(start)}
    assert set(readings) == {"cpu-package-0", "dram-0"}
    assert readings["cpu-package-0"].energy_j == pytest.approx(0.25, abs=1e-12)
    assert readings["dram-0"].energy_j == pytest.approx(0.06, abs=1e-12)
    assert all(r.mode == "measured" and r.source == "rapl-powercap" for r in readings.values())
    assert "core" in m.note


def test_zones_found_once_through_links_and_nesting(tmp_path):
    pkg = zone(tmp_path, "intel-rapl:0", "package-0", 0)
    zone(tmp_path, "intel-rapl:0:0", "dram", 0, parent=pkg)
    zone(tmp_path, "intel-rapl-mmio:0", "package-0", 0)  # same counter via MMIO: ignored
    zones = discover_zones(tmp_path)
    assert [(z.zone_id, z.name, z.parent_id) for z in zones] == [
        ("intel-rapl:0", "package-0", None),
        ("intel-rapl:0:0", "dram", "intel-rapl:0"),
    ]


def test_wrap_inside_a_window_without_poller(tmp_path):
    pkg = zone(tmp_path, "intel-rapl:0", "package-0", 900_000)
    m = meter(tmp_path)
    start = m.begin()
    set_uj(pkg, 100_000)  # wrapped once: 100_000 to the top, 100_000 after
    (r,) = m.end(start)
    assert r.energy_j == pytest.approx(0.2, abs=1e-12)


def test_several_wraps_tracked_by_polls(tmp_path):
    pkg = zone(tmp_path, "intel-rapl:0", "package-0", 900_000)
    m = meter(tmp_path)
    start = m.begin()
    for value in (100_000, 950_000, 50_000):  # two wraps, each seen by a poll
        set_uj(pkg, value)
        m.poll()
    set_uj(pkg, 300_000)
    (r,) = m.end(start)
    # 100_000 + 1_000_000 + 250_000 + 50_000 = 1_400_000 uJ
    assert r.energy_j == pytest.approx(1.4, abs=1e-12)


def test_background_poller_thread_sees_wraps(tmp_path):
    pkg = zone(tmp_path, "intel-rapl:0", "package-0", 500_000)
    m = RaplMeter(sysfs_root=tmp_path, poll_interval_s=0.005)
    try:
        start = m.begin()
        for value in (100_000, 600_000, 200_000):  # wraps after 500k->100k and 600k->200k
            set_uj(pkg, value)
            target = m.polls + 2
            deadline = time.monotonic() + 5.0
            while m.polls < target and time.monotonic() < deadline:
                time.sleep(0.002)
            assert m.polls >= target, "poller thread did not run"
        set_uj(pkg, 400_000)
        (r,) = m.end(start)
    finally:
        m.close()
    # 500k->100k: 600k; ->600k: 500k; ->200k: 600k; ->400k: 200k; 1_900_000 uJ in all
    assert r.energy_j == pytest.approx(1.9, abs=1e-12)
    assert m._thread is None


def test_poll_interval_from_range():
    amd = rapl.PowercapZone("intel-rapl:0", Path("."), "package-0", 65_532_610_987, None)
    # 65.5 kJ / (2 x 500 W) = 65.5 s, polled 5x more often than that bound
    assert poll_interval_for([amd], 500.0) == pytest.approx(65532.610987 / 1000 / 5)
    tiny = rapl.PowercapZone("intel-rapl:0", Path("."), "package-0", 1_000, None)
    assert poll_interval_for([tiny], 500.0) == 0.01
    nothing = rapl.PowercapZone("intel-rapl:0", Path("."), "package-0", None, None)
    assert poll_interval_for([nothing], 500.0) == 1.0


def test_mirrored_dies_counted_once(tmp_path):
    d0 = zone(tmp_path, "intel-rapl:0", "package-0-die-0", 10_000)
    d1 = zone(tmp_path, "intel-rapl:1", "package-0-die-1", 10_000)
    m = meter(tmp_path)
    assert m.domains == ("cpu-package-0",)
    start = m.begin()
    set_uj(d0, 310_000)
    set_uj(d1, 310_000)
    (r,) = m.end(start)
    assert r.domain == "cpu-package-0"
    assert r.energy_j == pytest.approx(0.3, abs=1e-12)
    assert "mirrored" in r.reason


def test_distinct_dies_reported_separately(tmp_path):
    d0 = zone(tmp_path, "intel-rapl:0", "package-0-die-0", 0)
    d1 = zone(tmp_path, "intel-rapl:1", "package-0-die-1", 7)  # distinct counters differ
    m = meter(tmp_path)
    assert m.domains == ("cpu-package-0-die-0", "cpu-package-0-die-1")
    start = m.begin()
    set_uj(d0, 300_000)
    set_uj(d1, 200_007)
    readings = {r.domain: r.energy_j for r in m.end(start)}
    assert readings == pytest.approx({"cpu-package-0-die-0": 0.3, "cpu-package-0-die-1": 0.2})
    idle = m.end(m.begin())  # equal zero deltas prove nothing: still two dies, 0 J each
    assert [(r.domain, r.energy_j) for r in idle] == [
        ("cpu-package-0-die-0", 0.0),
        ("cpu-package-0-die-1", 0.0),
    ]


def test_mirror_detected_from_equal_deltas_and_kept(tmp_path):
    d0 = zone(tmp_path, "intel-rapl:0", "package-0-die-0", 100)
    d1 = zone(tmp_path, "intel-rapl:1", "package-0-die-1", 90)  # read across a tick
    m = meter(tmp_path)
    start = m.begin()
    set_uj(d0, 200_100)
    set_uj(d1, 200_090)
    (r,) = m.end(start)
    assert (r.domain, r.energy_j) == ("cpu-package-0", pytest.approx(0.2))
    start = m.begin()
    set_uj(d0, 300_100)
    set_uj(d1, 300_150)  # a tick apart this time: still one counter, counted once
    (r,) = m.end(start)
    assert (r.domain, r.energy_j) == ("cpu-package-0", pytest.approx(0.1))


def test_two_sockets_without_dram(tmp_path):
    p0 = zone(tmp_path, "intel-rapl:0", "package-0", 0)
    p1 = zone(tmp_path, "intel-rapl:1", "package-1", 0)
    zone(tmp_path, "intel-rapl:0:0", "core", 0, parent=p0)
    m = meter(tmp_path)
    assert m.domains == ("cpu-package-0", "cpu-package-1")
    assert "no DRAM zone" in m.note
    start = m.begin()
    set_uj(p0, 1_000)
    set_uj(p1, 3_000)
    readings = m.end(start)
    assert {r.domain: r.energy_j for r in readings} == pytest.approx(
        {"cpu-package-0": 0.001, "cpu-package-1": 0.003}
    )
    assert sum(r.energy_j for r in readings) == pytest.approx(0.004)  # no overlap to drop


def test_dram_can_be_left_out(tmp_path):
    pkg = zone(tmp_path, "intel-rapl:0", "package-0", 0)
    zone(tmp_path, "intel-rapl:0:0", "dram", 0, parent=pkg)
    assert meter(tmp_path, include_dram=False).domains == ("cpu-package-0",)


def test_psys_never_added(tmp_path):
    pkg = zone(tmp_path, "intel-rapl:0", "package-0", 0)
    psys = zone(tmp_path, "intel-rapl:1", "psys", 0)
    m = meter(tmp_path)
    start = m.begin()
    set_uj(pkg, 400_000)
    set_uj(psys, 900_000)
    readings = m.end(start)
    assert [(r.domain, r.energy_j) for r in readings] == [("cpu-package-0", pytest.approx(0.4))]
    assert "psys" in m.note


def test_missing_max_range(tmp_path):
    pkg = zone(tmp_path, "intel-rapl:0", "package-0", 500, max_range=None)
    m = meter(tmp_path)
    assert "max_energy_range_uj missing" in m.note
    start = m.begin()
    set_uj(pkg, 2_500)
    (r,) = m.end(start)
    assert r.energy_j == pytest.approx(0.002, abs=1e-12)
    start = m.begin()
    set_uj(pkg, 100)  # a wrap we cannot size: unavailable, never a wrong number
    (r,) = m.end(start)
    assert r.mode == "unavailable" and r.energy_j is None
    assert "max_energy_range_uj is missing" in r.reason


def test_read_failure_mid_run_is_unavailable(tmp_path):
    pkg = zone(tmp_path, "intel-rapl:0", "package-0", 500)
    m = meter(tmp_path)
    start = m.begin()
    (pkg / "energy_uj").unlink()
    (r,) = m.end(start)
    assert r.mode == "unavailable" and "energy_uj" in r.reason


def _deny_energy(monkeypatch):
    real = rapl.read_text

    def reader(path: Path) -> str:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(rapl, "read_text", reader)


def test_permission_denied_forced_names_file_and_fixes(tmp_path, monkeypatch):
    zone(tmp_path, "intel-rapl:0", "package-0", 0)
    _deny_energy(monkeypatch)
    with pytest.raises(MeterError) as info:
        select_meters(include=["rapl"], sysfs_root=tmp_path)
    msg = str(info.value)
    assert str(tmp_path / "intel-rapl:0" / "energy_uj") in msg
    assert "run as root" in msg
    assert 'SUBSYSTEM=="powercap", ACTION=="add", RUN+="/bin/chmod o+r /sys%p/energy_uj"' in msg
    assert "sudo chmod o+r" in msg
    assert "\n" not in msg


def test_permission_denied_automatic_falls_back_to_estimate(tmp_path, monkeypatch):
    zone(tmp_path, "intel-rapl:0", "package-0", 0)
    _deny_energy(monkeypatch)
    meters = select_meters(sysfs_root=tmp_path, exclude=["nvml"])
    assert [m.name for m in meters] == ["cpu-estimate"]
    assert "udev" in meters.skipped["rapl"]
    with measure(meters) as w:
        pass
    (r,) = w.readings
    assert r.mode == "estimated" and "energy_uj" in r.reason and "root" in r.reason


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied_by_chmod(tmp_path):
    pkg = zone(tmp_path, "intel-rapl:0", "package-0", 0)
    os.chmod(pkg / "energy_uj", 0)
    with pytest.raises(MeterError, match="udev"):
        RaplMeter(sysfs_root=tmp_path, start_poller=False)


def test_no_powercap_folder(tmp_path):
    with pytest.raises(MeterError, match="no powercap folder"):
        RaplMeter(sysfs_root=tmp_path / "absent")
    meters = select_meters(sysfs_root=tmp_path / "absent", exclude=["nvml"])
    assert [m.name for m in meters] == ["cpu-estimate"]
    assert "no powercap folder" in meters[0].note


def test_selected_rapl_measures_and_no_estimate(tmp_path):
    pkg = zone(tmp_path, "intel-rapl:0", "package-0", 0)
    meters = select_meters(sysfs_root=tmp_path, exclude=["nvml"])
    try:
        assert [m.name for m in meters] == ["rapl"]
        assert meters.skipped["cpu-estimate"] == "CPU energy is measured"
        with measure(meters) as w:
            set_uj(pkg, 234_567)  # within the 1 J range: larger values are refused
        assert w.readings[0].energy_j == pytest.approx(0.234567)
    finally:
        meters.close()


def _real_rapl_readable() -> bool:
    try:
        RaplMeter(start_poller=False).close()
        return True
    except MeterError:
        return False


@pytest.mark.rapl
@pytest.mark.skipif(not _real_rapl_readable(), reason="no readable RAPL powercap counters here")
def test_real_rapl_window():
    m = RaplMeter()
    try:
        with measure([m]) as w:
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < 0.3:
                sum(range(1000))
        pkgs = [r for r in w.readings if r.domain.startswith("cpu-package")]
        assert pkgs and all(r.mode == "measured" and r.energy_j > 0 for r in pkgs)
        assert 0.1 < sum(r.energy_j for r in pkgs) / w.wall_s < 2000  # plausible watts
    finally:
        m.close()
