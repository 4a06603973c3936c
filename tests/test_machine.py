"""Machine fingerprint: never raises with unreadable files; id override; the env command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import machine
from harness.cli import main

REPO = Path(__file__).resolve().parent.parent


def test_fingerprint_has_the_basics():
    fp = machine.fingerprint()
    assert fp["cpu"]["logical_cores"] >= 1
    assert fp["python"].count(".") == 2
    assert "numpy" in fp["libraries"]
    assert fp["numba"]["version"] and fp["numba"]["num_threads"] >= 1
    assert fp["blas"] and all("internal_api" in pool for pool in fp["blas"])
    json.dumps(fp)  # plain data, storable in a result record


def test_fingerprint_survives_unreadable_system_files(monkeypatch):
    def deny(path):
        raise PermissionError(13, "Permission denied", str(path))

    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(machine, "read_text", deny)
    monkeypatch.setattr(machine.subprocess, "run", no_git)
    monkeypatch.setattr(machine.importlib.metadata, "version", deny)
    fp = machine.fingerprint()
    assert "memory_bytes" not in fp and "git" not in fp
    assert "governor" not in fp["cpu"] and "physical_cores" not in fp["cpu"]
    assert fp["libraries"] == {}
    assert machine.machine_id()  # still an id


def test_fingerprint_reads_cpuinfo_and_governor(monkeypatch):
    files = {
        "/proc/cpuinfo": (
            "processor\t: 0\nmodel name\t: AMD EPYC 7763 64-Core Processor\nphysical id\t: 0\n"
            "core id\t: 0\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7763 64-Core Processor\n"
            "physical id\t: 0\ncore id\t: 0\n\nprocessor\t: 2\nphysical id\t: 0\ncore id\t: 1\n"
        ),
        "/proc/meminfo": "MemTotal:       16384 kB\nMemFree: 1 kB\n",
        "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor": "performance\n",
        "/sys/devices/system/cpu/cpu0/cpufreq/scaling_driver": "acpi-cpufreq\n",
    }

    def fake(path):
        try:
            return files[str(path)]
        except KeyError:
            raise FileNotFoundError(path) from None

    monkeypatch.setattr(machine, "read_text", fake)
    fp = machine.fingerprint()
    assert fp["cpu"]["model"] == "AMD EPYC 7763 64-Core Processor"
    assert fp["cpu"]["physical_cores"] == 2
    assert fp["cpu"]["governor"] == "performance"
    assert fp["cpu"]["scaling_driver"] == "acpi-cpufreq"
    assert fp["memory_bytes"] == 16384 * 1024


def test_machine_id_default_is_stable_and_folder_safe(monkeypatch):
    a, b = machine.machine_id(), machine.machine_id()
    assert a == b
    assert machine.sanitize_id(a) == a and "/" not in a and len(a) <= 64
    monkeypatch.setattr(machine.socket, "gethostname", lambda: "Lab PC/01.example")
    other = machine.machine_id()
    assert other.startswith("lab-pc-01-example-") and other[-8:] == a[-8:]


def test_machine_id_given_by_the_user_is_made_folder_safe():
    assert machine.machine_id("my-box_1") == "my-box_1"
    assert machine.fingerprint("my-box_1")["machine_id"] == "my-box_1"
    assert machine.machine_id("../My Box") == "my-box"
    assert machine.machine_id("///") == machine.machine_id()  # nothing usable: the default
    assert "/" not in machine.machine_id("///")


def test_env_command_here(capsys, tmp_path):
    # An empty powercap folder stands for this project's VMs whatever the test machine has.
    assert main(["env", "--sysfs-root", str(tmp_path), "--no-meter", "nvml"]) == 0
    out = capsys.readouterr().out
    assert "cpu-time-model(4.0 W/logical CPU, assumed)" in out
    assert "estimated" in out and "rapl: RAPL: no intel-rapl zones" in out
    assert "Machine:" in out and "cores" in out


def test_env_command_json_and_user_error(capsys, tmp_path):
    assert main(["env", "--json", "--sysfs-root", str(tmp_path), "--no-meter", "nvml"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["energy"]["domains"][0]["mode"] == "estimated"
    assert "machine_id" in data["machine"]
    assert main(["env", "--meter", "rapl", "--sysfs-root", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: RAPL: no powercap folder") and err.count("\n") == 1
    assert main(["env", "--meter", "bogus"]) == 2
    assert "unknown energy backend" in capsys.readouterr().err


def test_env_command_subprocess():
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "env"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Energy on this machine" in proc.stdout


@pytest.mark.parametrize("bad", [["--cpu-power-w", "-1"]])
def test_env_rejects_bad_power(bad, capsys):
    assert main(["env", *bad]) == 2
    assert "--cpu-power-w" in capsys.readouterr().err
