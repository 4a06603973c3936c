"""Shared fixtures: small datasets built in-process, no files or network."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits in [0, 1]: (X_train, y_train, X_test, y_test)."""
    from harness.datasets import load

    X, y = load("digits", "train")
    Xt, yt = load("digits", "test")
    return X, y, Xt, yt
