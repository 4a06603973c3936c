"""Bad option values: one line and exit 2 from both entry points, before any expensive work;
the library refuses them too, so a null energy is never stored as "estimated"; and a sweep
that stops on its data keeps what it stored and writes nothing else."""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import math
from pathlib import Path
from typing import Any

import pytest

from harness.cli import Bounded, build_parser
from harness.cli import main as harness_main
from harness.energy import CpuTimeEstimateMeter, select_meters
from harness.errors import MeterError
from harness.measure import MeasureError, idle_power

ROOT = Path(__file__).resolve().parents[1]


def _load_run_all() -> Any:
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "run_all.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run_all = _load_run_all()

# Every numeric option of both entry points, with the values each must refuse.
COMMON_BAD = ["-1", "nan", "-nan", "inf", "-inf", "1e999", "1e9", "abc", ""]
OPTIONS = {
    ("run_all", "--cpu-power-w"): [*COMMON_BAD, "0", "-0", "1000.5"],
    ("run_all", "--idle-s"): [*COMMON_BAD, "3600.5", "-0.001"],
    ("run_all", "--cell-timeout"): [*COMMON_BAD, "0", "-0", "3e6"],
    ("harness env", "--cpu-power-w"): [*COMMON_BAD, "0", "1000.5"],
}
GOOD = {
    ("run_all", "--cpu-power-w"): ["0.5", "1000"],
    ("run_all", "--idle-s"): ["0", "2.5", "3600"],
    ("run_all", "--cell-timeout"): ["0.5", "86400"],
    ("harness env", "--cpu-power-w"): ["4", "1e3"],
}
CASES = [(entry, opt, value) for (entry, opt), values in OPTIONS.items() for value in values]


def _parsers() -> dict[str, argparse.ArgumentParser]:
    """Each sub-command's parser, by the name used in OPTIONS (run_all.py is `run`)."""
    parsers = {}
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                parsers["run_all" if name == "run" else f"harness {name}"] = sub
    return parsers


def test_the_table_covers_every_numeric_option_of_both_entry_points():
    numeric = set()
    for entry, parser in _parsers().items():
        for action in parser._actions:
            assert action.type not in (float, int), (
                f"{entry} {action.option_strings}: plain float/int lets inf and nan through; "
                "use harness.cli.Bounded"
            )
            if isinstance(action.type, Bounded):
                numeric.add((entry, action.option_strings[-1]))
    assert numeric == set(OPTIONS) == set(GOOD)


def _forbid_expensive_work(monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.energy
    import harness.machine
    import harness.measure
    import harness.plan
    import harness.runner

    def boom(*a: Any, **k: Any) -> Any:
        raise AssertionError("expensive work started before the option was checked")

    for module, name in [
        (harness.plan, "plan_text"),
        (harness.plan, "calibrate_rates"),
        (harness.energy, "select_meters"),
        (harness.measure, "idle_power"),
        (harness.runner, "run_cells"),
        (harness.runner, "idle_power"),
        (harness.machine, "fingerprint"),
    ]:
        monkeypatch.setattr(module, name, boom)


def _exit_code(entry: str, argv: list[str]) -> int:
    main = run_all.main if entry == "run_all" else harness_main
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.mark.parametrize(("entry", "option", "value"), CASES)
def test_bad_value_is_one_line_and_exit_2_before_any_work(
    entry, option, value, capsys, monkeypatch, tmp_path
):
    _forbid_expensive_work(monkeypatch)
    argv = [f"{option}={value}", "--results", str(tmp_path / "r")]
    if entry == "harness env":
        argv = ["env", f"{option}={value}"]
    assert _exit_code(entry, argv) == 2
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert len(lines) == 1, out.err
    assert option in lines[0] and "finite number" in lines[0] and repr(value) in lines[0]
    assert "Traceback" not in out.err and out.out == ""
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("entry", "option", "value"),
    [(e, o, v) for (e, o), values in GOOD.items() for v in values],
)
def test_sane_values_are_accepted(entry, option, value):
    command = "run" if entry == "run_all" else "env"
    args = build_parser().parse_args([command, option, value])
    assert getattr(args, option.lstrip("-").replace("-", "_")) == float(value)


def test_idle_message_says_what_is_allowed(capsys):
    assert _exit_code("run_all", ["--idle-s", "inf"]) == 2
    err = capsys.readouterr().err
    assert "--idle-s" in err and ">= 0" in err and "<= 3600" in err and "'inf'" in err


# -- the library layer ------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan, 0.0, -1.0, 1e6])
def test_cpu_time_estimate_refuses_bad_power(bad):
    with pytest.raises(MeterError) as info:
        CpuTimeEstimateMeter(cpu_power_w=bad, cpu_model="x")
    assert "cpu_power_w" in str(info.value) and "finite" in str(info.value)


def test_bad_cpu_power_refused_even_when_rapl_measures(tmp_path):
    zone = tmp_path / "intel-rapl:0"
    zone.mkdir()
    (zone / "name").write_text("package-0\n")
    (zone / "energy_uj").write_text("0\n")
    (zone / "max_energy_range_uj").write_text("262143328850\n")
    with pytest.raises(MeterError, match="cpu_power_w"):
        select_meters(sysfs_root=tmp_path, exclude=["nvml"], cpu_power_w=math.inf)


class _Meter:
    """Records whether a window was opened."""

    name = "m"
    source = "m"
    domains = ("cpu-package-0",)
    min_window_s = 0.0

    def __init__(self) -> None:
        self.begun = 0

    def begin(self) -> None:
        self.begun += 1

    def end(self, start: object) -> list:
        return []


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan, -1.0, 3601.0, 1e12])
def test_idle_power_refuses_bad_seconds_before_sleeping(bad):
    slept: list[float] = []
    meter = _Meter()
    with pytest.raises(MeasureError, match="idle seconds") as info:
        idle_power([meter], seconds=bad, sleep=slept.append)  # type: ignore[list-item]
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)
    assert slept == [] and meter.begun == 0


def test_idle_power_of_zero_seconds_measures_nothing():
    slept: list[float] = []
    meter = _Meter()
    assert idle_power([meter], seconds=0, sleep=slept.append) == {}  # type: ignore[list-item]
    assert slept == [] and meter.begun == 0


# -- a sweep that fails on its data ------------------------------------------------------------


@pytest.fixture
def sweep(tmp_path, monkeypatch):
    """run_all in-process on the smoke profile, two models; ``script`` says, cell by cell,
    whether its child reports bad data (a user error) or trains for real."""
    import harness.plan
    import harness.runner
    import reports.html
    from harness.isolate import Outcome

    monkeypatch.setattr(harness.plan, "plan_text", lambda *a, **k: "plan")
    monkeypatch.setattr(reports.html, "build_report", lambda *a, **k: tmp_path / "index.html")
    calls: list[str] = []
    real = harness.runner.run_task

    def run(script: list[str]) -> int:
        def fake_run_task(task, options):  # type: ignore[no-untyped-def]
            calls.append(task.cell.cell_id)
            if script[min(len(calls), len(script)) - 1] == "data":
                return Outcome(user_error=f"dataset {task.cell.dataset} is corrupt; delete "
                               "its cache")
            return real(task, options)

        monkeypatch.setattr(harness.runner, "run_task", fake_run_task)
        argv = ["--profile", "smoke", "--models", "dense", "dropout", "--idle-s", "0",
                "--only", "fraction_sweep", "--machine-id", "box"]
        argv += ["--no-meter", "nvml", "--results", str(tmp_path / "results")]
        return _exit_code("run_all", argv)

    # run_all.main configures logging for a program: undo it for the tests that follow
    root, measure_log = logging.getLogger(), logging.getLogger("harness.measure")
    saved = list(root.handlers), root.level, measure_log.level
    yield tmp_path / "results" / "box", run, calls
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    measure_log.setLevel(saved[2])  # setLevel also clears the loggers' cached levels


def test_sweep_failing_on_data_stops_in_one_line_and_writes_nothing(sweep, capsys):
    folder, run, calls = sweep
    assert run(["data"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == "error: dataset digits is corrupt; delete its cache"
    assert "Traceback" not in err
    assert len(calls) == 1  # the first cell was tried, and the sweep stopped there
    assert not list(folder.glob("*/*.json"))
    assert not (folder / ".write-probe").exists()


def test_records_stored_before_a_data_failure_are_kept(sweep):
    folder, run, calls = sweep
    assert run(["ok", "data"]) == 2  # the second cell fails on its data
    assert len(calls) == 2
    (stored,) = [p for p in folder.glob("*/*.json")]
    record = json.loads(stored.read_text())
    assert record["cell_id"] == calls[0] and record["status"] == "ok"
    # the machine and the code that produced it travel with the record itself
    assert record["machine"]["machine_id"] == "box" and "energy_meters" in record["machine"]
    assert record["code"]["package_version"]
    assert run(["ok"]) == 0
    assert calls[2] != calls[0]  # the stored cell is not rerun


def test_verbose_goes_before_or_after_the_command():
    from harness.cli import parse_args

    assert parse_args(["run", "-v"]).verbose is True  # run_all.py -v
    assert parse_args(["-v", "env"]).verbose is True
    assert parse_args(["env"]).verbose is False
