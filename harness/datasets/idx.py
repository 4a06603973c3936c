"""The IDX format of MNIST and Fashion-MNIST (plain or gzip), checked strictly.

Big-endian: two zero bytes, a type byte (0x08 = uint8), a dimension count byte, one 4-byte
size per dimension, then the data. Every problem is reported as a one-line ``DataError``
naming the file.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from harness.errors import DataError

IMAGES_MAGIC = 0x00000803  # uint8, 3 dimensions (n, rows, cols)
LABELS_MAGIC = 0x00000801  # uint8, 1 dimension (n,)

_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it is gzip (by content, not by name)."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: corrupt or truncated gzip file ({exc})") from None
    return raw


def read_idx(path: str | os.PathLike[str], expect_magic: int | None = None) -> np.ndarray:
    """The array stored in an IDX file (native byte order), after checking its header."""
    path = Path(path)
    raw = read_bytes(path)
    if len(raw) < 4:
        raise DataError(f"{path}: truncated: {len(raw)} bytes, too short for an IDX header")
    magic = struct.unpack(">I", raw[:4])[0]
    type_code, ndim = raw[2], raw[3]
    if raw[0] != 0 or raw[1] != 0 or type_code not in _TYPES or ndim == 0:
        raise DataError(f"{path}: not an IDX file (magic number 0x{magic:08X})")
    if expect_magic is not None and magic != expect_magic:
        raise DataError(f"{path}: wrong magic number 0x{magic:08X}, expected 0x{expect_magic:08X}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated inside the header ({len(raw)} of {header} bytes)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _TYPES[type_code]
    data = array_after_header(path, raw, header, dims, dtype)
    return data.astype(dtype.newbyteorder("="), copy=False)


def array_after_header(
    path: object, raw: bytes, header: int, dims: tuple[int, ...], dtype: np.dtype
) -> np.ndarray:
    """The array of ``dims`` that follows a ``header``-byte header, checking that the file
    holds exactly that many bytes (IDX and smallNORB files share this layout)."""
    count = int(np.prod(dims, dtype=np.int64))
    need, have = count * dtype.itemsize, len(raw) - header
    if have < need:
        raise DataError(
            f"{path}: truncated: shape {dims} needs {need} data bytes, the file holds {have}"
        )
    if have > need:
        raise DataError(f"{path}: {have - need} unexpected bytes after the data of shape {dims}")
    return np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)


def read_images_labels(
    images_path: str | os.PathLike[str],
    labels_path: str | os.PathLike[str],
    shape: tuple[int, int] = (28, 28),
    n_classes: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, rows, cols), labels int64 (n,)) from a matching pair of IDX files."""
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if images.shape[1:] != shape:
        raise DataError(
            f"{images_path}: wrong dimensions: images are {images.shape[1]}x{images.shape[2]}, "
            f"expected {shape[0]}x{shape[1]}"
        )
    if len(images) != len(labels):
        raise DataError(
            f"{images_path}: {len(images)} images but {labels_path} has {len(labels)} labels"
        )
    if len(labels) and int(labels.max()) >= n_classes:
        bad = int(np.flatnonzero(labels >= n_classes)[0])
        raise DataError(
            f"{labels_path}: label {int(labels[bad])} at position {bad} is out of range "
            f"0..{n_classes - 1}"
        )
    return images, labels.astype(np.int64)


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write a uint8 array as IDX (gzip if the name ends in .gz); for fixtures and exports."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    blob = struct.pack(f">BBBB{a.ndim}I", 0, 0, 0x08, a.ndim, *a.shape) + a.tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(blob) if path.suffix == ".gz" else blob)
