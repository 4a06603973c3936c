"""The Rectangles and Rectangles-images tasks (Larochelle et al. 2007), regenerated: is the
rectangle taller than it is wide?

The original generators were never published; these follow the authors' descriptions, and the
constants below (listed in ``CHOICES_PLAIN`` / ``CHOICES_IMAGES``) are the choices made where the
descriptions are silent.

Rectangles (plain): height h and width w (rows and columns spanned, outline included) drawn
independently uniform on {3, ..., 28}, redrawn while |h - w| < 3; the top-left corner uniform
among the positions where the rectangle fits; only the one-pixel outline is white (1) on black.

Rectangles-images: h and w uniform on {10, ..., 28}, redrawn unless |h - w| >= 5 and the area
h*w is between 25% and 75% of 784 pixels; the rectangle (inside and outline) shows one 28x28
patch of a natural photograph, the rest of the image another. Patches are uniform random crops
from scikit-image's bundled photographs (``POOL``; grey, area-averaged down by the integer
factor that brings the shorter side to between 128 and 255 pixels), with the photograph chosen
uniformly; a patch whose standard deviation is below ``MIN_PATCH_STD`` is redrawn. The two
patches are drawn independently (they may come from the same photograph). Values are grey
levels quantised to k/255.

Both: label 1 = tall (h > w), 0 = wide; labels exactly balanced per split and in random order
(each (h, w) pair is drawn as above and its sides swapped when needed to match the label, which
leaves the shape distribution within a class unchanged because it is symmetric in h and w).
One generator per split: ``default_rng([seed, 0])`` for train, ``default_rng([seed, 1])`` for test.
"""

from __future__ import annotations

import functools

import numpy as np

from harness.datasets.split import balanced_labels
from harness.errors import DataError

VERSION = 1
SIZE = 28
LABEL_TALL, LABEL_WIDE = 1, 0

PLAIN_SIDES = (3, SIZE)  # inclusive
PLAIN_MIN_GAP = 3

IMAGE_SIDES = (10, SIZE)
IMAGE_MIN_GAP = 5
IMAGE_AREA = (0.25, 0.75)  # fraction of SIZE*SIZE, inclusive
MIN_PATCH_STD = 0.05  # on the [0, 1] grey scale
POOL = (
    "astronaut",
    "brick",
    "camera",
    "cat",
    "cell",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "retina",
    "rocket",
)  # scikit-image's bundled photographs (no download); drawings and text left out
POOL_SHORT_SIDE = 128

CHOICES_PLAIN = {
    "sides": f"h, w uniform on {{{PLAIN_SIDES[0]}..{PLAIN_SIDES[1]}}} (outline included), "
    f"redrawn while |h-w| < {PLAIN_MIN_GAP}",
    "placement": "top-left corner uniform over positions where the rectangle fits",
    "drawing": "one-pixel outline = 1.0 on 0.0",
    "labels": f"{LABEL_TALL} = tall (h > w), {LABEL_WIDE} = wide; exactly balanced per split",
    "seeding": "default_rng([seed, 0]) for train, default_rng([seed, 1]) for test",
}
CHOICES_IMAGES = {
    "sides": f"h, w uniform on {{{IMAGE_SIDES[0]}..{IMAGE_SIDES[1]}}}, redrawn unless "
    f"|h-w| >= {IMAGE_MIN_GAP} and {IMAGE_AREA[0]:.0%} <= h*w/784 <= {IMAGE_AREA[1]:.0%}",
    "placement": "top-left corner uniform over positions where the rectangle fits",
    "patches": "uniform 28x28 crops of a uniformly chosen photograph from skimage.data "
    f"{list(POOL)}, grey, area-averaged so the shorter side is {POOL_SHORT_SIDE}-"
    f"{2 * POOL_SHORT_SIDE - 1} px; redrawn if std < {MIN_PATCH_STD}; foreground and "
    "background patches independent",
    "drawing": "rectangle inside and outline show the foreground patch, the rest the background",
    "values": "grey levels k/255 in [0, 1]",
    "labels": f"{LABEL_TALL} = tall (h > w), {LABEL_WIDE} = wide; exactly balanced per split",
    "seeding": "default_rng([seed, 0]) for train, default_rng([seed, 1]) for test",
}


def _rng(seed: int, split: str) -> np.random.Generator:
    return np.random.default_rng([seed, 0 if split == "train" else 1])


def _sides(
    rng: np.random.Generator,
    y: np.ndarray,
    sides: tuple[int, int],
    gap: int,
    area: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(h, w) per example, drawn with rejection, then oriented to match the label."""
    n = len(y)
    h, w = np.empty(n, np.int64), np.empty(n, np.int64)
    todo = np.arange(n)
    while len(todo):
        a = rng.integers(sides[0], sides[1] + 1, size=len(todo))
        b = rng.integers(sides[0], sides[1] + 1, size=len(todo))
        ok = np.abs(a - b) >= gap
        if area is not None:
            frac = a * b / (SIZE * SIZE)
            ok &= (frac >= area[0]) & (frac <= area[1])
        h[todo[ok]], w[todo[ok]] = a[ok], b[ok]
        todo = todo[~ok]
    swap = (h > w) != (y == LABEL_TALL)
    h[swap], w[swap] = w[swap], h[swap]
    return h, w


def _place(rng: np.random.Generator, h: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    top = np.floor(rng.random(len(h)) * (SIZE - h + 1)).astype(np.int64)
    left = np.floor(rng.random(len(w)) * (SIZE - w + 1)).astype(np.int64)
    return top, left


def _grid() -> tuple[np.ndarray, np.ndarray]:
    r = np.arange(SIZE)[None, :, None]
    c = np.arange(SIZE)[None, None, :]
    return r, c


def generate_plain(n: int, seed: int, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """``n`` plain examples: (images uint8 (n, 784) with values 0/1, labels int64)."""
    rng = _rng(seed, split)
    y = balanced_labels(n, 2, rng)
    h, w = _sides(rng, y, PLAIN_SIDES, PLAIN_MIN_GAP)
    top, left = _place(rng, h, w)
    r, c = _grid()
    t, b = top[:, None, None], (top + h - 1)[:, None, None]
    lft, rt = left[:, None, None], (left + w - 1)[:, None, None]
    in_rows, in_cols = (r >= t) & (r <= b), (c >= lft) & (c <= rt)
    outline = ((r == t) | (r == b)) & in_cols | ((c == lft) | (c == rt)) & in_rows
    return outline.reshape(n, -1).astype(np.uint8), y


@functools.lru_cache(maxsize=1)
def natural_pool() -> tuple[np.ndarray, ...]:
    """The grey photographs patches are cut from, as uint8 arrays (built once per process)."""
    try:
        import skimage.data
        from skimage.color import rgb2gray
        from skimage.transform import downscale_local_mean
    except ImportError:
        raise DataError("rectangles-images needs scikit-image: pip install scikit-image") from None
    pool = []
    for name in POOL:
        img = np.asarray(getattr(skimage.data, name)())
        if img.ndim == 3:
            img = rgb2gray(img[..., :3])
        else:
            img = img / (255.0 if img.dtype == np.uint8 else float(img.max()))
        f = max(1, min(img.shape) // POOL_SHORT_SIDE)
        img = downscale_local_mean(img, (f, f))
        pool.append(np.clip(np.rint(img * 255), 0, 255).astype(np.uint8))
    return tuple(pool)


def _patches(rng: np.random.Generator, m: int) -> np.ndarray:
    """``m`` patches (m, 28, 28) uint8 with std >= MIN_PATCH_STD (rejection)."""
    pool = natural_pool()
    out = np.empty((m, SIZE, SIZE), np.uint8)
    todo = np.arange(m)
    r, c = np.arange(SIZE)[None, :, None], np.arange(SIZE)[None, None, :]
    while len(todo):
        src = rng.integers(len(pool), size=len(todo))
        u, v = rng.random(len(todo)), rng.random(len(todo))
        for k, img in enumerate(pool):
            sel = np.flatnonzero(src == k)
            if len(sel) == 0:
                continue
            r0 = np.floor(u[sel] * (img.shape[0] - SIZE + 1)).astype(np.int64)
            c0 = np.floor(v[sel] * (img.shape[1] - SIZE + 1)).astype(np.int64)
            out[todo[sel]] = img[r0[:, None, None] + r, c0[:, None, None] + c]
        ok = out[todo].std(axis=(1, 2)) / 255.0 >= MIN_PATCH_STD
        todo = todo[~ok]
    return out


def generate_images(n: int, seed: int, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """``n`` rectangles-images examples: (images uint8 (n, 784), grey = value/255; labels)."""
    X, y, _ = generate_images_with_masks(n, seed, split)
    return X, y


def generate_images_with_masks(
    n: int, seed: int, split: str = "train"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """As ``generate_images``, plus the rectangle masks (n, 28, 28) bool, for checking."""
    rng = _rng(seed, split)
    y = balanced_labels(n, 2, rng)
    h, w = _sides(rng, y, IMAGE_SIDES, IMAGE_MIN_GAP, IMAGE_AREA)
    top, left = _place(rng, h, w)
    fg, bg = _patches(rng, n), _patches(rng, n)
    r, c = _grid()
    inside = (
        (r >= top[:, None, None])
        & (r < (top + h)[:, None, None])
        & (c >= left[:, None, None])
        & (c < (left + w)[:, None, None])
    )
    return np.where(inside, fg, bg).reshape(n, -1), y, inside
