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

from harness.datasets.idx import array_after_header, read_bytes
from harness.datasets.split import stratified_subset
from harness.errors import DataError

VERSION = 1
ENV = "HASHSPARSE_NORB_DIR"
DATA_ENV = "HASHSPARSE_DATA_DIR"
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


def read_norb(path: str | os.PathLike[str], expect_magic: int | None = None) -> np.ndarray:
    """The matrix stored in one smallNORB ``.mat`` file, after checking its header and size."""
    path = Path(path)
    raw = read_bytes(path)
    if len(raw) < 8:
        raise DataError(f"{path}: truncated: {len(raw)} bytes, too short for a header")
    magic, ndim = struct.unpack("<II", raw[:8])
    if magic not in _DTYPES:
        raise DataError(
            f"{path}: wrong magic number 0x{magic:08X}, expected 0x{UINT8_MAGIC:08X} (dat) "
            f"or 0x{INT32_MAGIC:08X} (cat, info)"
        )
    if expect_magic is not None and magic != expect_magic:
        raise DataError(f"{path}: wrong magic number 0x{magic:08X}, expected 0x{expect_magic:08X}")
    if not 1 <= ndim <= 8:
        raise DataError(f"{path}: implausible number of dimensions {ndim}")
    n_sizes = max(3, ndim)
    header = 8 + 4 * n_sizes
    if len(raw) < header:
        raise DataError(f"{path}: truncated inside the header ({len(raw)} of {header} bytes)")
    dims = struct.unpack(f"<{n_sizes}I", raw[8:header])[:ndim]
    return array_after_header(path, raw, header, dims, _DTYPES[magic])


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
    if data_dir is not None and not Path(data_dir).is_dir():
        raise DataError(f"{data_dir}: data directory not found")
    dirs = candidate_dirs(data_dir)
    for folder in dirs:
        found: dict[str, Path] = {}
        for split, word in (("train", "training"), ("test", "testing")):
            for part in ("dat", "cat"):
                name = FILE.format(split=word, part=part)
                for cand in (folder / name, folder / (name + ".gz")):
                    if cand.is_file():
                        found.setdefault(f"{split}_{part}", cand)
        if len(found) == 4:
            return found
    where = ", ".join(str(d) for d in dirs) or "any folder (none configured)"
    raise DataError(
        f"smallNORB files ({FILE.format(split='training', part='dat')}[.gz] and the other "
        f"three) not found in {where}; set {ENV} or pass data_dir"
    )


def read_pairs(dat_path: Path, cat_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(stereo pairs uint8 (n, 2, 96, 96), labels int64 (n,)) after cross-checking the files."""
    dat = read_norb(dat_path, UINT8_MAGIC)
    cat = read_norb(cat_path, INT32_MAGIC)
    if dat.ndim != 4 or dat.shape[1:] != (2, IMAGE, IMAGE):
        raise DataError(f"{dat_path}: wrong dimensions {dat.shape}, expected (n, 2, 96, 96)")
    if cat.ndim != 1:
        raise DataError(f"{cat_path}: wrong dimensions {cat.shape}, expected (n,)")
    if len(dat) != len(cat):
        raise DataError(f"{dat_path}: {len(dat)} image pairs but {cat_path} has {len(cat)} labels")
    if len(cat) and (cat.min() < 0 or cat.max() >= N_CLASSES):
        bad = int(np.flatnonzero((cat < 0) | (cat >= N_CLASSES))[0])
        raise DataError(f"{cat_path}: label {int(cat[bad])} at position {bad} is out of range 0..4")
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
                "paper's split takes (smallNORB has 24,300)"
            )
        keep = stratified_subset(cat, train_size, seed, "smallNORB training pairs")
        dat, cat = dat[keep], cat[keep]
    return {"X": block_sums(dat), "y": cat}


def identity(data_dir: str | os.PathLike[str] | None = None) -> dict[str, object]:
    files = find_files(data_dir)
    return {k: [str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for k, p in files.items()}
