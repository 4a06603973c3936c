"""IDX files with known contents for the dataset tests, written without the code under test.

``write_set`` writes a valid four-file MNIST-format folder; ``corrupt`` then damages one file
in a named way and returns the path of the file the error must name.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np

NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """Big-endian header (two zero bytes, type, ndim, one 4-byte size per dimension), then data."""
    return (
        struct.pack(">BBBB", 0, 0, type_code, array.ndim)
        + struct.pack(f">{array.ndim}I", *array.shape)
        + array.astype(np.uint8).tobytes()
    )


def write_set(
    folder: Path, n_train: int = 30, n_test: int = 20, gz: bool = False, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Four IDX files of random images and labels 0..9 in turn; returns what was written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for kind, arr in (("images", images), ("labels", labels)):
            blob = idx_bytes(arr)
            name = NAMES[f"{split}_{kind}"] + (".gz" if gz else "")
            (folder / name).write_bytes(gzip.compress(blob, mtime=0) if gz else blob)
        out[split] = (images, labels)
    return out


def content_sha256(folder: Path) -> dict[str, str]:
    """SHA-256 of each file's decompressed bytes, by role (what a checksum table holds)."""
    out = {}
    for role, name in NAMES.items():
        path = folder / name if (folder / name).exists() else folder / f"{name}.gz"
        raw = path.read_bytes()
        data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        out[role] = hashlib.sha256(data).hexdigest()
    return out


def gz_md5(folder: Path) -> dict[str, str]:
    """MD5 of each .gz file as stored, by role."""
    return {
        role: hashlib.md5((folder / f"{name}.gz").read_bytes()).hexdigest()
        for role, name in NAMES.items()
    }


def corrupt(folder: Path, what: str) -> Path:
    """Damage the training pair of a plain ``write_set`` folder; the file an error must name."""
    images = folder / NAMES["train_images"]
    labels = folder / NAMES["train_labels"]
    n = struct.unpack(">I", images.read_bytes()[4:8])[0]
    if what == "truncated":
        images.write_bytes(images.read_bytes()[:-100])
        return images
    if what == "magic":  # a valid IDX header, but 2 dimensions: not an image file
        blob = bytearray(images.read_bytes())
        blob[3] = 0x02
        images.write_bytes(bytes(blob))
        return images
    if what == "not_idx":
        images.write_bytes(b"\x89PNG" + images.read_bytes()[4:])
        return images
    if what == "header":
        images.write_bytes(images.read_bytes()[:10])
        return images
    if what == "extra":
        images.write_bytes(images.read_bytes() + b"\0")
        return images
    if what == "count":
        labels.write_bytes(idx_bytes(np.zeros(n - 1, np.uint8)))
        return images
    if what == "label10":
        lab = (np.arange(n) % 10).astype(np.uint8)
        lab[7] = 10
        labels.write_bytes(idx_bytes(lab))
        return labels
    if what == "dims":
        images.write_bytes(idx_bytes(np.zeros((n, 27, 28), np.uint8)))
        return images
    if what == "gzip_truncated":
        gz = folder / (NAMES["train_images"] + ".gz")
        gz.write_bytes(gzip.compress(images.read_bytes())[:-40])
        images.unlink()
        return gz
    if what == "gzip_garbage":  # gzip magic, then nonsense
        gz = folder / (NAMES["train_images"] + ".gz")
        gz.write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(256)) * 4)
        images.unlink()
        return gz
    raise AssertionError(what)
