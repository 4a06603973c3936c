"""The wide layer's access pattern on its own: gather-dot and sparse update of R active rows
times C sorted random columns of an n x n weight matrix, float32 against bf16 storage
(uint16, widened to float32 for the arithmetic; updates rounded back stochastically, or to
nearest).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python -m bench.micro_gather \
        16000,800,95 1000,100,100

It measures the direction "bf16 weights, float32 accumulation" of the LSH-at-scale issue
before any model code is written for it: the per-example forward pass is bound by one
cache line per read at width 16,000, and bf16 halves the bytes per row. Each setting runs
`--rounds` alternating rounds (the order flips every round, as in bench_lsh --scaling) and
prints the median ns per read or write and the median of the per-round ratios.
Not part of the test suite; bench/README.md has the figures and the verdict.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from bench.args import at_least

FAST = {"reassoc", "contract"}  # the kernels' own fastmath flags (models/lsh/kernels.py)


@intrinsic
def _bf16_to_f32(typingctx, x):
    """Widen: the 16 bits become the high half of a float32 (exact)."""
    def codegen(context, builder, signature, args):
        v = builder.shl(builder.zext(args[0], ir.IntType(32)), ir.Constant(ir.IntType(32), 16))
        return builder.bitcast(v, ir.FloatType())
    return types.float32(types.uint16), codegen


@intrinsic
def _f32_to_bf16(typingctx, x, r):
    """Narrow, adding the low 16 bits of r before truncating: r uniform gives stochastic
    rounding (unbiased, so updates smaller than half a bf16 step are not lost on average);
    r = 0x8000 gives round-to-nearest (ties away from zero)."""
    def codegen(context, builder, signature, args):
        v = builder.bitcast(args[0], ir.IntType(32))
        v = builder.add(v, builder.and_(args[1], ir.Constant(ir.IntType(32), 0xFFFF)))
        return builder.trunc(builder.lshr(v, ir.Constant(ir.IntType(32), 16)), ir.IntType(16))
    return types.uint16(types.float32, types.uint32), codegen


# One kernel per variant, written out: each is compiled and timed as the specialised loop
# a model would run (a flag inside one shared loop measured slower, not unswitched).
@njit(fastmath=FAST)
def _forward_f32(W, n, rows, cols, x, out):
    for r in range(rows.shape[0]):
        base = rows[r] * n
        z = np.float32(0.0)
        for k in range(cols.shape[0]):
            z += W[base + cols[k]] * x[k]
        out[r] = z


@njit(fastmath=FAST)
def _forward_bf16(W, n, rows, cols, x, out):
    for r in range(rows.shape[0]):
        base = rows[r] * n
        z = np.float32(0.0)
        for k in range(cols.shape[0]):
            z += _bf16_to_f32(W[base + cols[k]]) * x[k]
        out[r] = z


@njit(fastmath=FAST)
def _update_f32(W, n, rows, cols, x, dz, lr, seed):
    for r in range(rows.shape[0]):
        base = rows[r] * n
        s = lr * dz[r]
        for k in range(cols.shape[0]):
            W[base + cols[k]] -= s * x[k]


@njit(fastmath=FAST)
def _update_bf16_stochastic(W, n, rows, cols, x, dz, lr, seed):
    # The rounding bits hash the weight's index with the step's seed: no serial RNG chain.
    for r in range(rows.shape[0]):
        base = rows[r] * n
        s = lr * dz[r]
        for k in range(cols.shape[0]):
            i = base + cols[k]
            h = (np.uint32(i) ^ seed) * np.uint32(2654435761)
            W[i] = _f32_to_bf16(_bf16_to_f32(W[i]) - s * x[k], h >> np.uint32(16))


@njit(fastmath=FAST)
def _update_bf16_nearest(W, n, rows, cols, x, dz, lr, seed):
    for r in range(rows.shape[0]):
        base = rows[r] * n
        s = lr * dz[r]
        for k in range(cols.shape[0]):
            i = base + cols[k]
            W[i] = _f32_to_bf16(_bf16_to_f32(W[i]) - s * x[k], np.uint32(0x8000))


def _one(n: int, R: int, C: int, reps: int, rounds: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    W32 = (rng.standard_normal(n * n, dtype=np.float32) * np.float32(0.03))
    W16 = (W32.view(np.uint32) >> 16).astype(np.uint16)
    x = rng.standard_normal(C).astype(np.float32)
    dz = rng.standard_normal(R).astype(np.float32)
    out = np.zeros(R, np.float32)
    lr = np.float32(1e-3)
    kernels: dict[str, tuple[np.ndarray, Any, bool]] = {  # name -> (matrix, kernel, update?)
        "fwd f32": (W32, _forward_f32, False), "fwd bf16": (W16, _forward_bf16, False),
        "upd f32": (W32, _update_f32, True), "upd bf16 stoch": (W16, _update_bf16_stochastic, True),
        "upd bf16 near": (W16, _update_bf16_nearest, True),
    }
    warm = np.arange(min(R, C), dtype=np.int64)
    for W, k, upd in kernels.values():  # compile outside the timing
        (k(W, n, warm, warm, x[:warm.size], dz, lr, np.uint32(1)) if upd
         else k(W, n, warm, warm, x[:warm.size], out))
    times: dict[str, list[float]] = {name: [] for name in kernels}
    for rnd in range(rounds):
        sets = [(np.sort(rng.choice(n, R, replace=False)).astype(np.int64),
                 np.sort(rng.choice(n, C, replace=False)).astype(np.int64)) for _ in range(reps)]
        order = list(kernels) if rnd % 2 == 0 else list(reversed(kernels))
        for name in order:
            W, k, upd = kernels[name]
            t0 = time.perf_counter()
            for j, (rows, cols) in enumerate(sets):
                (k(W, n, rows, cols, x, dz, lr, np.uint32(rnd * reps + j)) if upd
                 else k(W, n, rows, cols, x, out))
            times[name].append((time.perf_counter() - t0) / (reps * R * C) * 1e9)
    med = {name: float(np.median(t)) for name, t in times.items()}

    def ratio(a: str, b: str) -> str:
        return f"{float(np.median(np.array(times[a]) / np.array(times[b]))):.2f}x"

    print(f"n={n} R={R} C={C} ({rounds} rounds of {reps}): ns per read or write, median: "
          + ", ".join(f"{k} {v:.2f}" for k, v in med.items())
          + f" | f32/bf16: fwd {ratio('fwd f32', 'fwd bf16')}, "
          f"upd stoch {ratio('upd f32', 'upd bf16 stoch')}, "
          f"upd near {ratio('upd f32', 'upd bf16 near')}", flush=True)


def _setting(text: str) -> tuple[int, int, int]:
    """'n,R,C' with 1 <= R, C <= n."""
    try:
        n, R, C = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not n,R,C (three integers, "
                                         "e.g. 16000,800,95)") from None
    if not (1 <= R <= n and 1 <= C <= n):
        raise argparse.ArgumentTypeError(f"{text!r}: R and C must be between 1 and n")
    return n, R, C


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("settings", nargs="+", metavar="n,R,C", type=_setting,
                    help="matrix width, active rows, active columns")
    ap.add_argument("--rounds", type=at_least(1), default=11)
    ap.add_argument("--reads", type=at_least(1), default=2_000_000,
                    help="reads per kernel per round")
    args = ap.parse_args()
    for n, R, C in args.settings:
        need = n * n * 12  # float32 and bf16 copies and the temporaries that make them
        if need > os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"):
            ap.error(f"n={n} needs {need / 2**30:.1f} GiB of free memory; pick a smaller n")
        _one(n, R, C, reps=max(1, round(args.reads / (R * C))), rounds=args.rounds)


if __name__ == "__main__":
    main()
