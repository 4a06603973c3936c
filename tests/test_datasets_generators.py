"""Convex, Rectangles and Rectangles-images generators: shapes, ranges, splits, determinism,
label meaning measured from the images, class balance."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import ConvexHull, QhullError

from harness import datasets
from harness.datasets import convex, registry
from harness.datasets import rectangles as rect

SMALL = {"train": 120, "test": 80}


@pytest.fixture
def small_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "SPLIT_SIZES", {k: dict(SMALL) for k in registry.SPLIT_SIZES})


@pytest.mark.parametrize("name", ["convex", "rectangles", "rectangles-images"])
def test_load_shapes_ranges_balance_determinism(
    name: str, small_sizes: None, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    X, y = datasets.load(name, "train", seed=5, cache_dir=cache)
    Xt, yt = datasets.load(name, "test", seed=5, cache_dir=cache)
    assert X.shape == (120, 784) and Xt.shape == (80, 784)
    assert X.dtype == np.float32 and y.dtype == np.int64
    assert 0.0 <= X.min() and X.max() <= 1.0 and X.std() > 0.05
    assert np.all(np.bincount(y) == 60) and np.all(np.bincount(yt) == 40)
    # Same seed, same data (rebuilt without the cache too); another seed, other data.
    X2, y2 = datasets.load(name, "train", seed=5, cache_dir=tmp_path / "other")
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    X3, _ = datasets.load(name, "train", seed=6, cache_dir=cache)
    assert not np.array_equal(X, X3)
    assert not np.array_equal(X[:80], Xt)  # train and test come from different streams
    Xs, ys = datasets.load(name, "train", n=30, seed=5, cache_dir=cache)
    assert Xs.shape == (30, 784) and np.all(np.bincount(ys) == 15)
    info = datasets.info(name)
    assert (
        info["n_features"] == 784 and info["n_classes"] == 2 and info["value_range"] == (0.0, 1.0)
    )
    assert info["method"]["labels"].startswith("1 = ")


def test_paper_split_sizes_recorded() -> None:
    assert registry.SPLIT_SIZES["convex"] == {"train": 8000, "test": 50000}
    assert registry.SPLIT_SIZES["rectangles"] == {"train": 1200, "test": 50000}
    assert registry.SPLIT_SIZES["rectangles-images"] == {"train": 12000, "test": 50000}
    for name, sizes in registry.SPLIT_SIZES.items():
        assert datasets.info(name)["paper_sizes"] == sizes


def _independent_convex(mask: np.ndarray) -> bool | None:
    """Convex iff no black pixel centre lies in the hull of the white ones (scipy's Qhull);
    None when the white pixels are degenerate (fewer than 3, or on one line)."""
    white = np.argwhere(mask).astype(float)
    black = np.argwhere(~mask).astype(float)
    try:
        eq = ConvexHull(white).equations  # rows (a, b, c): a*x + b*y + c <= 0 inside
    except (QhullError, ValueError):
        return None
    inside = np.all(black @ eq[:, :2].T + eq[:, 2] <= 1e-9, axis=1)
    return not bool(inside.any())


def test_convex_labels_pass_an_independent_convexity_test() -> None:
    X, y = convex.generate(400, seed=1)
    masks = X.reshape(-1, 28, 28).astype(bool)
    verdicts = [_independent_convex(m) for m in masks]
    checked = [(v, lab) for v, lab in zip(verdicts, y, strict=True) if v is not None]
    assert len(checked) > 380
    assert all(v == (lab == convex.LABEL_CONVEX) for v, lab in checked)
    assert np.all(X.sum(axis=1)[y == convex.LABEL_CONVEX] >= convex.MIN_CONVEX_PIXELS)
    assert set(np.unique(X)) <= {0, 1}
    # The module's own test agrees with the reference on hand-made shapes too.
    ring = np.zeros((28, 28), bool)
    ring[5:15, 5:15] = True
    ring[8:12, 8:12] = False
    assert not convex.is_convex(ring)[0] and _independent_convex(ring) is False
    disc = np.hypot(*np.mgrid[:28, :28] - 13.5) < 9
    assert convex.is_convex(disc)[0] and _independent_convex(disc) is True
    two = np.zeros((28, 28), bool)
    two[3, 3] = two[3, 20] = True  # a gap on a line is not convex
    assert not convex.is_convex(two)[0]


def test_convex_mean_white_pixels_balanced() -> None:
    X, y = convex.generate(2000, seed=0)
    summary = datasets.class_summary(X, y)
    a, b = summary[0]["mean_white_pixels"], summary[1]["mean_white_pixels"]
    assert abs(a - b) / max(a, b) < 0.08  # the authors tuned the two classes to match
    assert summary[0]["count"] == summary[1]["count"] == 1000


def _bbox(mask: np.ndarray) -> tuple[int, int]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def test_rectangles_label_measured_from_image() -> None:
    X, y = rect.generate_plain(500, seed=2)
    for img, label in zip(X.reshape(-1, 28, 28), y, strict=True):
        h, w = _bbox(img > 0)
        assert (h > w) == (label == rect.LABEL_TALL) and abs(h - w) >= rect.PLAIN_MIN_GAP
        # Only the outline: every white pixel lies on the bounding box's border.
        r, c = np.nonzero(img)
        on_border = (r == r.min()) | (r == r.max()) | (c == c.min()) | (c == c.max())
        assert on_border.all() and img.sum() == 2 * (h + w) - 4


def test_rectangles_images_geometry_and_patches() -> None:
    X, y, masks = rect.generate_images_with_masks(300, seed=3)
    imgs = X.reshape(-1, 28, 28)
    for img, label, mask in zip(imgs, y, masks, strict=True):
        h, w = _bbox(mask)
        assert mask.sum() == h * w  # a solid rectangle
        assert (h > w) == (label == rect.LABEL_TALL)
        assert abs(h - w) >= 5 and min(h, w) >= 10 and 0.25 <= h * w / 784 <= 0.75
        assert img[mask].std() > 0 and img[~mask].std() > 0  # textured patches, not flat
    # A natural-image task: grey levels, not a binary picture.
    assert len(np.unique(X)) > 200


@pytest.mark.slow
def test_test_split_generates_fast() -> None:
    start = time.perf_counter()
    X, _ = rect.generate_plain(50000, seed=0, split="test")
    assert X.shape == (50000, 784)
    X, _ = rect.generate_images(50000, seed=0, split="test")
    assert X.shape == (50000, 784)
    assert time.perf_counter() - start < 20
