"""torch-dense (PyTorch) against the numpy dense network, its independent reference: the same
seed gives the same weights, hence the same scores, loss and gradients; one epoch of every
optimizer, with and without L2, at batch 1 (the dense network's compiled path) and 8 (its BLAS
path) gives the same weights and exactly the same multiplication counts. Also: the device
check, threads, shared CPU memory, the CUDA host-copy bookkeeping (with a stand-in), and a
real-GPU run where one exists."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import models  # noqa: E402
from models import torch_dense  # noqa: E402
from models.optim import OPTIMIZERS  # noqa: E402


def _cfg(**kw):
    base = {
        "n_inputs": 9,
        "n_classes": 4,
        "hidden": [12, 10],
        "lr": 0.02,
        "seed": 5,
        "dtype": "float64",
    }
    return {**base, **kw}


def _data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 9))
    X[rng.random(X.shape) < 0.4] = 0.0
    return X, rng.integers(0, 4, n)


def _pair(**kw):
    return models.build("dense", _cfg(**kw)), models.build("torch-dense", _cfg(**kw))


def _assert_same_params(a, b, rtol=1e-9, atol=1e-12):
    for p, q in zip(a.weights_ + a.biases_, b.weights_ + b.biases_, strict=True):
        assert p.shape == q.shape and p.dtype == q.dtype
        np.testing.assert_allclose(q, p, rtol=rtol, atol=atol)


def test_registered_and_listed():
    assert "torch-dense" in models.available()
    net = models.build("torch-dense", _cfg())
    assert isinstance(net, torch_dense.TorchDenseNet)
    assert isinstance(net.config, torch_dense.TorchDenseConfig) and net.config.device == "cpu"


def test_without_torch_nothing_else_breaks():
    """A process where torch cannot be imported lists every other model and trains dense."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np, models\n"
        "assert 'torch-dense' not in models.available(), models.available()\n"
        "assert 'dense' in models.available()\n"
        "net = models.build('dense', {'n_inputs': 3, 'n_classes': 2, 'hidden': [4]})\n"
        "net.train_epoch(np.zeros((4, 3)), np.array([0, 1, 0, 1]))\n"
        "try:\n"
        "    models.build('torch-dense', {'n_inputs': 3, 'n_classes': 2})\n"
        "except models.ConfigError as e:\n"
        "    assert 'unknown model' in str(e)\n"
        "else:\n"
        "    raise SystemExit('torch-dense built without torch')\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_same_initial_weights_as_dense():
    dense, net = _pair()
    for p, q in zip(dense.weights_ + dense.biases_, net.weights_ + net.biases_, strict=True):
        assert np.array_equal(p, q)


@pytest.mark.parametrize("batch", [1, 7])
def test_same_scores_loss_and_gradients(batch):
    dense, net = _pair()
    rng = np.random.default_rng(3)
    biases = [rng.normal(0, 0.1, b.shape) for b in dense.biases_]
    dense.set_params(dense.weights_, biases)
    net.set_params(dense.weights_, biases)
    X, y = _data(batch, seed=1)
    loss_a, dW_a, db_a = dense.loss_and_grads(X, y)
    loss_b, dW_b, db_b = net.loss_and_grads(X, y)
    assert loss_b == pytest.approx(loss_a, rel=1e-12)
    for p, q in zip(dW_a + db_a, dW_b + db_b, strict=True):
        assert isinstance(q, np.ndarray) and q.shape == p.shape and q.dtype == np.float64
        np.testing.assert_allclose(q, p, rtol=1e-10, atol=1e-14)
    # loss_and_grads neither updates nor counts.
    assert net.mults_ == models.MultCounts()
    np.testing.assert_array_equal(net.weights_[0], dense.weights_[0])
    np.testing.assert_allclose(net.predict_scores(X), dense.predict_scores(X), rtol=1e-12)
    assert net.mults_.inference == dense.mults_.inference == batch * (9 * 12 + 12 * 10 + 10 * 4)


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("l2", [0.0, 1e-2])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_training_matches_dense(optimizer, l2, batch):
    X, y = _data()
    dense, net = _pair(optimizer=optimizer, l2=l2, batch_size=batch)
    assert dense.compiled_ == (batch == 1)  # batch 1 checks against the compiled path
    for _ in range(2):  # the second epoch starts from the optimizer state the first left
        a, b = dense.train_epoch(X, y), net.train_epoch(X, y)
        assert b.mults == a.mults
        assert b.extra["mults_forward_hidden"] == a.extra["mults_forward_hidden"]
        assert b.n_examples == a.n_examples
        assert b.active_fraction == a.active_fraction == 1.0
        assert b.computed_fraction == a.computed_fraction == 1.0
        assert b.loss == pytest.approx(a.loss, rel=1e-10)
        _assert_same_params(dense, net)
    assert net.mults_ == dense.mults_
    # The same draws from the same generator: the streams stay in step.
    assert net.rng_.random() == dense.rng_.random()
    # Inference: the same scores, counted apart, by the same rule.
    np.testing.assert_allclose(net.predict_scores(X), dense.predict_scores(X), rtol=1e-9)
    assert net.mults_.inference == dense.mults_.inference > 0
    assert net.mults_ == dense.mults_


def test_last_partial_batch_and_many_chunks_are_counted_like_dense():
    X, y = _data(n=23)
    dense, net = _pair(batch_size=5, optimizer="momentum", hidden=[6])
    a, b = dense.train_epoch(X, y), net.train_epoch(X, y)
    assert b.mults == a.mults
    _assert_same_params(dense, net)
    big = np.random.default_rng(2).normal(size=(4096 + 3, 9))  # two inference chunks
    np.testing.assert_allclose(net.predict_scores(big), dense.predict_scores(big), rtol=1e-9)
    assert net.mults_.inference == dense.mults_.inference == (4096 + 3) * (9 * 6 + 6 * 4)


def test_float32():
    X, y = _data()
    dense, net = _pair(dtype="float32", batch_size=4)
    a, b = dense.train_epoch(X, y), net.train_epoch(X, y)
    assert b.mults == a.mults
    assert all(w.dtype == np.float32 for w in net.weights_ + net.biases_)
    assert net._params[0].dtype == torch.float32
    _assert_same_params(dense, net, rtol=1e-4, atol=1e-5)
    scores = net.predict_scores(X)
    assert scores.dtype == np.float32
    np.testing.assert_allclose(scores, dense.predict_scores(X), rtol=1e-4, atol=1e-4)


def test_same_seed_is_bit_identical_and_other_seed_differs():
    X, y = _data()
    runs = []
    for seed in (5, 5, 6):
        net = models.build("torch-dense", _cfg(seed=seed, batch_size=4))
        net.train_epoch(X, y)
        runs.append(net)
    for wa, wb, wc in zip(*(r.weights_ for r in runs), strict=True):
        assert np.array_equal(wa, wb)
        assert not np.array_equal(wa, wc)


def test_cpu_parameters_share_memory_with_the_tensors():
    X, _ = _data(5)
    net = models.build("torch-dense", _cfg())
    for arr, t in zip(net.weights_ + net.biases_, net._params[0::2] + net._params[1::2],
                      strict=True):
        assert np.shares_memory(arr, t.detach().numpy())
    before = net.predict_scores(X)
    net.biases_[-1][...] = 1.0  # an indexing write is what the model computes with
    np.testing.assert_allclose(net.predict_scores(X), before + 1.0, rtol=1e-12)


def test_cuda_without_a_gpu_is_refused_with_the_fix(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cuda:1"):
        with pytest.raises(models.ConfigError, match=r"device='cuda.*no CUDA GPU.*device='cpu'"):
            models.build("torch-dense", _cfg(device=device))


@pytest.mark.parametrize("device", ["gpu", "cuda:", "CPU", "cuda:x", ""])
def test_bad_device_string(device):
    with pytest.raises(models.ConfigError, match="device="):
        models.build("torch-dense", _cfg(device=device))


def test_threads_are_set_inside_and_restored(monkeypatch):
    X, y = _data(10)
    net = models.build("torch-dense", _cfg(threads=1))
    old = torch.get_num_threads()
    seen = []
    real = torch.set_num_threads

    def spy(n):
        seen.append(n)
        real(n)

    monkeypatch.setattr(torch, "set_num_threads", spy)
    real(2)
    try:
        net.train_epoch(X, y)
        net.predict_scores(X)
        net.loss_and_grads(X, y)
        assert torch.get_num_threads() == 2
        assert seen == [1, 2] * 3
    finally:
        real(old)


def test_warmup_changes_nothing():
    X, y = _data()
    a = models.build("torch-dense", _cfg(batch_size=8))
    b = models.build("torch-dense", _cfg(batch_size=8))
    a.warmup()
    assert a.mults_ == models.MultCounts() and a.epochs_done_ == 0
    a.train_epoch(X, y)
    b.train_epoch(X, y)
    for p, q in zip(a.weights_ + a.biases_, b.weights_ + b.biases_, strict=True):
        assert np.array_equal(p, q)


def test_describe_and_synchronize_on_cpu():
    net = models.build("torch-dense", _cfg())
    facts = net.describe()
    assert facts["n_params"] == 9 * 12 + 12 + 12 * 10 + 10 + 10 * 4 + 4
    assert facts["device"] == "cpu" and facts["device_index"] is None
    assert facts["torch_version"] == torch.__version__
    assert net.device_index_ is None
    net.synchronize()  # a no-op on CPU


def test_labels_out_of_range_are_reported():
    net = models.build("torch-dense", _cfg())
    with pytest.raises(models.ConfigError, match=r"labels must lie in \[0, 4\)"):
        net.train_epoch(np.zeros((3, 9)), np.array([0, 4, 1]))


def test_learns_digits(digits):
    X, y, Xt, yt = digits
    net = models.build(
        "torch-dense",
        {"n_inputs": 64, "n_classes": 10, "hidden": [100], "optimizer": "momentum",
         "lr": 0.05, "batch_size": 32, "seed": 0},
    )
    for _ in range(5):
        net.train_epoch(X, y)
    assert net.score(Xt, yt) >= 0.90


def _stand_in_cuda(net, monkeypatch):
    """Give a CPU model the CUDA layout: tensors that do not share the host arrays' memory,
    and the CUDA flag, so the host-copy bookkeeping runs without a GPU."""
    net._params = [p.detach().clone().requires_grad_(True) for p in net._params]
    net._on_cuda = True
    monkeypatch.setattr(net, "synchronize", lambda: None)


def test_cuda_host_copies_stand_in(monkeypatch):
    X, y = _data()
    dense, net = _pair(batch_size=4, optimizer="adagrad_momentum")
    _stand_in_cuda(net, monkeypatch)
    first = net._host_w[0].copy()
    dense.train_epoch(X, y)
    net.train_epoch(X, y)
    assert net._stale  # trained on the device; the host copies not yet fetched
    assert np.array_equal(net._host_w[0], first)
    _assert_same_params(dense, net)  # reading fetches them
    assert not net._stale and net._dirty
    # A write to a host copy reaches the device before the next computation.
    net.biases_[-1][...] += 1.0
    dense.biases_[-1][...] += 1.0
    np.testing.assert_allclose(net.predict_scores(X), dense.predict_scores(X), rtol=1e-9)
    assert not net._dirty
    rng = np.random.default_rng(9)
    # (small enough that no probability falls below the dense network's 1e-30 floor)
    new_w = [rng.normal(0, 0.3, size=w.shape) for w in dense.weights_]
    new_b = [rng.normal(0, 0.1, size=b.shape) for b in dense.biases_]
    dense.set_params(new_w, new_b)
    net.set_params(new_w, new_b)
    loss_a, dW_a, _ = dense.loss_and_grads(X, y)
    loss_b, dW_b, _ = net.loss_and_grads(X, y)
    assert loss_b == pytest.approx(loss_a, rel=1e-12)
    np.testing.assert_allclose(dW_b[0], dW_a[0], rtol=1e-10, atol=1e-14)
    dense.train_epoch(X, y)
    net.train_epoch(X, y)
    _assert_same_params(dense, net)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA GPU")
def test_cuda_epoch_matches_cpu():
    X, y = _data(200)
    cpu = models.build("torch-dense", _cfg(batch_size=8, optimizer="adagrad_momentum"))
    gpu = models.build("torch-dense", _cfg(batch_size=8, optimizer="adagrad_momentum",
                                           device="cuda"))
    assert gpu.device_index_ is not None and gpu._params[0].is_cuda
    facts = gpu.describe()
    assert facts["device_index"] == gpu.device_index_
    assert facts["device_name"] == torch.cuda.get_device_name(gpu.device_index_)
    gpu.warmup()
    a, b = cpu.train_epoch(X, y), gpu.train_epoch(X, y)
    assert b.mults == a.mults
    assert b.loss == pytest.approx(a.loss, rel=1e-9)
    _assert_same_params(cpu, gpu, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(gpu.predict_scores(X), cpu.predict_scores(X), rtol=1e-7,
                               atol=1e-10)
    assert gpu.mults_ == cpu.mults_
    gpu.synchronize()
