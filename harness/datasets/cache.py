"""An ``.npz`` cache for generated and parsed datasets, verified before it is trusted.

Layout: ``<cache root>/datasets/<name>-<16 hex digits>.npz``, where the hex digits are a hash
of the full key (dataset name, sizes, seed, generator version, source files). Each file also
stores the key itself (``__key__``) and a SHA-256 of its arrays (``__checksum__``); a file whose
key or checksum does not match, that lacks an expected array (another version's layout), holds
NaN or infinity, or cannot be read, is rebuilt with a warning, never used. Files are
written to a temporary name in the same folder and renamed into place (``os.replace``), so a
crash never leaves a half-written cache file under the real name.

The cache root is, in order: the ``cache_dir`` argument, ``$HASHSPARSE_CACHE_DIR``,
``$XDG_CACHE_HOME/hashsparse``, ``~/.cache/hashsparse``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import StoreError
from harness.files import atomic_write

log = logging.getLogger(__name__)

CACHE_ENV = "HASHSPARSE_CACHE_DIR"
_KEY = "__key__"
_SUM = "__checksum__"

Arrays = dict[str, np.ndarray]


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder that holds cached datasets (not created here)."""
    if cache_dir is not None:
        base = Path(cache_dir)
    elif os.environ.get(CACHE_ENV):
        base = Path(os.environ[CACHE_ENV])
    elif os.environ.get("XDG_CACHE_HOME"):
        base = Path(os.environ["XDG_CACHE_HOME"]) / "hashsparse"
    else:
        base = Path.home() / ".cache" / "hashsparse"
    return base.expanduser() / "datasets"


def key_text(name: str, key: Mapping[str, Any]) -> str:
    """Canonical JSON for a cache key (sorted keys, so equal keys give equal text)."""
    return json.dumps({"name": name, **key}, sort_keys=True, default=str)


def cache_path(
    name: str, key: Mapping[str, Any], cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    digest = hashlib.sha256(key_text(name, key).encode()).hexdigest()[:16]
    return cache_root(cache_dir) / f"{name}-{digest}.npz"


def checksum(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of the arrays, in name order."""
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.data)
    return h.hexdigest()


def _read(path: Path, text: str, expect: Collection[str] = ()) -> Arrays | None:
    """The cached arrays if the file is intact, was built for exactly this key, holds the
    ``expect``-ed arrays and no NaN or infinity."""
    try:
        with np.load(path, allow_pickle=False) as z:
            stored_key = str(z[_KEY])
            stored_sum = str(z[_SUM])
            arrays = {k: z[k] for k in z.files if k not in (_KEY, _SUM)}
    except Exception as exc:  # any unreadable file is simply rebuilt
        log.warning("cache file %s is unreadable (%s); rebuilding it", path, exc)
        return None
    if stored_key != text:
        log.warning("cache file %s was built for a different key; rebuilding it", path)
        return None
    if stored_sum != checksum(arrays):
        log.warning("cache file %s fails its checksum; rebuilding it", path)
        return None
    missing = sorted(set(expect) - set(arrays))
    if missing:  # written by another version of this code, under the same key
        log.warning("cache file %s lacks the arrays %s; rebuilding it", path, missing)
        return None
    for k, a in arrays.items():
        if a.dtype.kind in "fc" and not np.isfinite(a).all():
            log.warning("cache file %s holds non-finite values in %r; rebuilding it", path, k)
            return None
    return arrays


def _write(path: Path, text: str, arrays: Arrays) -> None:
    payload: dict[str, Any] = {**arrays, _KEY: np.array(text), _SUM: np.array(checksum(arrays))}
    atomic_write(path, lambda fh: np.savez(fh, **payload))


def cached(
    name: str,
    key: Mapping[str, Any],
    build: Callable[[], Arrays],
    cache_dir: str | os.PathLike[str] | None = None,
    expect: Collection[str] = ("X", "y"),
) -> Arrays:
    """Arrays for ``key`` from the cache, or from ``build()`` (then stored). A cached file
    must hold the ``expect``-ed arrays.

    The cache is an optimisation: if it cannot be written (read-only disk, full disk) the
    freshly built arrays are still returned, with a warning."""
    text = key_text(name, key)
    path = cache_path(name, key, cache_dir)
    if path.exists():
        arrays = _read(path, text, expect)
        if arrays is not None:
            log.debug("dataset %s from cache %s", name, path)
            return arrays
    arrays = build()
    try:
        _write(path, text, arrays)
        log.info("cached dataset %s at %s", name, path)
    except StoreError as exc:
        log.warning("could not write cache file %s (%s); continuing without it", path, exc)
    return arrays
