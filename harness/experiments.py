"""The paper's figures as experiments: grids of cells (dataset x model x settings x seed).

Two experiments feed every figure:

- ``fraction_sweep``: each sparse model at each active fraction, plus the dense reference, on
  each dataset. Accuracy against % active (figure 1), accuracy per epoch at the lowest fraction
  (figure 2), multiplications per example (figure 3) and energy all come from its records.
- ``thread_scaling``: the LSH network at a low fraction with 1, 2, ... threads (figure 4).

Three more answer questions beyond the paper (``QUESTIONS``; figures in ``reports.questions``):

- ``width_scaling``: time and multiplications per training example against hidden width (two
  hidden layers of 1,000 to 16,000 nodes): LSH at 5% against the standard network at batch 1,
  at mini-batches of 256, and PyTorch's dense network (CPU, and CUDA where a GPU is visible).
  Throughput is the point, so the big widths train on few examples for one epoch.
- ``time_to_accuracy``: accuracy after every epoch against cumulative training time and energy,
  for dense at several batch sizes (and PyTorch's) and LSH at several fractions.
- ``hash_quality``: LSH at 5% across bits per table ``K``, tables ``L``, selection rule and
  pooling before hashing (on and off): accuracy, cost, and retrieval recall where recorded.

Profiles scale the grid: ``smoke`` (seconds, tiny digits), ``quick`` (minutes, real digits and
subsets of the generated sets) and ``paper`` (the paper's protocol in full; hours).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

from harness import catalogue
from harness.errors import UserError

# The registered models swept over active fractions, in the catalogue's order.
SPARSE_MODELS = catalogue.sparse_models()

# Named variants of a registered model: (model, settings that differ from its defaults).
# "lsh-paper" is the released Java code's configuration (PAPER.md), without its defects:
# top-k by bucket collision count over L = 100 tables of K = 6 bits, inputs pooled 784 -> 8
# and hidden vectors 1000 -> 10 before hashing, full rebuilds on the released schedule.
# "dense-minibatch" is the standard network as a user would train it (mini-batches through
# BLAS): a second reference for speed and energy beside the paper's batch-1 protocol.
# "lsh-rowwise" is lsh with row-wise Adagrad (one state value per neuron, so its sparse updates
# touch only weights): 1.5-3x faster than the paper's per-weight rule; 0.03 at every fraction
# measured as accurate as the paper's rates with its own rule (784-1000-10, real digits).
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "dense-minibatch": (
        "dense",
        {"batch_size": 256, "optimizer": "momentum", "lr": 0.05, "momentum": 0.9},
    ),
    "lsh-rowwise": ("lsh", {"optimizer": "rowwise_adagrad", "lr": 0.03}),
    "lsh-paper": (
        "lsh",
        {
            "selection": "topk",
            "K": 6,
            "L": 100,
            "pool_input": 98,
            "pool_hidden": 100,
            "rebuild": "paper",
        },
    ),
}

# The released code's learning rates by active fraction (PAPER.md), batch 1, Adagrad+momentum.
_LR_MNIST_NORB = {0.05: 1e-2, 0.10: 1e-2, 0.25: 1e-2, 0.50: 5e-3, 0.75: 1e-3, 1.0: 1e-3}
_LR_CONVEX_RECT = {0.05: 1e-2, 0.10: 1e-2, 0.25: 5e-3, 0.50: 1e-3, 0.75: 1e-3, 1.0: 1e-3}


def paper_lr(dataset: str, fraction: float) -> float:
    """The released code's rate for this dataset family at the nearest studied fraction."""
    table = _LR_CONVEX_RECT if dataset.startswith(("convex", "rectangles")) else _LR_MNIST_NORB
    nearest = min(table, key=lambda f: abs(f - fraction))
    return table[nearest]


@dataclass(frozen=True)
class Cell:
    """One training run: everything needed to repeat it, and nothing else."""

    experiment: str
    dataset: str
    model: str  # the registered model
    settings: dict[str, Any] = field(hash=False)  # model settings beyond the data's shape
    epochs: int = 1
    n_train: int | None = None
    n_test: int | None = None
    label: str = ""  # a variant's name (see VARIANTS); empty for the model's defaults

    @property
    def name(self) -> str:
        """What reports call this model: the variant's label, else the model's name."""
        return self.label or self.model

    @property
    def cell_id(self) -> str:
        """Readable and unique: the main facets, then a short digest of everything."""
        s = self.settings
        hidden = "x".join(str(h) for h in s.get("hidden", ()))
        tag = (
            f"{self.dataset}_{self.name}_h{hidden}_f{s.get('active_fraction', 1.0):g}"
            f"_t{s.get('threads', 1)}_s{s.get('seed', 0)}{self._question_tags()}"
        )
        # The experiment too: the same settings in two experiments are two cells, and every
        # frame of the reports keys cells by (machine, cell_id).
        blob = json.dumps(
            [self.experiment, self.dataset, self.model, s, self.epochs, self.n_train,
             self.n_test],
            sort_keys=True,
        )
        return f"{tag}_{hashlib.sha1(blob.encode()).hexdigest()[:8]}"

    def _question_tags(self) -> str:
        """The settings a question beyond the paper varies, readable in the id: batch size,
        device, and the hash settings of ``hash_quality``. ``reports.questions`` reads them
        back (``parse_tags``) while the result frame has no config columns. The paper's two
        experiments keep their ids, so stored sweeps are not rerun."""
        if self.experiment not in QUESTIONS:
            return ""
        s = self.settings
        out = f"_b{s.get('batch_size', 1)}"
        if "device" in s:
            out += f"_d{str(s['device']).replace(':', '')}"  # cuda:1 -> cuda1: a safe file name
        if self.experiment == "hash_quality":
            out += (
                f"_{s['selection']}_K{s['K']}_L{s['L']}_p{s['pool_input']}x{s['pool_hidden']}"
            )
        return out


@dataclass(frozen=True)
class Profile:
    name: str
    datasets: tuple[str, ...]
    fractions: tuple[float, ...]
    depths: tuple[tuple[int, ...], ...]  # hidden layer widths, one entry per network shape
    epochs: int
    seeds: tuple[int, ...]
    threads: tuple[int, ...]
    n_train: int | None = None
    n_test: int | None = None
    lr: float | None = None  # one rate for every cell instead of the paper's table
    variants: tuple[str, ...] = ()  # named variants swept beside the models (see VARIANTS)
    # A deeper network checked where a full sweep of it would not fit: on the first dataset,
    # the dense reference (and its mini-batch variant) and LSH at the lowest fraction only.
    deep_check: tuple[int, ...] = ()
    idle_s: float = 5.0  # seconds of idle-power measurement before a block of runs
    # width_scaling: two hidden layers of each width, trained on that width's number of
    # examples (same order) for ``width_epochs``; few examples at the big widths, since
    # throughput is the point: at 16,000 mini-batch dense manages ~90 examples/s here and
    # batch-1 dense, which reads and writes 3 GB of weights and optimizer state per example,
    # about 2 (so it gets its own, smaller counts).
    widths: tuple[int, ...] = ()
    width_examples: tuple[int, ...] = ()
    width_batch1_examples: tuple[int, ...] = ()  # dense at batch 1; empty: width_examples
    width_epochs: int = 1
    width_test: int = 200  # test examples (every dense prediction at 16,000 costs 0.27 G mults)
    width_seeds: tuple[int, ...] = (0,)
    # time_to_accuracy: on the first dataset and shape; seeds None means the profile's seeds
    tta_batches: tuple[int, ...] = (1, 64, 256)
    tta_fractions: tuple[float, ...] = (0.05, 0.1)
    tta_seeds: tuple[int, ...] | None = None
    # hash_quality: LSH at the lowest fraction for every (K, L), selection and
    # (pool_input, pool_hidden) listed; epochs and seeds None mean the profile's
    hash_kl: tuple[tuple[int, int], ...] = ()
    hash_pools: tuple[tuple[int, int], ...] = ((4, 4), (1, 1))
    hash_selections: tuple[str, ...] = ("hamming", "topk")
    hash_epochs: int | None = None
    hash_seeds: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if len(self.widths) != len(self.width_examples) or (
            self.width_batch1_examples and len(self.width_batch1_examples) != len(self.widths)
        ):
            raise ValueError(f"profile {self.name}: one example count per width is needed")


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        datasets=("digits",),
        fractions=(0.05, 0.5),  # 5%: the paper's claims are about it
        depths=((64,),),
        epochs=3,
        seeds=(0,),
        threads=(1, 2),
        lr=1e-2,  # 3 epochs are too few for the paper's 1e-3 at high fractions
        idle_s=1.0,
        # tiny widths, all 3 epochs: the questions' code paths in seconds (14 cells, each its
        # own process, so few)
        widths=(64, 256),
        width_examples=(300, 300),
        width_epochs=3,
        width_test=200,
        tta_batches=(1, 64),
        tta_fractions=(0.05,),
        hash_kl=((6, 16),),
        hash_pools=((4, 4), (1, 1)),
        hash_selections=("hamming",),
    ),
    "quick": Profile(
        name="quick",
        datasets=("mnist-auto", "convex", "rectangles-images"),
        fractions=(0.05, 0.1, 0.25),
        depths=((1000,),),
        epochs=8,  # dense's test accuracy has levelled off by then (see README)
        seeds=(0, 1, 2),
        threads=(1, 2),
        n_train=4000,  # all of mnist-5k's training split; Convex and Rectangles subsets
        n_test=1000,  # mnist-5k holds 1,000 test digits
        variants=("lsh-rowwise", "dense-minibatch"),
        deep_check=(1000, 1000),
        widths=(1000, 2000, 4000, 8000, 16000),
        width_examples=(2000, 1024, 512, 512, 512),
        width_batch1_examples=(1000, 400, 100, 40, 20),
        width_epochs=1,
        width_test=200,
        tta_batches=(1, 64, 256),
        tta_fractions=(0.05, 0.1),
        # a cross through the paper's K = 6, L = 16 (not the full 3 x 3 grid), two seeds
        hash_kl=((4, 16), (6, 8), (6, 16), (6, 32), (8, 16)),
        hash_epochs=4,
        hash_seeds=(0, 1),
    ),
    "paper": Profile(
        name="paper",
        datasets=("mnist-auto", "norb", "convex", "rectangles-images"),
        fractions=(0.05, 0.1, 0.25, 0.5, 0.75, 1.0),
        depths=((1000, 1000), (1000, 1000, 1000)),
        epochs=25,
        seeds=(0, 1, 2),
        threads=(1, 2, 4, 8, 16, 32),
        variants=("lsh-paper", "lsh-rowwise", "dense-minibatch"),
        widths=(1000, 2000, 4000, 8000, 16000),
        width_examples=(20000, 10000, 5000, 2500, 1500),
        width_batch1_examples=(5000, 2000, 500, 200, 100),
        width_epochs=2,
        width_test=1000,
        width_seeds=(0, 1, 2),
        hash_kl=tuple((k, l) for k in (4, 6, 8) for l in (8, 16, 32)),  # noqa: E741
    ),
}

QUESTIONS = ("width_scaling", "time_to_accuracy", "hash_quality")  # beyond the paper
EXPERIMENTS = ("fraction_sweep", "thread_scaling", *QUESTIONS)
WIDTH_FRACTION = 0.05  # LSH's active fraction in width_scaling: the paper's headline setting
# Mini-batch training as dense-minibatch does it (see VARIANTS), at any batch size.
_MINIBATCH = {k: v for k, v in VARIANTS["dense-minibatch"][1].items() if k != "batch_size"}


def profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise UserError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}") from None


def _settings(
    p: Profile, dataset: str, hidden: tuple[int, ...], fraction: float, seed: int, **kw: Any
) -> dict[str, Any]:
    return {
        "hidden": list(hidden),
        "active_fraction": fraction,
        "optimizer": "adagrad_momentum",
        "lr": p.lr if p.lr is not None else paper_lr(dataset, fraction),
        "batch_size": 1,
        "seed": seed,
        **kw,
    }


def fraction_sweep(p: Profile, names: tuple[str, ...]) -> list[Cell]:
    """Dense once, then every sparse model or variant in ``names`` at every fraction; and the
    profile's deeper check, if any."""
    cells = []
    for dataset in p.datasets:
        for hidden in p.depths:
            for seed in p.seeds:
                cells.append(_cell(p, dataset, hidden, "dense", 1.0, seed))
                for name in names:
                    fractions = _fractions(p, VARIANTS.get(name, (name, {}))[0])
                    cells += [_cell(p, dataset, hidden, name, f, seed) for f in fractions]
    if p.deep_check:
        low = min(p.fractions)
        for seed in p.seeds:
            cells.append(_cell(p, p.datasets[0], p.deep_check, "dense", 1.0, seed))
            cells += [
                _cell(p, p.datasets[0], p.deep_check, name, 1.0 if name == "dense-minibatch"
                      else low, seed)
                for name in names
                if name in ("lsh", "dense-minibatch")
            ]
    return cells


def _cell(
    p: Profile, dataset: str, hidden: tuple[int, ...], name: str, fraction: float, seed: int
) -> Cell:
    """One fraction-sweep cell of a model or a named variant (see VARIANTS)."""
    model, extra = VARIANTS.get(name, (name, {}))
    s = {**_settings(p, dataset, hidden, fraction, seed), **extra}
    label = name if name in VARIANTS else ""
    return Cell("fraction_sweep", dataset, model, s, p.epochs, p.n_train, p.n_test, label)


def _fractions(p: Profile, model: str) -> tuple[float, ...]:
    """Dense variants run once with every node; a baseline with every node kept would be the
    dense network again, so only LSH (which still hashes and selects) runs at 100%."""
    if model == "dense":
        return (1.0,)
    return tuple(f for f in p.fractions if f < 1.0 or model == "lsh")


def thread_scaling(p: Profile, models: tuple[str, ...]) -> list[Cell]:
    if "lsh" not in models:
        return []
    dataset, hidden = p.datasets[0], p.depths[0]
    fraction = min(p.fractions)
    max_threads = os.cpu_count() or 1
    threads = [t for t in p.threads if t <= max_threads] or [1]
    return [
        Cell(
            "thread_scaling",
            dataset,
            "lsh",
            _settings(p, dataset, hidden, fraction, seed, threads=t),
            p.epochs,
            p.n_train,
            p.n_test,
        )
        for seed in p.seeds
        for t in threads
    ]


def _dense_peers(
    available_models: list[str], batches: tuple[int, ...], cuda: bool
) -> list[tuple[str, dict[str, Any]]]:
    """(model, settings beyond the paper's batch-1 defaults) for each dense peer: the standard
    network at each batch size (mini-batches as dense-minibatch trains them), and PyTorch's at
    the largest, on the CPU and, where a GPU is visible, on CUDA."""
    peers: list[tuple[str, dict[str, Any]]] = [
        ("dense", {} if b == 1 else {**_MINIBATCH, "batch_size": b}) for b in batches
    ]
    if "torch-dense" in available_models:
        big = {**_MINIBATCH, "batch_size": max(max(batches), 256)}
        peers.append(("torch-dense", {**big, "device": "cpu"}))
        if cuda:
            peers.append(("torch-dense", {**big, "device": "cuda"}))
    return peers


def cuda_visible(available_models: list[str]) -> bool:
    """Whether torch-dense can train on a GPU here (torch is imported already when it is
    registered, so asking costs nothing)."""
    if "torch-dense" not in available_models:
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def width_scaling(p: Profile, models: tuple[str, ...], available: list[str]) -> list[Cell]:
    """LSH at 5% and every dense peer, two hidden layers of each of the profile's widths."""
    if not p.widths:
        return []
    dataset = p.datasets[0]
    peers = _dense_peers(available, (1, 256), cuda_visible(available))
    runs = [("lsh", {"active_fraction": WIDTH_FRACTION})] if "lsh" in models else []
    runs += [(m, {"active_fraction": 1.0, **extra}) for m, extra in peers]
    batch1 = p.width_batch1_examples or p.width_examples
    return [
        Cell(
            "width_scaling",
            dataset,
            model,
            {**_settings(p, dataset, (w, w), extra["active_fraction"], seed), **extra},
            p.width_epochs,
            n1 if model == "dense" and extra.get("batch_size", 1) == 1 else n,
            p.width_test,
        )
        for w, n, n1 in zip(p.widths, p.width_examples, batch1, strict=True)
        for seed in p.width_seeds
        for model, extra in runs
    ]


def time_to_accuracy(p: Profile, models: tuple[str, ...], available: list[str]) -> list[Cell]:
    """Each model at its best settings, every epoch scored: dense at several batch sizes (and
    PyTorch's), LSH at several fractions, on the first dataset and shape."""
    dataset, hidden = p.datasets[0], p.depths[0]
    runs = [(m, {"active_fraction": 1.0, **extra})
            for m, extra in _dense_peers(available, p.tta_batches, cuda_visible(available))]
    if "lsh" in models:
        runs += [("lsh", {"active_fraction": f}) for f in p.tta_fractions]
    return [
        Cell(
            "time_to_accuracy",
            dataset,
            model,
            {**_settings(p, dataset, hidden, extra["active_fraction"], seed), **extra},
            p.epochs,
            p.n_train,
            p.n_test,
        )
        for seed in (p.tta_seeds if p.tta_seeds is not None else p.seeds)
        for model, extra in runs
    ]


def hash_quality(p: Profile, models: tuple[str, ...], available: list[str]) -> list[Cell]:
    """LSH at the lowest fraction for every listed selection rule, (K, L) and pooling."""
    if "lsh" not in models or not p.hash_kl:
        return []
    dataset, hidden = p.datasets[0], p.depths[0]
    fraction = min(p.fractions)
    return [
        Cell(
            "hash_quality",
            dataset,
            "lsh",
            _settings(
                p, dataset, hidden, fraction, seed,
                selection=sel, K=k, L=n_tables, pool_input=pi, pool_hidden=ph,
            ),
            p.hash_epochs or p.epochs,
            p.n_train,
            p.n_test,
        )
        for seed in (p.hash_seeds if p.hash_seeds is not None else p.seeds)
        for sel in p.hash_selections
        for k, n_tables in p.hash_kl
        for pi, ph in p.hash_pools
    ]


def cells_for(
    profile_name: str,
    available_models: list[str],
    only: tuple[str, ...] = EXPERIMENTS,
    datasets: tuple[str, ...] | None = None,
    variants: tuple[str, ...] | None = None,
) -> list[Cell]:
    """All cells of the chosen experiments, for the models this installation has (and the
    profile's variants of them); ``datasets`` and ``variants`` replace the profile's."""
    p = profile(profile_name)
    if datasets:
        p = dataclasses.replace(p, datasets=tuple(datasets))
    if variants is not None:
        unknown = sorted(set(variants) - set(VARIANTS))
        if unknown:
            raise UserError(f"unknown variant(s) {unknown}; choose from {sorted(VARIANTS)}")
        p = dataclasses.replace(p, variants=tuple(variants))
    unknown = sorted(set(only) - set(EXPERIMENTS))
    if unknown:
        raise UserError(f"unknown experiment(s) {unknown}; choose from {list(EXPERIMENTS)}")
    sparse = tuple(m for m in SPARSE_MODELS if m in available_models)
    sparse += tuple(v for v in p.variants if VARIANTS[v][0] in available_models)
    builders = {"fraction_sweep": fraction_sweep, "thread_scaling": thread_scaling}
    questions = {
        "width_scaling": width_scaling,
        "time_to_accuracy": time_to_accuracy,
        "hash_quality": hash_quality,
    }
    cells = []
    for name in only:
        if name in questions:  # these also run peers that are not swept (torch-dense)
            cells += questions[name](p, sparse, list(available_models))
        else:
            cells += builders[name](p, sparse)
    return cells
