"""At 5% active nodes the LSH network learns a small real task (sklearn's 8x8 digits) well
above chance and close to the dense network trained the same way."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import models


@pytest.mark.parametrize("optimizer", ["adagrad_momentum", "rowwise_adagrad"])
def test_lsh_at_5_percent_learns_digits(optimizer: str) -> None:
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    base = {"n_inputs": 64, "n_classes": 10, "hidden": [400], "seed": 0,
            "optimizer": optimizer}
    dense = models.build("dense", base)
    lsh = models.build("lsh", {**base, "active_fraction": 0.05})
    for _ in range(5):
        dense.train_epoch(Xtr, ytr)
        st = lsh.train_epoch(Xtr, ytr)
    acc_dense, acc_lsh = dense.score(Xte, yte), lsh.score(Xte, yte)
    assert st.active_fraction <= 0.05
    assert acc_lsh >= 0.8, acc_lsh  # chance is 0.1
    assert acc_lsh >= acc_dense - 0.1, (acc_lsh, acc_dense)
    assert st.mults.training < 0.2 * dense.mults_.training / 5
