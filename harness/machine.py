"""A best-effort fingerprint of the machine a result came from, and a stable machine id.

Every item is read on its own; anything unreadable is left out (logged at debug level), so
``fingerprint()`` never raises. ``machine_id(name)`` names the machine's results folder: the
user's ``name`` (``--machine-id``) when given, else a sanitised hostname plus a short hash of
stable hardware facts (CPU model, core count, memory, GPUs). ``code_version()`` is the commit
(and whether it had uncommitted changes) that every record stores.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import platform
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
LIBRARIES = (
    "numpy",
    "scipy",
    "numba",
    "llvmlite",
    "pandas",
    "scikit-learn",
    "matplotlib",
    "threadpoolctl",
    "pyRAPL",
    "nvidia-ml-py",
    "hashsparse-energy",
)


def read_text(path: str | Path) -> str:
    """Read a small system file. Module-level so tests can make it fail."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read()


def _safe(what: str, fn: Callable[[], Any]) -> Any:
    """fn() or None when it fails for any reason: a fingerprint item is never fatal."""
    try:
        return fn()
    except Exception as exc:
        log.debug("fingerprint: %s unreadable: %s", what, exc)
        return None


# -- CPU and memory -------------------------------------------------------------------------


def _cpuinfo() -> list[dict[str, str]]:
    blocks: list[dict[str, str]] = [{}]
    for line in read_text("/proc/cpuinfo").splitlines():
        if not line.strip():
            if blocks[-1]:
                blocks.append({})
            continue
        key, _, value = line.partition(":")
        blocks[-1][key.strip().lower()] = value.strip()
    return [b for b in blocks if b]


def cpu_model() -> str | None:
    def from_cpuinfo() -> str | None:
        for block in _cpuinfo():
            for key in ("model name", "hardware", "cpu model"):
                if block.get(key):
                    return block[key]
        return None

    return _safe("cpu model", from_cpuinfo) or platform.processor() or None


def physical_cores() -> int | None:
    def count() -> int | None:
        pairs = {(b.get("physical id", "0"), b["core id"]) for b in _cpuinfo() if "core id" in b}
        return len(pairs) or None

    return _safe("physical cores", count)


def _cpufreq(item: str) -> str | None:
    return _safe(
        item,
        lambda: read_text(f"/sys/devices/system/cpu/cpu0/cpufreq/{item}").strip() or None,
    )


def memory_bytes() -> int | None:
    def parse() -> int | None:
        for line in read_text("/proc/meminfo").splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
        return None

    return _safe("memory", parse)


# -- GPUs, BLAS, numba, libraries, git ------------------------------------------------------


def gpus() -> dict[str, Any] | None:
    """GPU models, memory and driver through NVML; None where there is no NVIDIA GPU."""

    def query() -> dict[str, Any] | None:
        from harness.energy.nvml import PynvmlAdapter

        nv = PynvmlAdapter()
        nv.init()
        try:
            devices = []
            for i in range(nv.device_count()):
                devices.append(
                    {
                        "index": i,
                        "name": nv.name(i),
                        "memory_bytes": _safe("gpu memory", partial(nv.memory_total_bytes, i)),
                        "mig": _safe("gpu mig", partial(nv.mig_enabled, i)),
                    }
                )
            return {"driver": _safe("gpu driver", nv.driver_version), "devices": devices}
        finally:
            nv.shutdown()

    return _safe("gpus", query)


def blas() -> list[dict[str, Any]] | None:
    """Thread pools (BLAS, OpenMP) through threadpoolctl, else numpy's build configuration."""

    def pools() -> list[dict[str, Any]]:
        import numpy  # noqa: F401  (threadpoolctl only sees libraries already loaded)
        from threadpoolctl import threadpool_info

        keep = (
            "user_api",
            "internal_api",
            "prefix",
            "version",
            "num_threads",
            "threading_layer",
            "architecture",
        )
        return [{k: p.get(k) for k in keep if p.get(k) is not None} for p in threadpool_info()]

    def numpy_config() -> list[dict[str, Any]] | None:
        import numpy as np

        cfg = np.show_config(mode="dicts")
        deps = cfg.get("Build Dependencies", {})
        out = [
            {"user_api": "blas", "internal_api": v.get("name"), "version": v.get("version")}
            for k, v in deps.items()
            if k in ("blas", "lapack") and isinstance(v, dict)
        ]
        return [dict(t) for t in dict.fromkeys(tuple(d.items()) for d in out)] or None

    return _safe("threadpoolctl", pools) or _safe("numpy config", numpy_config)


def numba_info() -> dict[str, Any] | None:
    def query() -> dict[str, Any]:
        import numba
        from numba.core import config

        info: dict[str, Any] = {
            "version": numba.__version__,
            "threading_layer_config": config.THREADING_LAYER,  # type: ignore[attr-defined]
            "num_threads": config.NUMBA_NUM_THREADS,  # type: ignore[attr-defined]
        }
        try:  # only known once a parallel kernel has run in this process
            info["threading_layer"] = numba.threading_layer()
        except ValueError:
            pass
        return info

    return _safe("numba", query)


def library_versions() -> dict[str, str]:
    out = {}
    for name in LIBRARIES:
        version = _safe(name, partial(importlib.metadata.version, name))
        if version:
            out[name] = version
    return out


def git_state(repo: Path = REPO_ROOT) -> dict[str, Any] | None:
    def query() -> dict[str, Any] | None:
        def git(*args: str) -> str:
            return subprocess.run(
                ["git", *args], cwd=repo, capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()

        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        return {"commit": commit, "dirty": dirty}

    return _safe("git", query)


# -- the fingerprint and the id -------------------------------------------------------------


def fingerprint(machine_id_: str | None = None) -> dict[str, Any]:
    """What the machine is, as plain data for a result record; unreadable items omitted.
    ``machine_id_`` is the user's name for the machine, if any (see ``machine_id``)."""
    cpu = {
        "model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": physical_cores(),
        "governor": _cpufreq("scaling_governor"),
        "scaling_driver": _cpufreq("scaling_driver"),
        "architecture": _safe("architecture", platform.machine) or None,
    }
    info: dict[str, Any] = {
        "machine_id": machine_id(machine_id_),
        "hostname": _safe("hostname", socket.gethostname),
        "os": _safe("os", platform.platform),
        "cpu": {k: v for k, v in cpu.items() if v is not None},
        "memory_bytes": memory_bytes(),
        "gpu": gpus(),
        "blas": blas(),
        "numba": numba_info(),
        "python": sys.version.split()[0],
        "libraries": library_versions(),
        "git": git_state(),
    }
    return {k: v for k, v in info.items() if v is not None}


def sanitize_id(text: str) -> str:
    """Lower-case letters, digits, '-' and '_' only, so the id is a safe folder name."""
    cleaned = re.sub(r"[^a-z0-9_-]+", "-", text.strip().lower()).strip("-_")
    return cleaned[:64]


def machine_id(name: str | None = None) -> str:
    """The user's ``name`` (made folder-safe), else hostname + hash of stable hardware facts."""
    if name and name.strip():
        cleaned = sanitize_id(name)
        if cleaned:
            if cleaned != name:
                log.warning("machine id %r used as %r (folder-safe)", name, cleaned)
            return cleaned
        log.warning("machine id %r has no usable characters; ignored", name)
    memory = memory_bytes()
    gpu = gpus()
    facts = [
        cpu_model() or "",
        str(os.cpu_count() or ""),
        # Rounded: MemTotal moves by a few MB between kernels.
        str(round(memory / 2**30)) if memory else "",
        ",".join(d["name"] for d in (gpu or {}).get("devices", [])),
    ]
    digest = hashlib.sha256("|".join(facts).encode()).hexdigest()[:8]
    host = sanitize_id(_safe("hostname", socket.gethostname) or "") or "machine"
    return f"{host[:40]}-{digest}"


def code_version() -> dict[str, Any]:
    """The code that runs: the package version, and the git commit and dirty flag when this is
    a git checkout (as ``harness.record.CodeVersion`` stores them)."""
    try:
        version = importlib.metadata.version("hashsparse-energy")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown (not installed)"
    git = git_state() or {}
    return {"package_version": version, "commit": git.get("commit"), "dirty": git.get("dirty")}


def commit_is_older(commit: str | None, than: str, repo: Path = REPO_ROOT) -> bool:
    """True when ``commit`` is a strict ancestor of ``than``: the cells ``--rerun-older-than``
    reruns. A commit this checkout does not know (another branch, a newer clone) or none at
    all cannot be placed, so it is kept (``--force`` reruns everything). ``than`` must name a
    commit here."""
    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                              timeout=10, check=False)

    resolved = git("rev-parse", "--verify", "--quiet", f"{than}^{{commit}}").stdout.strip()
    if not resolved:
        from harness.errors import UserError

        raise UserError(f"--rerun-older-than {than!r} is not a commit of {repo}; name a commit "
                        "(e.g. HEAD~3 or a hash from `git log`)")
    if commit is None or git("cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        return False
    if commit == resolved:
        return False
    return git("merge-base", "--is-ancestor", commit, resolved).returncode == 0
