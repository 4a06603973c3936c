"""smallNORB parsing, checks, the paper's split and the 96 -> 32 area-average downsampling."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from harness import datasets
from harness.datasets import norb, registry
from harness.errors import DataError

DAT, INT = 0x1E3D4C55, 0x1E3D4C54
NAME = "smallnorb-5x46789x9x18x6x2x96x96-{split}-{part}.mat"


def _mat_bytes(array: np.ndarray, magic: int) -> bytes:
    """A smallNORB matrix file, written independently of the module under test."""
    dims = list(array.shape) + [1] * max(0, 3 - array.ndim)
    dtype = "<u1" if magic == DAT else "<i4"
    return struct.pack(f"<II{len(dims)}I", magic, array.ndim, *dims) + array.astype(dtype).tobytes()


def _write(
    folder: Path, n: int = 15, gz: bool = False, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split in ("training", "testing"):
        dat = rng.integers(0, 256, size=(n, 2, 96, 96), dtype=np.uint8)
        cat = (np.arange(n) % 5).astype(np.int32)
        for part, arr, magic in (("dat", dat, DAT), ("cat", cat, INT)):
            blob = _mat_bytes(arr, magic)
            name = NAME.format(split=split, part=part) + (".gz" if gz else "")
            (folder / name).write_bytes(gzip.compress(blob) if gz else blob)
        out[split] = (dat, cat)
    return out


@pytest.fixture
def small_train(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "NORB_TRAIN_SIZE", 10)  # 10 of 15 pairs, like 20,000 of 24,300


def _reference_features(dat: np.ndarray) -> np.ndarray:
    """Area averaging by explicit loops over 3x3 blocks, then 2*g/255 - 1."""
    n = len(dat)
    out = np.zeros((n, 2, 32, 32))
    for i in range(32):
        for j in range(32):
            out[:, :, i, j] = dat[:, :, 3 * i : 3 * i + 3, 3 * j : 3 * j + 3].mean(axis=(2, 3))
    return (out / 255.0 * 2 - 1).reshape(n, -1)


@pytest.mark.parametrize("gz", [False, True])
def test_load_matches_reference(tmp_path: Path, small_train: None, gz: bool) -> None:
    written = _write(tmp_path, gz=gz)
    Xt, yt = datasets.load("smallnorb", "test", data_dir=tmp_path, cache_dir=tmp_path / "c")
    assert Xt.shape == (15, 2048) and Xt.dtype == np.float32 and yt.dtype == np.int64
    np.testing.assert_allclose(Xt, _reference_features(written["testing"][0]), atol=1e-5)
    np.testing.assert_array_equal(yt, written["testing"][1])
    assert -1.0 <= Xt.min() and Xt.max() <= 1.0


def test_train_split_is_seeded_stratified_subset(tmp_path: Path, small_train: None) -> None:
    written = _write(tmp_path)
    ref = _reference_features(written["training"][0])
    X, y = datasets.load("smallnorb", "train", data_dir=tmp_path, seed=1, cache_dir=tmp_path / "c")
    assert X.shape == (10, 2048) and np.all(np.bincount(y) == 2)
    # Every chosen pair is one of the file's pairs, with its own label.
    for row, label in zip(X, y, strict=True):
        match = np.flatnonzero(np.all(np.abs(ref - row) < 1e-5, axis=1))
        assert len(match) == 1 and written["training"][1][match[0]] == label
    X2, _ = datasets.load("smallnorb", "train", data_dir=tmp_path, seed=1, cache_dir=tmp_path / "c")
    np.testing.assert_array_equal(X, X2)
    X3, _ = datasets.load("smallnorb", "train", data_dir=tmp_path, seed=2, cache_dir=tmp_path / "c")
    assert not np.array_equal(X, X3)


def test_too_few_training_pairs(tmp_path: Path) -> None:
    _write(tmp_path)
    with pytest.raises(DataError, match="fewer than the 20000"):
        datasets.load("smallnorb", "train", data_dir=tmp_path, cache_dir=tmp_path / "c")


def _path(folder: Path, split: str, part: str) -> Path:
    return folder / NAME.format(split=split, part=part)


@pytest.mark.parametrize(
    ("what", "words", "part"),
    [
        ("magic", "wrong magic number 0x1E3D4C54, expected 0x1E3D4C55", "dat"),
        ("garbage", "wrong magic number 0x12345678", "dat"),
        ("truncated", "truncated", "dat"),
        ("header", "truncated inside the header", "dat"),
        ("count", "15 image pairs but", "dat"),
        ("range", "label 7 at position 3 is out of range 0..4", "cat"),
        ("dims", "wrong dimensions (15, 2, 96, 95)", "dat"),
    ],
)
def test_corrupt_files_name_the_file(tmp_path: Path, what: str, words: str, part: str) -> None:
    _write(tmp_path)
    dat, cat = _path(tmp_path, "testing", "dat"), _path(tmp_path, "testing", "cat")
    if what == "magic":
        dat.write_bytes(_mat_bytes(np.zeros((15, 2, 96, 96), np.int32), INT))
    elif what == "garbage":
        dat.write_bytes(struct.pack("<I", 0x12345678) + dat.read_bytes()[4:])
    elif what == "truncated":
        dat.write_bytes(dat.read_bytes()[:-1000])
    elif what == "header":
        dat.write_bytes(dat.read_bytes()[:12])
    elif what == "count":
        cat.write_bytes(_mat_bytes(np.zeros(14, np.int32), INT))
    elif what == "range":
        labels = np.zeros(15, np.int32)
        labels[3] = 7
        cat.write_bytes(_mat_bytes(labels, INT))
    elif what == "dims":
        dat.write_bytes(_mat_bytes(np.zeros((15, 2, 96, 95), np.uint8), DAT))
    with pytest.raises(DataError) as err:
        datasets.load("smallnorb", "test", data_dir=tmp_path, cache_dir=tmp_path / "c")
    msg = str(err.value)
    bad = str(dat if part == "dat" else cat)
    assert words in msg and bad in msg and "\n" not in msg
    assert "re-download" in msg and "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/" in msg
    # The listing finds the same fault from the headers (and the small label file) alone.
    rec = {r.name: r for r in datasets.available(tmp_path)}["smallnorb"]
    assert not rec.available and words in rec.detail and bad in rec.detail
    assert "re-download" in rec.detail


def test_implausible_sizes_in_a_header(tmp_path: Path) -> None:
    """Sizes whose product overflows 64 bits must read as truncated, not wrap around."""
    _write(tmp_path)
    dat = _path(tmp_path, "testing", "dat")
    dat.write_bytes(struct.pack("<IIIIII", DAT, 4, 2**16, 2**16, 2**16, 2**16))  # 2**64
    with pytest.raises(DataError, match="truncated"):
        datasets.load("smallnorb", "test", data_dir=tmp_path, cache_dir=tmp_path / "c")


def test_listing_checks_gzip_sizes(tmp_path: Path) -> None:
    _write(tmp_path, gz=True)
    dat = tmp_path / (NAME.format(split="training", part="dat") + ".gz")
    dat.write_bytes(dat.read_bytes()[:-500])
    rec = {r.name: r for r in datasets.available(tmp_path)}["smallnorb"]
    assert not rec.available and str(dat) in rec.detail and "gzip" in rec.detail


def test_missing_files_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError, match="HASHSPARSE_NORB_DIR"):
        datasets.load("smallnorb", "test", data_dir=tmp_path)
    with pytest.raises(DataError, match="data directory not found"):
        datasets.load("smallnorb", "test", data_dir=tmp_path / "absent")
    _write(tmp_path / "norbfiles", n=5)
    monkeypatch.setenv("HASHSPARSE_NORB_DIR", str(tmp_path / "norbfiles"))
    assert norb.find_files()["test_dat"].parent == tmp_path / "norbfiles"
    rec = {r.name: r for r in datasets.available()}
    assert rec["smallnorb"].available


def test_info_records_method() -> None:
    info = datasets.info("smallnorb")
    assert info["n_features"] == 2048 and info["n_classes"] == 5
    assert info["value_range"] == (-1.0, 1.0)
    assert info["paper_sizes"] == {"train": 20000, "test": 24300}
    assert "3x3 area averaging" in info["method"]["method"]


def test_norb_alias(tmp_path: Path, small_train: None) -> None:
    _write(tmp_path)
    a = datasets.load("norb", "test", data_dir=tmp_path, cache_dir=tmp_path / "c")
    b = datasets.load("smallnorb", "test", data_dir=tmp_path, cache_dir=tmp_path / "c")
    np.testing.assert_array_equal(a[0], b[0])
    assert datasets.info("norb")["alias_for"] == "smallnorb" and "norb" in datasets.names()
    rec = {r.name: r for r in datasets.available(tmp_path)}
    assert rec["norb"].available and "smallnorb" in rec["norb"].detail


def test_partial_folder_names_the_missing_file(tmp_path: Path) -> None:
    _write(tmp_path)
    missing = _path(tmp_path, "training", "cat")
    missing.unlink()
    with pytest.raises(DataError) as err:
        datasets.load("smallnorb", "test", data_dir=tmp_path)
    msg = str(err.value)
    assert f"{missing.name}[.gz] missing" in msg and "cs.nyu.edu" in msg
