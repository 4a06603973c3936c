"""End to end: the smoke profile through the real entry point, the report it writes, resuming,
and one clear line for the user's mistakes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from conftest import run_all


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.src: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.src.append(dict(attrs)["src"])


@pytest.fixture()
def smoke(smoke_run):
    return smoke_run


def test_smoke_run_writes_records_for_every_model(smoke):
    work, proc = smoke
    records = [
        json.loads(p.read_text()) for p in (work / "results" / "test-machine").glob("*/*.json")
    ]
    assert records and all(r["status"] == "ok" for r in records)
    models_run = {r["model"]["name"] for r in records}
    assert {"dense", "dropout", "standout", "wta"} <= models_run
    for r in records:
        assert len(r["epochs"]) == 3
        for ep in r["epochs"]:
            assert ep["wall_s"] > 0 and ep["cpu_s"] >= 0
            assert 0.0 <= ep["test_accuracy"] <= 1.0
            assert ep["mults"]["training"] > 0
            modes = {e["mode"] for e in ep["energy"]}
            assert modes and modes <= {"measured", "estimated", "unavailable"}
        assert r["machine"]["machine_id"] == "test-machine" and r["code"]["package_version"]
    assert "report:" in proc.stdout


def test_report_page_has_valid_png_figures_and_csv(smoke):
    from PIL import Image

    work, _ = smoke
    index = work / "report" / "index.html"
    parser = _Images()
    parser.feed(index.read_text())
    assert len(parser.src) >= 3
    for src in parser.src:
        png = index.parent / src
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(png) as im:
            im.verify()
        assert png.with_suffix(".csv").stat().st_size > 0
    text = index.read_text()
    for section in ("Setup", "Results", "Hardware comparison", "Limitations"):
        assert section in text


def test_second_run_resumes_without_retraining(smoke):
    work, _ = smoke
    proc = run_all(["--profile", "smoke", "--idle-s", "0"], work)
    assert proc.returncode == 0, proc.stderr
    stored = len(list((work / "results" / "test-machine").glob("*/*.json")))
    assert re.search(rf"^0 runs done, {stored} already stored", proc.stdout, re.M)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--profile", "nope"], "invalid choice: 'nope'"),
        (["--models", "banana"], "unknown model(s) ['banana']"),
        (["--report-only", "--results", "missing-folder"], "no results folder at missing-folder"),
        (["--meter", "geiger"], "unknown energy backend"),
        (["--datasets", "imagenet"], "unknown dataset 'imagenet'"),
        (["--datasets", "mnist", "--models", "dense", "--data-dir", "no-such-dir"], "no-such-dir"),
        (["--results", "/proc/not-writable", "--models", "dense"], "cannot write"),
        (["--models", "dropout", "--only", "thread_scaling"], "nothing to run"),
    ],
)
def test_user_mistakes_get_one_clear_line(tmp_path, args, needle):
    proc = run_all(args, tmp_path, timeout=120)
    assert proc.returncode != 0
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr


CHROMIUM = (
    shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
)


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium (apt-get install chromium)")
def test_report_renders_in_a_real_browser_with_every_figure_decoded(smoke, tmp_path):
    work, _ = smoke
    index = work / "report" / "index.html"
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            index.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    match = re.search(r'data-images-loaded="(\d+)/(\d+)"', proc.stdout)
    assert match, proc.stderr[-2000:]
    loaded, total = map(int, match.groups())
    assert total >= 3 and loaded == total
