"""Shared fixtures: small datasets built in-process, and one smoke run of the real entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_all(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``run_all.py ARGS --machine-id test-machine`` in ``cwd``, as a user would start it."""
    return subprocess.run(
        [sys.executable, str(ROOT / "run_all.py"), *args, "--machine-id", "test-machine"],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The whole smoke profile (the paper's experiments and the questions), run once for the
    session: results in ``work/results``, the report in ``work/report``. Read it, don't change
    it (a resume over it is fine: it trains nothing)."""
    work = tmp_path_factory.mktemp("smoke")
    proc = run_all(["--profile", "smoke", "--idle-s", "0.2"], work, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work, proc


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits in [0, 1]: (X_train, y_train, X_test, y_test)."""
    from harness.datasets import load

    X, y = load("digits", "train")
    Xt, yt = load("digits", "test")
    return X, y, Xt, yt
