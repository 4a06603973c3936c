"""The IDX format of MNIST and Fashion-MNIST (plain or gzip), checked strictly.

Big-endian: two zero bytes, a type byte (0x08 = uint8), a dimension count byte, one 4-byte
size per dimension, then the data. Every problem is a one-line ``DataError`` naming the file,
the fault and the fix; ``source`` (where the file can be had again) completes the fix.

``read_header`` checks a file without reading its data (header, and the data size against the
header's dimensions: the file size for plain files, the gzip trailer for .gz ones), for
listings; ``parse_idx`` checks and returns the data of bytes already read.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import DataError

IMAGES_MAGIC = 0x00000803  # uint8, 3 dimensions (n, rows, cols)
LABELS_MAGIC = 0x00000801  # uint8, 1 dimension (n,)
GZIP_MAGIC = b"\x1f\x8b"
ANY_SOURCE = "where you got it"

_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_HEAD = 4 + 4 * 255  # the longest IDX header


def redownload(source: str, what: str = "it") -> str:
    return f"re-download {what} from {source}"


def some_missing(folder: Path, what: str, missing: list[str], pointer: str) -> DataError:
    """The error for a folder holding only some of a dataset's files: names the missing ones."""
    return DataError(
        f"{folder}: {what} file(s) {', '.join(n + '[.gz]' for n in missing)} missing "
        f"(the others are there); put them there, or {pointer}"
    )


def fault(path: object, what: str, source: str, fix: str | None = None) -> DataError:
    """The one-line error for a bad file: the file, the fault, the fix."""
    return DataError(f"{path}: {what}; {fix or redownload(source)}")


def os_fault(path: Path, exc: OSError, source: str) -> DataError:
    """An OSError on ``path`` as a DataError that says how to fix it."""
    reason = exc.strerror or str(exc)
    if isinstance(exc, FileNotFoundError):
        return fault(path, "file not found", source, f"put the file there (from {source})")
    if isinstance(exc, IsADirectoryError):
        return fault(path, "is a folder, not a file", source, f"put the file there (from {source})")
    if isinstance(exc, PermissionError):
        return fault(
            path, f"cannot be read ({reason})", source, f"make it readable: chmod a+r {path}"
        )
    return fault(path, f"cannot be read ({reason})", source)


def check_data_dir(data_dir: str | os.PathLike[str] | None, holding: str) -> None:
    """A ``data_dir`` given must be an existing folder; ``holding`` says what it should hold."""
    if data_dir is None:
        return
    path = Path(data_dir)
    if path.exists() and not path.is_dir():
        raise DataError(
            f"{path}: is a file, not a folder; point --data-dir at the folder {holding}"
        )
    if not path.is_dir():
        raise DataError(
            f"{path}: data directory not found; point --data-dir at an existing folder {holding}"
        )


def read_raw(path: Path, source: str = ANY_SOURCE) -> bytes:
    """The file's bytes as stored (still gzipped if it is)."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise os_fault(path, exc, source) from None


def gunzip(path: Path, raw: bytes, source: str = ANY_SOURCE) -> bytes:
    """``raw`` decompressed when it is gzip (by content, not by name), else ``raw``."""
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise fault(path, f"corrupt or truncated gzip file ({exc})", source) from None


def read_bytes(path: Path, source: str = ANY_SOURCE) -> bytes:
    """The file's bytes, gunzipped when it is gzip."""
    return gunzip(path, read_raw(path, source), source)


def check_size(path: object, dims: tuple[int, ...], dtype: np.dtype, have: int, source: str) -> int:
    """The number of data bytes ``dims`` needs, which must be exactly the ``have`` present."""
    need = math.prod(dims) * dtype.itemsize  # exact: a product of sizes can exceed 64 bits
    if have < need:
        raise fault(
            path, f"truncated: shape {dims} needs {need} data bytes, the file holds {have}", source
        )
    if have > need:
        raise fault(path, f"{have - need} unexpected bytes after the data of shape {dims}", source)
    return need


def array_after_header(
    path: object,
    raw: bytes,
    header: int,
    dims: tuple[int, ...],
    dtype: np.dtype,
    source: str = ANY_SOURCE,
) -> np.ndarray:
    """The array of ``dims`` that follows a ``header``-byte header, checking that the file
    holds exactly that many bytes (IDX and smallNORB files share this layout)."""
    check_size(path, dims, dtype, len(raw) - header, source)
    count = math.prod(dims)
    return np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)


@dataclass(frozen=True)
class IdxHeader:
    """A parsed header (IDX or smallNORB): the data of ``dims`` follow ``size`` bytes."""

    path: Path
    magic: int
    dims: tuple[int, ...]
    dtype: np.dtype
    size: int


# (path, first bytes, file length, expected magic, source) -> header; raises DataError
HeaderReader = Callable[[Path, bytes, int, "int | None", str], IdxHeader]


def _header(
    path: Path, head: bytes, total: int, expect_magic: int | None, source: str
) -> IdxHeader:
    """The header at the start of ``head`` (the first bytes of a ``total``-byte file)."""
    if len(head) < 4:
        raise fault(path, f"truncated: {total} bytes, too short for an IDX header", source)
    magic = struct.unpack(">I", head[:4])[0]
    type_code, ndim = head[2], head[3]
    if head[0] != 0 or head[1] != 0 or type_code not in _TYPES or ndim == 0:
        raise fault(path, f"not an IDX file (magic number 0x{magic:08X})", source)
    if expect_magic is not None and magic != expect_magic:
        raise fault(
            path, f"wrong magic number 0x{magic:08X}, expected 0x{expect_magic:08X}", source
        )
    size = 4 + 4 * ndim
    if len(head) < size:
        raise fault(path, f"truncated inside the header ({len(head)} of {size} bytes)", source)
    dims = struct.unpack(f">{ndim}I", head[4:size])
    return IdxHeader(path, magic, dims, _TYPES[type_code], size)


def parse_idx(
    path: Path, content: bytes, expect_magic: int | None = None, source: str = ANY_SOURCE
) -> tuple[IdxHeader, np.ndarray]:
    """The header and array (native byte order) of IDX bytes already read and gunzipped."""
    h = _header(path, content, len(content), expect_magic, source)
    data = array_after_header(path, content, h.size, h.dims, h.dtype, source)
    return h, data.astype(h.dtype.newbyteorder("="), copy=False)


def read_idx(
    path: str | os.PathLike[str], expect_magic: int | None = None, source: str = ANY_SOURCE
) -> np.ndarray:
    """The array stored in an IDX file (native byte order), after checking its header."""
    path = Path(path)
    return parse_idx(path, read_bytes(path, source), expect_magic, source)[1]


def _gzip_length(path: Path, expected: int, source: str) -> int:
    """Uncompressed length of a gzip file: its trailer (the length mod 2**32) when that is
    what is expected, else counted by decompressing, so a multi-member file is not misread."""
    try:
        with path.open("rb") as f:
            f.seek(-4, os.SEEK_END)
            if struct.unpack("<I", f.read(4))[0] == expected % 2**32:
                return expected
        total = 0
        with gzip.open(path, "rb") as g:
            while chunk := g.read(1 << 20):
                total += len(chunk)
        return total
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise fault(path, f"corrupt or truncated gzip file ({exc})", source) from None
    except OSError as exc:
        raise os_fault(path, exc, source) from None


def read_header(
    path: str | os.PathLike[str],
    expect_magic: int | None = None,
    source: str = ANY_SOURCE,
    reader: HeaderReader | None = None,
) -> IdxHeader:
    """A file's header, checked against the file's data size, without reading the data.

    ``reader`` parses the header (IDX by default; smallNORB passes its own)."""
    path = Path(path)
    reader = reader or _header
    try:
        with path.open("rb") as f:
            gz = f.read(2) == GZIP_MAGIC
            total = f.seek(0, os.SEEK_END)
        if gz:
            with gzip.open(path, "rb") as g:
                head = g.read(_HEAD)
        else:
            with path.open("rb") as f:
                head = f.read(_HEAD)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise fault(path, f"corrupt or truncated gzip file ({exc})", source) from None
    except OSError as exc:
        raise os_fault(path, exc, source) from None
    h = reader(path, head, len(head) if gz else total, expect_magic, source)
    need = math.prod(h.dims) * h.dtype.itemsize
    if gz:
        total = _gzip_length(path, h.size + need, source)
    check_size(path, h.dims, h.dtype, total - h.size, source)
    return h


def check_pair(
    images: IdxHeader,
    labels: IdxHeader,
    label_values: np.ndarray,
    shape: tuple[int, int],
    n_classes: int,
    source: str = ANY_SOURCE,
) -> None:
    """Images of ``shape``, as many as there are labels, and labels in 0..n_classes-1."""
    if images.dims[1:] != shape:
        raise fault(
            images.path,
            f"wrong dimensions: images are {images.dims[1]}x{images.dims[2]}, "
            f"expected {shape[0]}x{shape[1]}",
            source,
        )
    if images.dims[0] != labels.dims[0]:
        raise fault(
            images.path,
            f"{images.dims[0]} images but {labels.path} has {labels.dims[0]} labels",
            source,
            redownload(source, "both files"),
        )
    bad = np.flatnonzero(label_values >= n_classes)
    if len(bad):
        raise fault(
            labels.path,
            f"label {int(label_values[bad[0]])} at position {int(bad[0])} is out of range "
            f"0..{n_classes - 1}",
            source,
        )


def read_images_labels(
    images_path: str | os.PathLike[str],
    labels_path: str | os.PathLike[str],
    shape: tuple[int, int] = (28, 28),
    n_classes: int = 10,
    source: str = ANY_SOURCE,
) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, rows, cols), labels int64 (n,)) from a matching pair of IDX files."""
    ipath, lpath = Path(images_path), Path(labels_path)
    ih, images = parse_idx(ipath, read_bytes(ipath, source), IMAGES_MAGIC, source)
    lh, labels = parse_idx(lpath, read_bytes(lpath, source), LABELS_MAGIC, source)
    check_pair(ih, lh, labels, shape, n_classes, source)
    return images, labels.astype(np.int64)


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write a uint8 array as IDX (gzip if the name ends in .gz); for fixtures and exports."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    blob = struct.pack(f">BBBB{a.ndim}I", 0, 0, 0x08, a.ndim, *a.shape) + a.tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(blob) if path.suffix == ".gz" else blob)
