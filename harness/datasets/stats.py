"""Class balance and pixel statistics of a dataset, for reports and generator checks."""

from __future__ import annotations

import numpy as np


def class_summary(X: np.ndarray, y: np.ndarray, white: float = 0.5) -> dict[int, dict[str, float]]:
    """Per class: count, fraction of examples, mean number of pixels above ``white`` (the
    "white pixels" of the Larochelle sets, whose values are in [0, 1]) and mean value."""
    y = np.asarray(y)
    out: dict[int, dict[str, float]] = {}
    for c in np.unique(y):
        rows = np.asarray(X)[y == c]
        out[int(c)] = {
            "count": int(len(rows)),
            "fraction": float(len(rows) / len(y)),
            "mean_white_pixels": float(np.mean(np.sum(rows > white, axis=1))),
            "mean_value": float(np.mean(rows)),
        }
    return out
