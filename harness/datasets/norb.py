"""smallNORB from the user's ``.mat`` files (plain or .gz), checked strictly.

Binary format (little-endian): a 4-byte magic (0x1E3D4C55 = uint8 matrix for ``dat``,
0x1E3D4C54 = int32 matrix for ``cat`` and ``info``), a 4-byte number of dimensions, then
max(3, ndim) 4-byte sizes (the unused ones are 1), then the data. ``dat`` is (24300, 2, 96, 96)
stereo pairs, ``cat`` is (24300,) labels 0-4.

Paper protocol: 20,000 of the 24,300 training pairs (which ones: a class-stratified draw from
the seed, 4,000 per class) and all 24,300 test pairs; each 96x96 image area-averaged over
3x3 blocks to 32x32, both images of the pair concatenated (2 x 32 x 32 = 2,048 features, left
image first, row-major), and grey levels g scaled to 2*g/255 - 1 in [-1, 1].

Where the files are looked up: the ``data_dir`` argument (or its ``smallnorb/`` subfolder),
``$HASHSPARSE_NORB_DIR``, ``$HASHSPARSE_DATA_DIR/smallnorb``.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from harness.datasets.idx import (
    IdxHeader,
    array_after_header,
    check_data_dir,
    fault,
    read_bytes,
    read_header,
    redownload,
    some_missing,
)
from harness.datasets.split import stratified_subset
from harness.errors import DataError

VERSION = 1
ENV = "HASHSPARSE_NORB_DIR"
DATA_ENV = "HASHSPARSE_DATA_DIR"
SOURCE = "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/"
UINT8_MAGIC = 0x1E3D4C55
INT32_MAGIC = 0x1E3D4C54
_DTYPES: dict[int, np.dtype] = {UINT8_MAGIC: np.dtype(np.uint8), INT32_MAGIC: np.dtype("<i4")}
FILE = "smallnorb-5x46789x9x18x6x2x96x96-{split}-{part}.mat"
IMAGE = 96
FACTOR = 3  # 96 -> 32 by 3x3 area averaging
N_CLASSES = 5
PAPER_TRAIN = 20000  # of the 24,300 training pairs
PAPER_TEST = 24300
N_FEATURES = 2 * (IMAGE // FACTOR) ** 2
METHOD = (
    "20,000 of 24,300 training pairs (class-stratified, drawn from the seed) and all 24,300 "
    "test pairs; 96x96 -> 32x32 by 3x3 area averaging; left then right image, row-major; "
    "x = 2*g/255 - 1"
)
_CHUNK = 1024


def _header(
    path: Path, head: bytes, total: int, expect_magic: int | None, source: str
) -> IdxHeader:
    """The smallNORB header at the start of ``head`` (the first bytes of a ``total``-byte file)."""
    if len(head) < 8:
        raise fault(path, f"truncated: {total} bytes, too short for a header", source)
    magic, ndim = struct.unpack("<II", head[:8])
    if magic not in _DTYPES:
        raise fault(
            path,
            f"wrong magic number 0x{magic:08X}, expected 0x{UINT8_MAGIC:08X} (dat) "
            f"or 0x{INT32_MAGIC:08X} (cat, info)",
            source,
        )
    if expect_magic is not None and magic != expect_magic:
        raise fault(
            path, f"wrong magic number 0x{magic:08X}, expected 0x{expect_magic:08X}", source
        )
    if not 1 <= ndim <= 8:
        raise fault(path, f"implausible number of dimensions {ndim}", source)
    n_sizes = max(3, ndim)
    size = 8 + 4 * n_sizes
    if len(head) < size:
        raise fault(path, f"truncated inside the header ({len(head)} of {size} bytes)", source)
    dims = struct.unpack(f"<{n_sizes}I", head[8:size])[:ndim]
    return IdxHeader(path, magic, dims, _DTYPES[magic], size)


def read_norb(path: str | os.PathLike[str], expect_magic: int | None = None) -> np.ndarray:
    """The matrix stored in one smallNORB ``.mat`` file, after checking its header and size."""
    path = Path(path)
    raw = read_bytes(path, SOURCE)
    h = _header(path, raw, len(raw), expect_magic, SOURCE)
    return array_after_header(path, raw, h.size, h.dims, h.dtype, SOURCE)


def candidate_dirs(data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    if data_dir is not None:
        return [Path(data_dir) / "smallnorb", Path(data_dir)]
    dirs = []
    if os.environ.get(ENV):
        dirs.append(Path(os.environ[ENV]))
    if os.environ.get(DATA_ENV):
        dirs.append(Path(os.environ[DATA_ENV]) / "smallnorb")
    return dirs


def find_files(data_dir: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """{'train_dat', 'train_cat', 'test_dat', 'test_cat'}: paths (plain preferred over .gz)."""
    check_data_dir(data_dir, "holding the smallNORB .mat files")
    dirs = candidate_dirs(data_dir)
    pointer = f"point --data-dir (or ${ENV}) at a folder holding them (from {SOURCE})"
    partial: tuple[Path, list[str]] | None = None
    for folder in dirs:
        found: dict[str, Path] = {}
        missing: list[str] = []
        for split, word in (("train", "training"), ("test", "testing")):
            for part in ("dat", "cat"):
                name = FILE.format(split=word, part=part)
                for cand in (folder / name, folder / (name + ".gz")):
                    if cand.is_file():
                        found.setdefault(f"{split}_{part}", cand)
                if f"{split}_{part}" not in found:
                    missing.append(name)
        if not missing:
            return found
        if found and partial is None:
            partial = (folder, missing)
    if partial is not None:  # a folder with some of the files: say which are missing
        raise some_missing(partial[0], "smallNORB", partial[1], pointer)
    where = ", ".join(str(d) for d in dirs) or "any folder (none configured)"
    raise DataError(
        f"smallNORB files ({FILE.format(split='training', part='dat')}[.gz] and the other "
        f"three) not found in {where}; {pointer}"
    )


def _check_pair(dat: IdxHeader, cat: IdxHeader, labels: np.ndarray) -> None:
    if len(dat.dims) != 4 or dat.dims[1:] != (2, IMAGE, IMAGE):
        raise fault(dat.path, f"wrong dimensions {dat.dims}, expected (n, 2, 96, 96)", SOURCE)
    if len(cat.dims) != 1:
        raise fault(cat.path, f"wrong dimensions {cat.dims}, expected (n,)", SOURCE)
    if dat.dims[0] != cat.dims[0]:
        raise fault(
            dat.path,
            f"{dat.dims[0]} image pairs but {cat.path} has {cat.dims[0]} labels",
            SOURCE,
            redownload(SOURCE, "both files"),
        )
    bad = np.flatnonzero((labels < 0) | (labels >= N_CLASSES))
    if len(bad):
        raise fault(
            cat.path,
            f"label {int(labels[bad[0]])} at position {int(bad[0])} is out of range 0..4",
            SOURCE,
        )


def _read_cat(path: Path) -> tuple[IdxHeader, np.ndarray]:
    raw = read_bytes(path, SOURCE)
    h = _header(path, raw, len(raw), INT32_MAGIC, SOURCE)
    return h, array_after_header(path, raw, h.size, h.dims, h.dtype, SOURCE)


def check_files(files: dict[str, Path]) -> None:
    """A cheap check for listings: the image files' headers against their sizes (not their
    448 MB of data), and the small label files read in full."""
    for split in ("train", "test"):
        dat = read_header(files[f"{split}_dat"], UINT8_MAGIC, SOURCE, _header)
        cat, labels = _read_cat(files[f"{split}_cat"])
        _check_pair(dat, cat, labels)


def read_pairs(dat_path: Path, cat_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(stereo pairs uint8 (n, 2, 96, 96), labels int64 (n,)) after cross-checking the files."""
    raw = read_bytes(dat_path, SOURCE)
    dh = _header(dat_path, raw, len(raw), UINT8_MAGIC, SOURCE)
    dat = array_after_header(dat_path, raw, dh.size, dh.dims, dh.dtype, SOURCE)
    ch, cat = _read_cat(cat_path)
    _check_pair(dh, ch, cat)
    return dat, cat.astype(np.int64)


def block_sums(pairs: np.ndarray) -> np.ndarray:
    """3x3 block sums (exact, uint16) of (n, 2, 96, 96) uint8 -> (n, 2048); chunked."""
    n, k = len(pairs), IMAGE // FACTOR
    out = np.empty((n, N_FEATURES), np.uint16)
    for s in range(0, n, _CHUNK):
        block = pairs[s : s + _CHUNK].astype(np.uint16)
        block = block.reshape(len(block), 2, k, FACTOR, k, FACTOR).sum(axis=(3, 5), dtype=np.uint16)
        out[s : s + len(block)] = block.reshape(len(block), -1)
    return out


def to_features(sums: np.ndarray) -> np.ndarray:
    """Block sums -> area averages scaled to [-1, 1], float32."""
    return (sums.astype(np.float32) * (2.0 / (FACTOR * FACTOR * 255.0)) - 1.0).astype(np.float32)


def load_source(
    split: str,
    seed: int,
    data_dir: str | os.PathLike[str] | None = None,
    train_size: int = PAPER_TRAIN,
) -> dict[str, np.ndarray]:
    """{'X': block sums uint16 (n, 2048), 'y': int64} for the paper's split."""
    files = find_files(data_dir)
    dat, cat = read_pairs(files[f"{split}_dat"], files[f"{split}_cat"])
    if split == "train":
        if len(cat) < train_size:
            raise DataError(
                f"{files['train_dat']}: holds {len(cat)} pairs, fewer than the {train_size} the "
                f"paper's split takes (smallNORB has 24,300); use the full training files "
                f"(from {SOURCE})"
            )
        keep = stratified_subset(cat, train_size, seed, "smallNORB training pairs")
        dat, cat = dat[keep], cat[keep]
    return {"X": block_sums(dat), "y": cat}


def identity(data_dir: str | os.PathLike[str] | None = None) -> dict[str, object]:
    files = find_files(data_dir)
    return {k: [str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for k, p in files.items()}
