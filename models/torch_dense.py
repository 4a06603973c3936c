"""``torch-dense``: the standard network of ``models.dense`` in PyTorch, on CPU or CUDA.

The peer a user would otherwise pick, written the way a PyTorch user would write it: tensors,
``torch.nn.functional``, gradients by autograd. Everything else is the dense network's: the
same layers (ReLU hidden layers, softmax output, mean cross-entropy), the same initial weights
(``models.base.init_params`` draws them with numpy from the config's seed; they are then copied
or shared into torch tensors), the same shuffle order (``self.rng_.permutation``), mini-batches
of ``batch_size``, and the four update rules of ``models.optim`` written out in torch tensor
ops (torch has no exact equivalent of the paper's Adagrad-with-momentum), L2 on weights only.

Counting follows the dense network's rules (``models.base``; ``DenseNet._forward`` and
``_backward``; ``models.optim.update_mults``), by integer formulas from the shapes once per
mini-batch, never per element: forward counts each layer's product and the softmax's
divisions, backward the 1/m scaling of the output error, every layer's weight gradient and
every layer's input gradient but the first, update the optimizer's rule. Autograd performs
those same products (it skips the input gradient of the first layer because the input needs
none). Inference is counted apart; ``extra["mults_forward_hidden"]`` is the hidden layers'
forward count of the epoch, as the dense network reports it.

Where the parameters live (``weights_``/``biases_`` keep the base layout, (n_out, n_in)):

- On CPU they are numpy arrays that *share memory* with the torch tensors
  (``torch.from_numpy``): reading, comparing, indexing writes and ``set_params`` all act on
  the tensors the model trains.
- On CUDA the tensors on the GPU are the truth and ``weights_``/``biases_`` are host copies,
  fetched lazily: the first read after ``train_epoch`` copies them back from the GPU (outside
  any measured window, since the harness reads none between epochs), and any read marks them
  as possibly written, so the next call that computes (``train_epoch``, ``predict_scores``,
  ``loss_and_grads``) first copies them to the GPU. Indexing writes and ``set_params`` therefore
  work on CUDA too.

Measured windows: on CUDA every call returns only after the GPU has finished its work
(``synchronize()`` at the end of ``train_epoch`` and ``predict_scores``), so a window around it
measures finished work. ``device_index_`` is the CUDA index of the model's GPU (None on CPU)
and ``describe()`` reports it with the GPU's name and UUID (NVML's ``GPU-...`` form), so that
an NVML meter can attribute that GPU's energy to this model; the UUID is the safe key when
``CUDA_VISIBLE_DEVICES`` or ``CUDA_DEVICE_ORDER`` make CUDA's indices differ from NVML's.

Optional: if torch does not import, this module registers nothing and the rest of the project
works as before. Install it with the ``torch`` extra (see the Makefile for a CPU or CUDA build).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.base import ConfigError, EpochStats, Model, MultCounts, NetConfig
from models.optim import ADAGRAD_EPS, update_mults
from models.registry import register

log = logging.getLogger(__name__)

try:
    import torch
    from torch.nn import functional as F
except (ImportError, OSError) as exc:  # not installed, or a broken install
    torch = None  # type: ignore[assignment]
    log.debug("torch-dense not registered: torch does not import (%s)", exc)

AVAILABLE = torch is not None
_DEVICE = re.compile(r"cpu|cuda(:\d+)?")
_PREDICT_CHUNK = 4096  # rows per inference product, as the dense network


@dataclass(frozen=True)
class TorchDenseConfig(NetConfig):
    device: str = "cpu"  # "cpu", "cuda" (the current CUDA device) or "cuda:N"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.device, str) or not _DEVICE.fullmatch(self.device):
            raise ConfigError(
                f"bad setting device={self.device!r}: must be 'cpu', 'cuda' or 'cuda:N'"
            )


def _resolve_device(name: str) -> torch.device:
    """The torch device for a config's ``device``, with an explicit index on CUDA; a clear
    ConfigError where there is no such GPU."""
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(
            f"bad setting device={name!r}: torch {torch.__version__} sees no CUDA GPU "
            f"(torch.cuda.is_available() is False; CUDA build: {torch.version.cuda or 'none'}); "
            "use device='cpu', or on a machine with an NVIDIA GPU install a CUDA build of torch "
            "(see the Makefile)"
        )
    dev = torch.device(name)
    index = torch.cuda.current_device() if dev.index is None else dev.index
    count = torch.cuda.device_count()
    if index >= count:
        raise ConfigError(
            f"bad setting device={name!r}: there are {count} CUDA device(s), "
            f"so use cuda:0 to cuda:{count - 1}"
        )
    return torch.device("cuda", index)


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` for the block, restored afterwards."""
    old = torch.get_num_threads()
    if old != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if old != n:
            torch.set_num_threads(old)


class TorchDenseNet(Model):
    """All hidden nodes computed and updated, in PyTorch; mini-batches of any size."""

    name = "torch-dense"
    config_class = TorchDenseConfig
    config: TorchDenseConfig

    # Host-copy state (only ever set on CUDA); class defaults so the base __init__, which
    # assigns weights_/biases_, finds them.
    _on_cuda = False
    _stale = False  # the GPU holds newer parameters than the host copies
    _dirty = False  # the host copies may have been written since the last copy to the GPU

    def __init__(self, config: NetConfig) -> None:
        if not AVAILABLE:  # only reachable by constructing the class directly
            raise ConfigError("model 'torch-dense' needs torch: pip install -e '.[torch]'")
        super().__init__(config)  # numpy draws the initial weights from the seed
        self.device_ = _resolve_device(self.config.device)
        self._on_cuda = self.device_.type == "cuda"
        self.device_index_: int | None = self.device_.index if self._on_cuda else None
        host = [a for pair in zip(self._host_w, self._host_b, strict=True) for a in pair]
        # W0, b0, W1, b1, ...: on CPU sharing the numpy arrays' memory, on CUDA copies.
        self._params = [
            torch.from_numpy(a).to(self.device_).requires_grad_(True) for a in host
        ]
        cfg = self.config
        self._decay = [cfg.l2 if i % 2 == 0 else 0.0 for i in range(len(host))]
        kind = cfg.optimizer
        zeros = [torch.zeros_like(p, requires_grad=False) for p in self._params]
        self._velocity = zeros if kind in ("momentum", "adagrad_momentum") else []
        if kind == "adagrad_momentum":
            self._sq_sum = [torch.zeros_like(p, requires_grad=False) for p in self._params]
        elif kind == "rowwise_adagrad":  # one sum per row (neuron); a bias entry is its own row
            self._sq_sum = [p.new_zeros(p.shape[:1]) for p in self._params]
        else:
            self._sq_sum = []

        # Multiplication counts: per example for forward and backward, per step for update.
        sizes = cfg.layer_sizes
        products = [a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        classes = sizes[-1]
        self._fwd_hidden_per_ex = sum(products[:-1])
        self._fwd_per_ex = sum(products) + classes  # + the softmax's divisions
        self._bwd_per_ex = classes + sum(products) + sum(products[1:])
        self._update_per_step = sum(
            update_mults(kind, tuple(p.shape), l2)
            for p, l2 in zip(self._params, self._decay, strict=True)
        )
        self._infer_per_ex = sum(products)

    # -- weights_/biases_: views on CPU, lazily synchronised host copies on CUDA ----------
    @property
    def weights_(self) -> list[np.ndarray]:
        self._host_access()
        return self._host_w

    @weights_.setter
    def weights_(self, value: list[np.ndarray]) -> None:
        self._host_w = list(value)

    @property
    def biases_(self) -> list[np.ndarray]:
        self._host_access()
        return self._host_b

    @biases_.setter
    def biases_(self, value: list[np.ndarray]) -> None:
        self._host_b = list(value)

    def _host_pairs(self) -> list[np.ndarray]:
        return [a for pair in zip(self._host_w, self._host_b, strict=True) for a in pair]

    def _host_access(self) -> None:
        """Before the caller reads (and perhaps writes) the host copies (CUDA only)."""
        if not self._on_cuda:
            return
        if self._stale:
            with torch.no_grad():
                for dst, src in zip(self._host_pairs(), self._params, strict=True):
                    dst[...] = src.detach().cpu().numpy()
            self._stale = False
        self._dirty = True

    def _device_in(self) -> None:
        """Before computing: copy host copies a caller may have written to the GPU."""
        if self._on_cuda and self._dirty:
            with torch.no_grad():
                for dst, src in zip(self._params, self._host_pairs(), strict=True):
                    dst.copy_(torch.from_numpy(src))
            self._dirty = False

    def synchronize(self) -> None:
        """Wait until the model's device has finished its queued work (no-op on CPU)."""
        if self._on_cuda:
            torch.cuda.synchronize(self.device_)

    # -- the maths ------------------------------------------------------------------------
    def _logits(self, X: torch.Tensor) -> torch.Tensor:
        P = self._params
        A = X
        for layer in range(len(P) // 2 - 1):
            A = torch.relu(F.linear(A, P[2 * layer], P[2 * layer + 1]))
        return F.linear(A, P[-2], P[-1])

    def _loss_grads(self, X: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, list]:
        loss = F.cross_entropy(self._logits(X), y)  # mean over the batch
        grads = torch.autograd.grad(loss, self._params)
        return loss.detach(), list(grads)

    def _step(self, grads: list[torch.Tensor]) -> None:
        """One update of every parameter, as ``models.optim.Optimizer.step``; ``grads`` are
        consumed (autograd's fresh tensors serve as scratch). Call under ``torch.no_grad()``."""
        kind, lr, mu = self.config.optimizer, self.config.lr, self.config.momentum
        for i, (p, g) in enumerate(zip(self._params, grads, strict=True)):
            if self._decay[i] > 0:
                g.add_(p, alpha=self._decay[i])  # g + l2*w
            if kind == "sgd":
                p.sub_(g, alpha=lr)
            elif kind == "momentum":
                v = self._velocity[i]
                v.mul_(mu).add_(g, alpha=lr)
                p.sub_(v)
            elif kind == "adagrad_momentum":
                acc, v = self._sq_sum[i], self._velocity[i]
                acc.addcmul_(g, g)
                g.mul_(lr / torch.sqrt(acc).add_(ADAGRAD_EPS))
                v.mul_(mu).add_(g)
                p.sub_(v)
            else:  # rowwise_adagrad
                acc = self._sq_sum[i]
                if g.ndim == 2:
                    acc.add_((g * g).mean(dim=1))
                    g.mul_((lr / torch.sqrt(acc).add_(ADAGRAD_EPS)).unsqueeze(1))
                else:
                    acc.addcmul_(g, g)
                    g.mul_(lr / torch.sqrt(acc).add_(ADAGRAD_EPS))
                p.sub_(g)

    def _labels(self, y: np.ndarray, n: int) -> np.ndarray:
        y = np.asarray(y, dtype=np.int64)
        if y.shape != (n,):
            raise ConfigError(f"labels have shape {y.shape}; the input has {n} rows")
        if n and (y.min() < 0 or y.max() >= self.config.n_classes):
            raise ConfigError(
                f"labels must lie in [0, {self.config.n_classes}); got {y.min()}..{y.max()}"
            )
        return y

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).to(self.device_)

    # -- the public interface -------------------------------------------------------------
    def train_epoch(self, X: np.ndarray, y: np.ndarray) -> EpochStats:
        X = self._as_input(X)
        n = X.shape[0]
        y = self._labels(y, n)
        order = self.rng_.permutation(n)
        bs = self.config.batch_size
        counts = MultCounts()
        with _torch_threads(self.config.threads):
            self._device_in()
            # The epoch's order applied once (one gather), then contiguous slices per batch.
            order_t = self._tensor(order)
            Xp = self._tensor(X).index_select(0, order_t)
            yp = self._tensor(y).index_select(0, order_t)
            loss_sum = torch.zeros((), dtype=Xp.dtype, device=self.device_)
            for start in range(0, n, bs):
                stop = min(start + bs, n)
                loss, grads = self._loss_grads(Xp[start:stop], yp[start:stop])
                with torch.no_grad():
                    self._step(grads)
                loss_sum.add_(loss, alpha=stop - start)
            self.synchronize()
            loss_total = float(loss_sum)
        n_batches = -(-n // bs)
        counts.forward = n * self._fwd_per_ex
        counts.backward = n * self._bwd_per_ex
        counts.update = n_batches * self._update_per_step
        self._stale = self._on_cuda
        self.mults_ = self.mults_ + counts
        self.epochs_done_ += 1
        return EpochStats(
            n_examples=n,
            loss=loss_total / max(n, 1),
            mults=counts,
            active_fraction=1.0,
            computed_fraction=1.0,
            extra={
                "mults_forward_hidden": n * self._fwd_hidden_per_ex,
                "engine": f"torch {self.device_}",
            },
        )

    def predict_scores(self, X: np.ndarray) -> np.ndarray:
        X = self._as_input(X)
        out = np.empty((X.shape[0], self.config.n_classes), dtype=self.dtype_)
        with _torch_threads(self.config.threads), torch.no_grad():
            self._device_in()
            for start in range(0, X.shape[0], _PREDICT_CHUNK):
                chunk = X[start : start + _PREDICT_CHUNK]
                out[start : start + len(chunk)] = self._logits(self._tensor(chunk)).cpu().numpy()
                self.mults_.inference += len(chunk) * self._infer_per_ex
            self.synchronize()
        return out

    def loss_and_grads(
        self, X: np.ndarray, y: np.ndarray
    ) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
        X = self._as_input(X)
        y = self._labels(y, X.shape[0])
        with _torch_threads(self.config.threads):
            self._device_in()
            loss, grads = self._loss_grads(self._tensor(X), self._tensor(y))
            arrays = [g.cpu().numpy() for g in grads]
        return float(loss), arrays[0::2], arrays[1::2]

    def warmup(self) -> None:
        """Prime torch's kernels (and on CUDA its context, cuBLAS and lazily loaded kernels)
        for this model's shapes on a throwaway copy, so nothing of this model changes."""
        cfg = self.config
        tiny = type(self)(cfg)
        rows = cfg.batch_size
        X = np.zeros((rows, cfg.n_inputs), dtype=self.dtype_)
        tiny.train_epoch(X, np.arange(rows) % cfg.n_classes)
        tiny.predict_scores(np.zeros((min(_PREDICT_CHUNK, 64), cfg.n_inputs), self.dtype_))

    def describe(self) -> dict[str, Any]:
        """n_params, the device and (on CUDA) the GPU's name, CUDA index and UUID, for
        attributing that GPU's NVML energy to this model."""
        facts: dict[str, Any] = {
            "n_params": int(sum(p.numel() for p in self._params)),
            "torch_version": torch.__version__,
            "device": str(self.device_),
            "device_index": self.device_index_,
        }
        if self._on_cuda:
            index = self.device_.index
            props = torch.cuda.get_device_properties(self.device_)
            uuid = getattr(props, "uuid", None)
            facts.update(
                device_name=torch.cuda.get_device_name(self.device_),
                device_uuid=f"GPU-{uuid}" if uuid is not None else None,
                device_memory_bytes=int(props.total_memory),
                cuda_version=torch.version.cuda,
                device_index=index,
            )
        else:
            facts["device_name"] = "cpu"
            facts["torch_threads"] = self.config.threads
        return facts


if AVAILABLE:
    register(TorchDenseNet)
