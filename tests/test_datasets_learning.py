"""Each generated task is learnable: the dense network beats chance clearly on held-out data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import models
from harness import datasets
from harness.datasets import registry

# (train size, epochs, accuracy the network must reach; chance is 0.5, and with 1,000 test
# examples one standard error of an accuracy near 0.5 is about 0.016)
TASKS = {
    "rectangles": (1200, 3, 0.75),
    "convex": (3000, 3, 0.62),
    "rectangles-images": (3000, 3, 0.60),
}


@pytest.mark.parametrize("name", sorted(TASKS))
def test_dense_network_learns(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    n_train, epochs, floor = TASKS[name]
    monkeypatch.setattr(
        registry, "SPLIT_SIZES", {k: {"train": n_train, "test": 1000} for k in registry.SPLIT_SIZES}
    )
    X, y = datasets.load(name, "train", seed=0, cache_dir=tmp_path)
    Xt, yt = datasets.load(name, "test", seed=0, cache_dir=tmp_path)
    net = models.build(
        "dense",
        {
            "n_inputs": X.shape[1],
            "n_classes": 2,
            "hidden": [64],
            "batch_size": 32,
            "optimizer": "momentum",
            "lr": 0.05,
            "seed": 0,
        },
    )
    for _ in range(epochs):
        net.train_epoch(X, y)
    acc = net.score(Xt, yt)
    assert acc > floor, f"{name}: test accuracy {acc:.3f} is not clearly above chance"
    assert np.mean(yt == 1) == 0.5  # chance really is 0.5
