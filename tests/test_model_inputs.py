"""Every model checks what it is handed before any kernel runs (shape, dtype, finiteness,
labels in range, one label per row, at least one row), and a run whose loss or weights become
non-finite stops with a DivergedError that names the epoch and the examples."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import models
from models.base import ConfigError, DivergedError, InputError

ROOT = Path(__file__).resolve().parents[1]
N_IN, N_CLASSES = 6, 10
SMALL = {"n_inputs": N_IN, "n_classes": N_CLASSES, "hidden": [8], "seed": 1}
# name -> extra settings; lsh with tables (topk) and without (hamming) both index by label
MODELS = {
    "dense-compiled": ("dense", {}),
    "dense-blas": ("dense", {"batch_size": 8}),
    "lsh": ("lsh", {"K": 2, "L": 3, "pool_input": 1, "pool_hidden": 1, "selection": "topk"}),
    "lsh-hamming": ("lsh", {"K": 2, "L": 3, "pool_input": 1, "pool_hidden": 1}),
    "dropout": ("dropout", {"active_fraction": 0.5}),
}
BAD_LABELS = [10, -1, 10**6, 10**9, -(10**9)]


def _build(key: str, **kw: object) -> models.Model:
    name, extra = MODELS[key]
    return models.build(name, {**SMALL, **extra, **kw})


def _data(n: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, N_IN)).astype(np.float32), rng.integers(0, N_CLASSES, n)


def _calls(net: models.Model, X: object, y: object) -> dict[str, object]:
    return {
        "train_epoch": lambda: net.train_epoch(X, y),  # type: ignore[arg-type]
        "loss_and_grads": lambda: net.loss_and_grads(X, y),  # type: ignore[arg-type]
        "score": lambda: net.score(X, y),  # type: ignore[arg-type]
    }


def _untouched(net: models.Model, key: str) -> None:
    """A rejected call changed nothing: same weights, epochs and random stream as new."""
    fresh = _build(key)
    assert net.epochs_done_ == 0
    for a, b in zip(net.weights_, fresh.weights_, strict=True):
        np.testing.assert_array_equal(a, b)
    assert net.rng_.random() == fresh.rng_.random()


@pytest.mark.parametrize("key", MODELS)
@pytest.mark.parametrize("label", BAD_LABELS)
def test_out_of_range_labels_are_refused_before_training(key, label):
    X, y = _data()
    y[3] = label
    y[7] = label  # the first offending row is named
    net = _build(key)
    for call in _calls(net, X, y).values():
        with pytest.raises(InputError) as err:
            call()  # type: ignore[operator]
        msg = str(err.value)
        assert f"y holds label {label} at row 3" in msg and "labels must be 0..9" in msg
        if label >= N_CLASSES:
            assert f"n_classes={N_CLASSES}" in msg and f"pass n_classes={label + 1}" in msg
    _untouched(net, key)


@pytest.mark.parametrize("key", MODELS)
def test_labels_must_be_whole_numbers_one_per_row(key):
    X, y = _data()
    net = _build(key)
    yf = y.astype(float)
    yf[2] = 1.5
    cases = [
        (yf, r"y holds label 1\.5 at row 2, which is not an integer"),
        (np.where(np.arange(12) == 4, np.nan, y), r"y holds label nan at row 4"),
        (y[:-1], r"y has 11 labels but X has 12 rows"),
        (np.append(y, 0), r"y has 13 labels but X has 12 rows"),
        (y[:, None], r"y has shape \(12, 1\): pass a 1-D array"),
        (np.array(["a"] * 12), r"y has dtype <U1"),
    ]
    for bad, pattern in cases:
        for call in _calls(net, X, bad).values():
            with pytest.raises(InputError, match=pattern):
                call()  # type: ignore[operator]
    _untouched(net, key)
    # Whole numbers stored as floats are labels like any other.
    assert np.isfinite(net.train_epoch(X, y.astype(float)).loss)


@pytest.mark.parametrize("key", MODELS)
def test_bad_inputs_are_refused_by_every_call(key):
    X, y = _data()
    net = _build(key)
    nan, inf = X.copy(), X.astype(np.float64)
    nan[5, 2] = np.nan
    inf[1, 4] = -np.inf
    huge = X.astype(np.float64)
    huge[0, 0] = 1e300  # finite, but not in float32
    cases = [
        (nan, y, r"X holds nan at row 5, column 2"),
        (inf, y, r"X holds -inf at row 1, column 4"),
        (huge, y, r"X holds 1e\+300 at row 0, column 0, which overflows float32"),
        (X[:0], y[:0], r"X has no rows"),
        (X[:, :5], y, r"X has shape \(12, 5\); the model expects \(n, 6\)"),
        (X[0], y[:1], r"X has shape \(6,\); the model expects \(n, 6\).*X\[None, :\]"),
        (np.full((12, N_IN), "x"), y, r"X has dtype <U1"),
        (X.astype(complex), y, r"X has dtype complex128"),
        ([[1.0] * N_IN, [1.0]], y[:2], r"X cannot be read as an array"),
    ]
    for bad_X, bad_y, pattern in cases:
        calls = {
            **_calls(net, bad_X, bad_y),
            "predict": lambda bad_X=bad_X: net.predict(bad_X),  # type: ignore[arg-type]
            "predict_scores": lambda bad_X=bad_X: net.predict_scores(bad_X),  # type: ignore[arg-type]
        }
        for name, call in calls.items():
            with pytest.raises(InputError, match=pattern):
                call()  # type: ignore[operator]
            assert name  # (which call failed shows in pytest's locals)
    _untouched(net, key)


def test_input_errors_are_config_errors_the_entry_points_print():
    assert issubclass(InputError, ConfigError) and issubclass(DivergedError, ConfigError)


def test_bad_labels_never_reach_the_lsh_kernels_in_a_fresh_process():
    """The kernels index by label without bounds checks: before the check, 10**9 was a
    segfault (exit 139). Run in a child so a crash would fail this test, not kill pytest."""
    script = textwrap.dedent(
        f"""
        import numpy as np, models
        from models.base import InputError
        rng = np.random.default_rng(0)
        X = rng.random((12, {N_IN})).astype(np.float32)
        for label in {BAD_LABELS!r}:
            for sel in ("topk", "hamming"):
                net = models.build("lsh", {{"n_inputs": {N_IN}, "n_classes": {N_CLASSES},
                    "hidden": [8], "K": 2, "L": 3, "pool_input": 1, "pool_hidden": 1,
                    "selection": sel}})
                y = rng.integers(0, {N_CLASSES}, 12)
                y[3] = label
                for call in (net.train_epoch, net.loss_and_grads):
                    try:
                        call(X, y)
                    except InputError as exc:
                        print("refused:", exc)
                    else:
                        print("trained on label", label)
            net = models.build("lsh", {{"n_inputs": {N_IN}, "n_classes": {N_CLASSES},
                "hidden": [8]}})
            try:
                net.train_epoch(X, y[:5])
            except InputError as exc:
                print("refused:", exc)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stdout.splitlines()
    assert len(lines) == len(BAD_LABELS) * 5 and all(s.startswith("refused:") for s in lines)
    assert "y holds label 1000000000 at row 3" in proc.stdout
    assert "y holds label -1000000000 at row 3" in proc.stdout
    assert "y has 5 labels but X has 12 rows" in proc.stdout


# -- divergence --------------------------------------------------------------------------

_AT = re.compile(r"diverged at epoch (\d+), examples? (\d+)(?:-(\d+))? of (\d+)")
# lr 1e20 with sgd: the weights overflow and the loss is NaN within the first examples.
# (lr 1e6 does not do it here: the ReLU units die, and the loss stays finite at the
# kernels' 1e-30 probability floor, about 62 nats.)
HUGE_LR = {"optimizer": "sgd", "lr": 1e20}


def _where(exc: pytest.ExceptionInfo) -> tuple[int, int, int, int]:
    m = _AT.search(str(exc.value))
    assert m, str(exc.value)
    epoch, a, b, n = m.groups()
    return int(epoch), int(a), int(b or a), int(n)


def _random(n: int = 3000, d: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, d)).astype(np.float32), rng.integers(0, 10, n)


def _huge(name: str, **kw: object) -> models.Model:
    return models.build(name, {"n_inputs": 20, "n_classes": 10, "hidden": [32], **HUGE_LR, **kw})


def test_dense_batch1_divergence_is_located_exactly_and_by_chunk():
    X, y = _random()
    with pytest.warns(RuntimeWarning), pytest.raises(DivergedError, match="lower lr") as blas:
        _huge("dense", engine="blas").train_epoch(X, y)
    epoch, first, last, n = _where(blas)
    assert (epoch, n) == (1, 3000) and first == last  # one example, exactly
    # The compiled path (same maths and random numbers) can only name its chunk of 1024.
    with pytest.raises(DivergedError, match="lower lr") as comp:
        _huge("dense").train_epoch(X, y)
    epoch, a, b, n = _where(comp)
    assert (epoch, n) == (1, 3000) and b - a + 1 == min(1024, 3000 - a + 1)
    assert (a - 1) % 1024 == 0 and a <= first <= b


def test_dense_minibatch_divergence_names_its_batch():
    X, y = _random()
    with pytest.warns(RuntimeWarning), pytest.raises(DivergedError) as exc:
        _huge("dense", batch_size=8).train_epoch(X, y)
    epoch, a, b, n = _where(exc)
    assert (epoch, n) == (1, 3000) and b - a == 7 and (a - 1) % 8 == 0


def test_lsh_divergence_names_its_segment():
    X, y = _random()
    net = _huge("lsh", rebuild="fixed", rebuild_interval=500)
    with pytest.raises(DivergedError, match="lower lr") as exc:
        net.train_epoch(X, y)
    epoch, a, b, n = _where(exc)
    assert (epoch, n) == (1, 3000) and (a - 1) % 500 == 0 and b - a == 499


@pytest.mark.parametrize(
    ("key", "where"),
    [("dense-blas", "examples 1-8 of 12"), ("dense-compiled", "examples 1-12 of 12"),
     ("lsh", "examples 1-12 of 12")],
)
def test_divergence_in_a_later_epoch_names_that_epoch(key, where):
    """Weights that are finite but overflow float32 in the forward pass: the first batch of
    the second epoch has a NaN loss."""
    X, y = _data()
    net = _build(key)
    net.train_epoch(X, y)
    net.set_params([np.full_like(w, 1e30) for w in net.weights_], net.biases_)
    with np.errstate(all="ignore"), pytest.raises(DivergedError) as exc:
        net.train_epoch(X, y)
    assert f"diverged at epoch 2, {where}" in str(exc.value)


@pytest.mark.parametrize("name", ["dense", "lsh"])
def test_warmup_does_not_diverge_with_the_users_lr(name):
    _huge(name).warmup()  # compiles on a tiny copy; its lr is only a value


def test_retrieval_recall_needs_a_sample():
    net = _build("lsh")
    X, _ = _data()
    with pytest.raises(ConfigError, match=r"n_samples=0: must be an integer >= 1"):
        net.retrieval_recall(X, n_samples=0)
    assert 0.0 <= net.retrieval_recall(X, n_samples=3)["mean"] <= 1.0


def test_weights_that_become_non_finite_with_a_finite_loss_are_divergence():
    from models.dense import DenseNet

    class _Poisoned(DenseNet):  # the last update overflowed one weight
        name = "test-poisoned"

        def _train_compiled(self, X, y, order):  # type: ignore[no-untyped-def]
            out = super()._train_compiled(X, y, order)
            self.weights_[0][0, 0] = np.inf
            return out

    X, y = _data()
    net = _Poisoned(models.config_class("dense")(**SMALL))  # type: ignore[arg-type]
    with pytest.raises(DivergedError, match=r"diverged at epoch 1: the weights became non"):
        net.train_epoch(X, y)


def test_set_params_refuses_non_finite_or_misshapen_parameters():
    net = _build("dense-compiled")
    w, b = [x.copy() for x in net.weights_], [x.copy() for x in net.biases_]
    w[1][0, 0] = np.nan
    with pytest.raises(InputError, match=r"weights\[1\] holds nan"):
        net.set_params(w, b)
    with pytest.raises(InputError, match=r"biases: shapes \[\(8,\), \(10,\)\] expected"):
        net.set_params(net.weights_, [b[0], b[1][:3]])
    with pytest.raises(InputError, match=r"biases: shapes"):
        net.set_params(net.weights_, b[:1])


@pytest.mark.parametrize(
    ("setting", "value", "pattern"),
    [
        ("lr", float("inf"), r"bad setting lr=inf: must be a finite number > 0"),
        ("l2", float("inf"), r"bad setting l2=inf"),
        ("init_gain", float("inf"), r"bad setting init_gain=inf"),
        ("lr", "0.1", r"bad setting lr='0.1'"),
        ("hidden", 1000, r"bad setting hidden=1000: must be a list of layer widths"),
        ("hidden", "1000", r"bad setting hidden='1000'"),
        ("hidden", [1.5], r"bad setting hidden=\[1\.5\]"),
        ("n_inputs", 2.5, r"bad setting n_inputs=2\.5: must be an integer >= 1"),
        ("seed", -1, r"bad setting seed=-1: must be an integer >= 0"),
        ("batch_size", True, r"bad setting batch_size=True"),
    ],
)
def test_settings_of_the_wrong_type_are_refused_in_one_line(setting, value, pattern):
    with pytest.raises(ConfigError, match=pattern):
        models.build("dense", {**SMALL, setting: value})


def test_whole_number_settings_given_as_floats_are_kept_as_integers():
    cfg = models.build("dense", {**SMALL, "hidden": [8.0], "n_inputs": 6.0}).config
    assert cfg.hidden == (8,) and type(cfg.n_inputs) is int and type(cfg.hidden[0]) is int
