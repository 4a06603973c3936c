"""The three questions' experiments end to end at smoke scale, through the real entry point:
their records, their figures (PNG and CSV), their tables and the report's sections."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from harness.experiments import QUESTIONS, profile

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture()
def questions_run(smoke_run):
    """The session's smoke run: the smoke profile holds every question's cells."""
    return smoke_run[0]


def test_each_question_stores_its_cells(questions_run):
    folder = questions_run / "results" / "test-machine"
    for name in QUESTIONS:
        records = [json.loads(p.read_text()) for p in (folder / name).glob("*.json")]
        assert records and all(r["status"] == "ok" for r in records), name
    width = [json.loads(p.read_text()) for p in (folder / "width_scaling").glob("*.json")]
    hidden = {tuple(r["model"]["config"]["hidden"]) for r in width}
    assert hidden == {(w, w) for w in profile("smoke").widths}


def test_each_question_draws_its_figure_with_its_data(questions_run):
    report = questions_run / "report"
    for name in ("width_scaling", "time_to_accuracy", "hash_quality", "hardware_pareto"):
        assert (report / f"{name}.png").read_bytes()[:8] == PNG, name
        data = pd.read_csv(report / f"{name}.csv")
        assert len(data) > 0, name
    cross = pd.read_csv(report / "width_scaling_crossover.csv")
    assert set(cross["crossover"]) <= {"every", "never", "at", "not lasting"}
    assert {"s_per_example", "mults_per_example"} == set(cross["metric"])
    for table in ("time_to_target.csv", "hardware.csv"):
        assert len(pd.read_csv(report / table)) > 0, table
    # the one energy reader found every run's joules, each with its mode
    hardware = pd.read_csv(report / "hardware.csv")
    assert set(hardware["energy_basis"]) <= {"measured", "estimated", "mixed"}
    assert (hardware["j_per_example"] > 0).all()


def test_report_puts_them_in_their_sections(questions_run):
    html = (questions_run / "report" / "index.html").read_text()
    beyond = html.index('id="questions"')
    hardware = html.index('<h2 id="hardware">')
    limitations = html.index('<h2 id="limitations">')
    for name in ("width_scaling", "time_to_accuracy", "hash_quality"):
        assert beyond < html.index(f'<figure id="{name}">') < hardware, name
    assert hardware < html.index('<figure id="hardware_pareto">') < limitations
    assert "no dense runs on a GPU" in html or "CUDA" in html  # says what is missing
    claims = pd.read_csv(questions_run / "report" / "claims.csv")
    assert {"Less time than dense to the target accuracy",
            "Less energy than dense to the target accuracy"} <= set(claims["claim"])
