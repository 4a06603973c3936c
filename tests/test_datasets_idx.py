"""IDX parsing (MNIST format), MNIST folder lookup, mnist-5k and real Fashion-MNIST."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from harness import datasets
from harness.datasets import idx, mnist
from harness.errors import DataError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def _idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """An IDX file written independently of the module under test."""
    return (
        struct.pack(">BBBB", 0, 0, type_code, array.ndim)
        + struct.pack(f">{array.ndim}I", *array.shape)
        + array.astype(np.uint8).tobytes()
    )


def _write_set(folder: Path, n_train: int = 30, n_test: int = 20, gz: bool = False, seed: int = 0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for stem, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        suffix = ".gz" if gz else ""
        for kind, arr, tag in (("images", images, "idx3"), ("labels", labels, "idx1")):
            blob = _idx_bytes(arr)
            (folder / f"{stem}-{kind}-{tag}-ubyte{suffix}").write_bytes(
                gzip.compress(blob) if gz else blob
            )
        out[stem] = (images, labels)
    return out


@pytest.mark.parametrize("gz", [False, True])
def test_idx_roundtrip_plain_and_gzip(tmp_path: Path, gz: bool) -> None:
    written = _write_set(tmp_path, gz=gz)
    X, y = datasets.load("mnist", "train", data_dir=tmp_path)
    assert X.shape == (30, 784) and X.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(X, written["train"][0].reshape(30, -1) / np.float32(255))
    np.testing.assert_array_equal(y, written["train"][1])
    Xt, yt = datasets.load("mnist", "test", data_dir=tmp_path)
    assert Xt.shape == (20, 784) and 0.0 <= Xt.min() and Xt.max() <= 1.0


def test_lookup_by_env_and_subfolder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_set(tmp_path / "files")
    monkeypatch.setenv("HASHSPARSE_MNIST_DIR", str(tmp_path / "files"))
    assert datasets.resolve_mnist() == "mnist"
    assert datasets.load("mnist-auto", "train")[0].shape == (30, 784)
    monkeypatch.delenv("HASHSPARSE_MNIST_DIR")
    _write_set(tmp_path / "data" / "mnist")
    monkeypatch.setenv("HASHSPARSE_DATA_DIR", str(tmp_path / "data"))
    assert mnist.find_idx_files("mnist")["train_images"].parent == tmp_path / "data" / "mnist"


def test_resolve_falls_back_to_mnist5k(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HASHSPARSE_MNIST_DIR", raising=False)
    monkeypatch.delenv("HASHSPARSE_DATA_DIR", raising=False)
    assert datasets.resolve_mnist(tmp_path) == "mnist-5k"
    rec = {r.name: r for r in datasets.available(tmp_path)}
    assert not rec["mnist"].available and "HASHSPARSE_MNIST_DIR" in rec["mnist"].detail
    assert rec["mnist-auto"].available and "mnist-5k" in rec["mnist-auto"].detail


def _corrupt(folder: Path, what: str) -> Path:
    images = folder / "train-images-idx3-ubyte"
    labels = folder / "train-labels-idx1-ubyte"
    if what == "magic":
        blob = bytearray(images.read_bytes())
        blob[3] = 0x02  # 2 dimensions: a valid IDX header, but not an image file
        images.write_bytes(bytes(blob))
        return images
    if what == "not_idx":
        images.write_bytes(b"\x89PNG" + images.read_bytes()[4:])
        return images
    if what == "truncated":
        images.write_bytes(images.read_bytes()[:-100])
        return images
    if what == "header":
        images.write_bytes(images.read_bytes()[:10])
        return images
    if what == "extra":
        images.write_bytes(images.read_bytes() + b"\0")
        return images
    if what == "count":
        labels.write_bytes(_idx_bytes(np.zeros(29, np.uint8)))
        return images
    if what == "range":
        lab = np.zeros(30, np.uint8)
        lab[7] = 12
        labels.write_bytes(_idx_bytes(lab))
        return labels
    if what == "dims":
        images.write_bytes(_idx_bytes(np.zeros((30, 27, 28), np.uint8)))
        return images
    if what == "gzip":
        gz = folder / "train-images-idx3-ubyte.gz"
        images.unlink()
        gz.write_bytes(gzip.compress(_idx_bytes(np.zeros((30, 28, 28), np.uint8)))[:-40])
        return gz
    raise AssertionError(what)


@pytest.mark.parametrize(
    ("what", "words"),
    [
        ("magic", "wrong magic number 0x00000802"),
        ("not_idx", "not an IDX file"),
        ("truncated", "truncated"),
        ("header", "truncated inside the header"),
        ("extra", "unexpected bytes"),
        ("count", "30 images but"),
        ("range", "label 12 at position 7 is out of range"),
        ("dims", "wrong dimensions: images are 27x28"),
        ("gzip", "corrupt or truncated gzip"),
    ],
)
def test_corrupt_files_name_the_file_the_fault_and_the_fix(
    tmp_path: Path, what: str, words: str
) -> None:
    _write_set(tmp_path)
    bad = _corrupt(tmp_path, what)
    with pytest.raises(DataError) as err:
        datasets.load("mnist", "train", data_dir=tmp_path)
    msg = str(err.value)
    assert words in msg and str(bad) in msg and "\n" not in msg
    assert "from http://yann.lecun.com/exdb/mnist/" in msg  # the fix: where to get it again
    assert "re-download" in msg
    # Fashion-MNIST's files are fixed from their own publisher.
    with pytest.raises(DataError, match="fashion-mnist.s3-website"):
        datasets.load("fashion-mnist", "train", data_dir=tmp_path)


def test_debian_files_are_fixed_by_reinstalling_the_package() -> None:
    source = mnist.source_for("fashion-mnist", mnist.SYSTEM_DIRS["fashion-mnist"][0])
    assert "apt-get install --reinstall dataset-fashion-mnist" in source


def test_unreadable_file_says_how_to_make_it_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_set(tmp_path)
    target = tmp_path / "train-labels-idx1-ubyte"
    real = Path.read_bytes

    def denied(self: Path) -> bytes:
        if self == target:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(DataError) as err:
        datasets.load("mnist", "train", data_dir=tmp_path)
    msg = str(err.value)
    assert str(target) in msg and "Permission denied" in msg and f"chmod a+r {target}" in msg


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file_by_permissions(tmp_path: Path) -> None:
    _write_set(tmp_path)
    target = tmp_path / "train-images-idx3-ubyte"
    target.chmod(0)
    try:
        with pytest.raises(DataError, match="chmod a"):
            datasets.load("mnist", "train", data_dir=tmp_path)
        rec = {r.name: r for r in datasets.available(tmp_path)}
        assert not rec["mnist"].available and "chmod" in rec["mnist"].detail
    finally:
        target.chmod(0o644)


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "mnist.zip"
    path.write_bytes(b"PK")
    for name in ("mnist", "smallnorb"):
        with pytest.raises(DataError) as err:
            datasets.load(name, "test", data_dir=path)
        msg = str(err.value)
        assert str(path) in msg and "is a file, not a folder" in msg and "point --data-dir" in msg


def test_file_name_taken_by_a_folder(tmp_path: Path) -> None:
    _write_set(tmp_path)
    target = tmp_path / "t10k-images-idx3-ubyte"
    target.unlink()
    target.mkdir()
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte"):
        datasets.load("mnist", "test", data_dir=tmp_path)


def test_missing_directory_and_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data directory not found; point --data-dir"):
        datasets.load("mnist", "train", data_dir=tmp_path / "nope")
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"")
    with pytest.raises(DataError, match="HASHSPARSE_MNIST_DIR") as err:
        datasets.load("mnist", "train", data_dir=tmp_path)
    assert "point --data-dir" in str(err.value) and "yann.lecun.com" in str(err.value)
    with pytest.raises(DataError, match="file not found; "):
        idx.read_idx(tmp_path / "absent")


def test_unknown_name_and_split() -> None:
    with pytest.raises(DataError, match="unknown dataset 'mnist9'"):
        datasets.load("mnist9", "train")
    with pytest.raises(DataError, match="unknown split"):
        datasets.load("digits", "valid")


def test_write_idx_matches_independent_writer(tmp_path: Path) -> None:
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    idx.write_idx(tmp_path / "a.idx", a)
    assert (tmp_path / "a.idx").read_bytes() == _idx_bytes(a)
    np.testing.assert_array_equal(idx.read_idx(tmp_path / "a.idx"), a)


def test_mnist5k_split_and_subset() -> None:
    X, y = datasets.load("mnist-5k", "train")
    Xt, yt = datasets.load("mnist-5k", "test")
    assert X.shape == (4000, 784) and Xt.shape == (1000, 784)
    assert np.all(np.bincount(y) == 400) and np.all(np.bincount(yt) == 100)
    assert 0.0 <= X.min() and X.max() <= 1.0 and X.max() > 0.99
    # Train and test are disjoint: no test digit appears in train.
    train_rows = {row.tobytes() for row in X}
    assert not any(row.tobytes() in train_rows for row in Xt)
    # The file is sorted by class; the split must not be.
    assert len(set(y[:50].tolist())) > 5
    Xs, ys = datasets.load("mnist-5k", "train", n=250, seed=3)
    assert np.all(np.bincount(ys) == 25)
    Xs2, _ = datasets.load("mnist-5k", "train", n=250, seed=3)
    np.testing.assert_array_equal(Xs, Xs2)
    with pytest.raises(DataError, match="holds only 4000"):
        datasets.load("mnist-5k", "train", n=4001)


def test_digits_still_loads() -> None:
    X, y = datasets.load("digits", "train")
    assert X.shape == (1347, 64) and X.dtype == np.float32 and 0 <= X.min() and X.max() <= 1
    assert datasets.load("digits", "test")[0].shape == (450, 64)
    assert datasets.load("digits", "train", n=100, seed=0)[0].shape == (100, 64)


@pytest.mark.skipif(
    not (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian's dataset-fashion-mnist is not installed "
    "(apt-get install dataset-fashion-mnist)",
)
def test_real_fashion_mnist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HASHSPARSE_FASHION_MNIST_DIR", raising=False)
    monkeypatch.delenv("HASHSPARSE_DATA_DIR", raising=False)
    X, y = datasets.load("fashion-mnist", "train")
    Xt, yt = datasets.load("fashion-mnist", "test")
    assert X.shape == (60000, 784) and Xt.shape == (10000, 784)
    assert np.all(np.bincount(y) == 6000) and np.all(np.bincount(yt) == 1000)
    assert X.min() == 0.0 and X.max() == 1.0


def test_sizes_whose_product_overflows_read_as_truncated(tmp_path: Path) -> None:
    _write_set(tmp_path)
    images = tmp_path / "train-images-idx3-ubyte"
    images.write_bytes(struct.pack(">BBBB3I", 0, 0, 8, 3, 2**22, 2**21, 2**21))  # 2**64 bytes
    with pytest.raises(DataError, match="truncated"):
        datasets.load("mnist", "train", data_dir=tmp_path)
    rec = {r.name: r for r in datasets.available(tmp_path)}["mnist"]
    assert not rec.available and "truncated" in rec.detail


def test_mnist_auto_never_silently_replaces_what_the_user_pointed_at(tmp_path: Path) -> None:
    """It falls back to mnist-5k only where no MNIST file is present at all."""
    assert datasets.resolve_mnist(tmp_path) == "mnist-5k"  # an empty folder: nothing supplied
    with pytest.raises(DataError, match="data directory not found"):
        datasets.resolve_mnist(tmp_path / "typo")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is a file, not a folder"):
        datasets.load("mnist-auto", "train", data_dir=tmp_path / "file")
    _write_set(tmp_path / "partial")
    (tmp_path / "partial" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError) as err:
        datasets.resolve_mnist(tmp_path / "partial")
    assert "t10k-labels-idx1-ubyte[.gz] missing" in str(err.value)
