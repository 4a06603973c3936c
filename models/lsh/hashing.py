"""Hash families for one hidden layer: how a neuron (data side) and an input (query side)
become K*L projection values whose signs give the L codes of K bits.

Both families hash the neuron's weight vector with its bias appended, against the query
(the layer's input) with a constant 1 appended, so that the collision probability follows
the full pre-activation w.x + b. Inputs and weights may first be pooled over contiguous
blocks of ``pool`` coordinates (the released code's 784 -> 8 style of dimensionality
reduction). Pooling here sums instead of averaging: a positive scale never changes a sign.

The query side is applied inside the numba kernels (``kernels._hash_query``) from
``query_matrix()``; the data side runs here through BLAS at every table rebuild.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np

from models.lsh.kernels import pool_blocks


def pooled_width(n_in: int, pool: int) -> int:
    return math.ceil(n_in / pool)


def pool_rows(W: np.ndarray, pool: int) -> np.ndarray:
    """Sum each row over contiguous blocks of ``pool`` columns (additions only)."""
    if pool == 1:
        return W
    n, d = W.shape
    dp = pooled_width(d, pool)
    # numba, straight from the (strided) weights, no padded copy; rows in parallel. Blocks are
    # summed in column order: below 8 the same floats as numpy's sum of the padded blocks,
    # from 8 on within rounding of it (numpy sums those pairwise).
    out = np.zeros((n, dp), dtype=W.dtype)
    pool_blocks(W, pool, out)
    return out


class HashFamily(ABC):
    """K*L signed projections over (pooled input, bias) for one layer."""

    name = ""

    def __init__(self, n_in: int, pool: int, K: int, L: int, rng: np.random.Generator,
                 dtype: np.dtype, projections: str = "gaussian") -> None:
        self.n_in, self.pool, self.K, self.L = n_in, pool, K, L
        self.dp = pooled_width(n_in, pool)
        self.projections = projections
        # rows = pooled coordinates, then the bias coordinate
        shape = (self.dp + 1, K * L)
        if projections == "rademacher":
            # +-1 entries (Achlioptas): the same sign-projection guarantees in practice.
            # Stored in the weights' dtype on both sides: int8 on the query side measured
            # slower (its conversion to float costs more than the bytes it saves), and every
            # projection dtype is one more cold compile of all the kernels (~60 s)
            signs = rng.integers(0, 2, size=shape, dtype=np.int8) * 2 - 1
            self.proj = signs.astype(dtype)
        else:
            self.proj = rng.standard_normal(shape).astype(dtype)

    def query_matrix(self) -> np.ndarray:
        """(dp + 1, K*L): what the kernels multiply the pooled sparse input with."""
        return self.proj

    @abstractmethod
    def neuron_projections(self, W: np.ndarray, b: np.ndarray, full: bool
                           ) -> tuple[np.ndarray, int]:
        """Projections (n, K*L) of the given neurons (rows of W, entries of b), and the
        multiplications spent. ``full`` marks a rebuild over the whole layer."""

    def _data_vectors(self, W: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.concatenate([pool_rows(W, self.pool), b[:, None]], axis=1)

    def describe(self) -> dict:
        return {"family": self.name, "pooled_width": self.dp, "bits": self.K * self.L,
                "projections": self.projections}


class SignedRandomProjection(HashFamily):
    """SimHash: bit = sign(a . [w, b]); collision probability 1 - angle/pi."""

    name = "srp"

    def neuron_projections(self, W, b, full):  # type: ignore[no-untyped-def]
        V = self._data_vectors(W, b)
        return V @ self.proj, V.shape[0] * V.shape[1] * self.proj.shape[1]


class SimpleLSH(HashFamily):
    """Neyshabur & Srebro's asymmetric transform for maximum inner product search.

    Data: P(w) = [w, sqrt(M^2 - |w|^2)] / M with M the largest norm in the layer (taken at
    each full rebuild; a neuron that later outgrows it gets 0 as its extra coordinate).
    Query: Q(x) = [x, 0] / |x|. SRP on P and Q then ranks by the inner product w.x (the
    scales 1/M and 1/|x| are positive, so the code skips them)."""

    name = "simple_lsh"

    def __init__(self, n_in, pool, K, L, rng, dtype, projections="gaussian"):  # type: ignore[no-untyped-def]
        super().__init__(n_in, pool, K, L, rng, dtype, projections)
        self.extra = rng.standard_normal(K * L).astype(dtype)
        self.max_sq_norm = 0.0

    def neuron_projections(self, W, b, full):  # type: ignore[no-untyped-def]
        V = self._data_vectors(W, b)
        sq = np.einsum("ij,ij->i", V, V)
        if full:
            self.max_sq_norm = float(sq.max(initial=0.0))
        ext = np.sqrt(np.maximum(self.max_sq_norm - sq, 0.0)).astype(V.dtype)
        proj = V @ self.proj
        proj += ext[:, None] * self.extra[None, :]
        n, d = V.shape
        kl = self.proj.shape[1]
        return proj, n * d + n * d * kl + n * kl

    def describe(self) -> dict:
        return {**super().describe(), "max_sq_norm": self.max_sq_norm}


FAMILIES: dict[str, type[HashFamily]] = {
    SignedRandomProjection.name: SignedRandomProjection,
    SimpleLSH.name: SimpleLSH,
}


def make_family(name: str, n_in: int, pool: int, K: int, L: int, rng: np.random.Generator,
                dtype: np.dtype, projections: str = "gaussian") -> HashFamily:
    return FAMILIES[name](n_in, pool, K, L, rng, dtype, projections)
