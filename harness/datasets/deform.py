"""MNIST8M-style training data: k elastically deformed copies of each training digit.

Procedure (Loosli, Canu and Bottou 2007; Simard et al. 2003), for copy j >= 1 of digit i:

* two smooth random fields F1, F2: i.i.d. uniform(-1, 1) per pixel, Gaussian-filtered with
  sigma ``SIGMA_PX`` (4 px, reflecting edges), each rescaled to an RMS of
  ``DISPLACEMENT_RMS_PX`` (1.5 px) so typical displacements are 1-2 px;
* first-order displacement: x + a*(F1 * dx) - a*(F2 * dy), with dx, dy the image's central-
  difference gradients (``np.gradient``) and a = +1 or -1 at random;
* a shift by -1, 0 or +1 pixel in each direction (zeros enter at the edge);
* rounded and clipped to uint8 0..255, the format the real MNIST8M is stored in.

Every random number of copy j of digit i comes from ``default_rng([seed, i, j])``, so an example
is the same whatever else is generated alongside it. Example t of the training set is digit
``t % N`` in copy ``t // N`` (copy 0 is the undeformed digit), N = source training size.
Generation runs in chunks of ``CHUNK`` examples, so memory beyond the output stays bounded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np

log = logging.getLogger(__name__)

VERSION = 1  # bump when the procedure changes: it is part of every cache key
DEFAULT_COPIES = 4  # deformed copies per digit for "mnist8m" (the real MNIST8M has 134)
SIGMA_PX = 4.0
DISPLACEMENT_RMS_PX = 1.5
MAX_SHIFT_PX = 1
CHUNK = 4096
PROCEDURE = (
    "copy j>=1 of digit i, all randomness from default_rng([seed, i, j]): fields F1, F2 = "
    f"uniform(-1,1) per pixel, Gaussian-filtered (sigma {SIGMA_PX} px, reflect), each scaled to "
    f"RMS {DISPLACEMENT_RMS_PX} px; x + a*(F1*dx) - a*(F2*dy) with np.gradient dx, dy and "
    f"a = +-1; then a shift of -{MAX_SHIFT_PX}..{MAX_SHIFT_PX} px per axis (zero fill); "
    "rounded, clipped to uint8. Example t = digit t % N in copy t // N (copy 0 = original)"
)


def _smooth(fields: np.ndarray) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(fields, sigma=(0, 0, SIGMA_PX, SIGMA_PX), mode="reflect")


def deform(images: np.ndarray, digit: np.ndarray, copy: np.ndarray, seed: int) -> np.ndarray:
    """Deformed copies (uint8, same shape) of ``images`` (b, rows, cols); row r is copy
    ``copy[r]`` of digit ``digit[r]``. Copy 0 is returned unchanged."""
    b, rows, cols = images.shape
    x = images.astype(np.float32)
    noise = np.empty((b, 2, rows, cols), np.float32)
    sign = np.empty(b, np.float32)
    shift = np.empty((b, 2), np.int64)
    for r in range(b):
        rng = np.random.default_rng([seed, int(digit[r]), int(copy[r])])
        noise[r] = rng.uniform(-1.0, 1.0, size=(2, rows, cols))
        sign[r] = 1.0 if rng.random() < 0.5 else -1.0
        shift[r] = rng.integers(-MAX_SHIFT_PX, MAX_SHIFT_PX + 1, size=2)
    fields = _smooth(noise)
    rms = np.sqrt(np.mean(fields**2, axis=(2, 3), keepdims=True))
    fields *= DISPLACEMENT_RMS_PX / rms
    dy, dx = np.gradient(x, axis=(1, 2))
    a = sign[:, None, None]
    out = x + a * (fields[:, 0] * dx) - a * (fields[:, 1] * dy)
    # Shift content by (sy, sx): out[r, c] = in[r - sy, c - sx], zeros from outside.
    pad = MAX_SHIFT_PX
    padded = np.pad(out, ((0, 0), (pad, pad), (pad, pad)))
    ri = np.arange(rows)[None, :, None] + pad - shift[:, 0, None, None]
    ci = np.arange(cols)[None, None, :] + pad - shift[:, 1, None, None]
    out = padded[np.arange(b)[:, None, None], ri, ci]
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    keep = np.asarray(copy) == 0
    out[keep] = images[keep]
    return out


def labels(y_source: np.ndarray, copies: int) -> np.ndarray:
    """Labels of all N*(copies+1) examples, in index order."""
    return np.tile(np.asarray(y_source, np.int64), copies + 1)


def examples(source: np.ndarray, indices: np.ndarray, seed: int, chunk: int = CHUNK) -> np.ndarray:
    """Examples ``indices`` of the deformation set built on ``source`` (N, rows, cols) uint8,
    as uint8 (len(indices), rows*cols)."""
    n_src = len(source)
    indices = np.asarray(indices, np.int64)
    out = np.empty((len(indices), source.shape[1] * source.shape[2]), np.uint8)
    for start in range(0, len(indices), chunk):
        t = indices[start : start + chunk]
        digit, copy = t % n_src, t // n_src
        out[start : start + len(t)] = deform(source[digit], digit, copy, seed).reshape(len(t), -1)
    return out


def iter_chunks(
    source: np.ndarray, y_source: np.ndarray, copies: int, seed: int, chunk: int = CHUNK
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The whole set, streamed: (X float32 in [0, 1], y int64) chunks in index order; for sets
    too big to hold (the real MNIST8M size is 8.1 million examples)."""
    total = len(source) * (copies + 1)
    for start in range(0, total, chunk):
        t = np.arange(start, min(start + chunk, total))
        X = examples(source, t, seed, chunk).astype(np.float32) / 255.0
        yield X, np.asarray(y_source, np.int64)[t % len(source)]
