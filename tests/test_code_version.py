"""The code version in every record: which cells --rerun-older-than reruns (against this
checkout's own history), and a report that names the commits behind its cells and flags a mix."""

from __future__ import annotations

import subprocess
from pathlib import Path

import _records as R
import pytest

from harness import cli, machine
from harness.errors import UserError
from harness.experiments import Cell
from harness.runner import RunSummary, SweepOptions, pending
from harness.store import ResultStore
from reports.frame import load_results
from reports.html import _limitations, build_report

ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture(scope="module")
def commits() -> tuple[str, str]:
    try:
        return _git("rev-parse", "HEAD~1"), _git("rev-parse", "HEAD")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("needs a git checkout with at least two commits")


def test_older_means_a_strict_ancestor_of_the_named_commit(commits):
    parent, head = commits
    assert machine.commit_is_older(parent, "HEAD")
    assert not machine.commit_is_older(head, "HEAD")
    assert not machine.commit_is_older(head, parent)  # newer than the one named
    assert not machine.commit_is_older("f" * 40, "HEAD")  # not in this checkout: kept
    assert not machine.commit_is_older(None, "HEAD")  # no commit recorded: kept
    with pytest.raises(UserError, match="--rerun-older-than 'no-such-ref' is not a commit"):
        machine.commit_is_older(parent, "no-such-ref")


def test_rerun_older_than_picks_exactly_the_cells_of_older_commits(commits, tmp_path):
    parent, head = commits
    store = ResultStore(tmp_path, "m")
    cells = [Cell("e", "toy", "dense", {"seed": s}) for s in range(3)]
    for cell, commit in zip(cells, (parent, head, None), strict=True):
        R.put(store, R.cell(cell.cell_id, experiment="e", commit=commit, epochs=[R.epoch(1)]))
    summary = RunSummary()
    opts = SweepOptions(profile="unit", rerun_older_than="HEAD")
    assert pending(cells, [store], opts, summary, None) == [cells[0]]
    assert summary.skipped == [cells[1].cell_id, cells[2].cell_id]
    assert pending(cells, [store], SweepOptions(profile="unit"), RunSummary(), None) == []


def test_the_report_names_the_commits_and_flags_a_mix(tmp_path):
    for i, (commit, dirty) in enumerate([("a" * 40, False), ("b" * 40, False), ("b" * 40, True)]):
        R.write(tmp_path, R.cell(f"c{i}", machine_id="box", commit=commit, dirty=dirty,
                                 epochs=[R.epoch(1)]))
    R.write(tmp_path, R.cell("d", machine_id="other", commit="c" * 40, epochs=[R.epoch(1)]))
    res = load_results(tmp_path)
    code = res.code.set_index(["machine", "code"])["cells"]
    assert code.to_dict() == {
        ("box", "aaaaaaaaaaaa"): 1,
        ("box", "bbbbbbbbbbbb"): 1,
        ("box", "bbbbbbbbbbbb (uncommitted changes)"): 1,
        ("other", "cccccccccccc"): 1,
    }
    notes = [n for n in _limitations(res) if "versions of the code" in n]
    assert len(notes) == 1 and "Machine box's cells come from 3 versions" in notes[0]
    html = build_report(tmp_path, tmp_path / "report").read_text()
    assert "more than one version on a machine" in html and "cccccccccccc" in html
    # the same page from the command line's `report`, which trains nothing
    assert cli.main(["report", "--results", str(tmp_path), "--report", str(tmp_path / "r")]) == 0
    assert "more than one version" in (tmp_path / "r" / "index.html").read_text()
