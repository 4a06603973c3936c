"""MNIST and Fashion-MNIST files identified by their published checksums.

The checksum tables are module-level so these tests can put the checksums of small files
they write in place of the real ones: a small folder set up to match "the other" dataset
stands in for the real 60 MB files. One test checks Debian's real Fashion-MNIST files.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest
from _idx_files import NAMES, content_sha256, gz_md5, write_set

from harness import datasets
from harness.datasets import checksums
from harness.errors import DataError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
ROLES = tuple(NAMES)


@pytest.fixture
def tables(monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, dict[str, str]]]:
    """Empty checksum tables the test fills in (the real ones are put back afterwards)."""
    gz: dict[str, dict[str, str]] = {"mnist": {}, "fashion-mnist": {}}
    content: dict[str, dict[str, str]] = {"mnist": {}, "fashion-mnist": {}}
    monkeypatch.setattr(checksums, "GZ_MD5", gz)
    monkeypatch.setattr(checksums, "CONTENT_SHA256", content)
    return {"gz": gz, "content": content}


def test_mnist_files_are_refused_as_fashion_mnist(tmp_path: Path, tables) -> None:
    write_set(tmp_path)
    tables["content"]["mnist"].update(content_sha256(tmp_path))  # these files "are" MNIST
    with pytest.raises(DataError) as err:
        datasets.load("fashion-mnist", "train", data_dir=tmp_path)
    msg = str(err.value)
    assert f"{tmp_path} holds MNIST's files, not Fashion-MNIST's" in msg
    assert "point --data-dir" in msg and "\n" not in msg
    # As what they are, they load and are recorded as verified.
    X, _ = datasets.load("mnist", "train", data_dir=tmp_path)
    assert X.shape == (30, 784)
    assert datasets.provenance("mnist", tmp_path)["verified"] is True


def test_fashion_files_are_refused_as_mnist_and_listed_so(tmp_path: Path, tables, capsys) -> None:
    from harness.cli import main

    write_set(tmp_path, gz=True)
    tables["gz"]["fashion-mnist"].update(gz_md5(tmp_path))  # by the published .gz MD5s
    with pytest.raises(DataError, match="holds Fashion-MNIST's files, not MNIST's"):
        datasets.load("mnist", "test", data_dir=tmp_path)
    assert main(["datasets", "--data-dir", str(tmp_path)]) == 0
    rows = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines()}
    assert rows["mnist"].split()[1] == "no" and "Fashion-MNIST's files" in rows["mnist"]
    assert rows["fashion-mnist"].split()[1] == "yes" and "verified" in rows["fashion-mnist"]
    assert datasets.provenance("fashion-mnist", tmp_path)["verified"] is True


def test_recompressed_and_uncompressed_files_verified_by_content(tmp_path: Path, tables) -> None:
    write_set(tmp_path / "plain")
    tables["content"]["fashion-mnist"].update(content_sha256(tmp_path / "plain"))
    # The same contents gzipped differently (level 1, another mtime): no .gz MD5 matches.
    (tmp_path / "gz").mkdir()
    for name in NAMES.values():
        blob = (tmp_path / "plain" / name).read_bytes()
        (tmp_path / "gz" / f"{name}.gz").write_bytes(gzip.compress(blob, 1, mtime=12345))
    for folder in ("plain", "gz"):
        prov = datasets.provenance("fashion-mnist", tmp_path / folder)
        assert prov["verified"] is True, prov
        files = prov["files"]
        assert set(files) == set(ROLES)
        assert files["train_images"]["sha256"] == tables["content"]["fashion-mnist"]["train_images"]


def test_unknown_checksums_warn_and_are_labelled_unverified(
    tmp_path: Path, tables, caplog: pytest.LogCaptureFixture
) -> None:
    write_set(tmp_path, seed=5)  # a user's own subset: no table knows it
    with caplog.at_level(logging.WARNING, logger="harness.datasets"):
        X, _ = datasets.load("fashion-mnist", "train", data_dir=tmp_path)
    assert X.shape == (30, 784)
    warned = [r.getMessage() for r in caplog.records]
    assert any("no published Fashion-MNIST checksum matches" in m for m in warned), warned
    verified = datasets.provenance("fashion-mnist", tmp_path)["verified"]
    assert isinstance(verified, str) and verified.startswith("unverified: ")
    assert "train-images-idx3-ubyte" in verified


def test_partly_known_set_is_unverified_naming_the_unknown_file(tmp_path: Path, tables) -> None:
    write_set(tmp_path)
    known = content_sha256(tmp_path)
    del known["test_images"]
    tables["content"]["fashion-mnist"].update(known)
    verified = datasets.provenance("fashion-mnist", tmp_path)["verified"]
    assert verified.startswith("unverified: ") and "t10k-images-idx3-ubyte" in verified
    assert "train-images" not in verified


def test_files_under_each_others_names_are_refused(tmp_path: Path, tables) -> None:
    write_set(tmp_path)
    sums = content_sha256(tmp_path)
    # The published train-images checksum is that of this folder's test images: swapped.
    tables["content"]["fashion-mnist"].update(
        {**sums, "train_images": sums["test_images"], "test_images": sums["train_images"]}
    )
    with pytest.raises(DataError) as err:
        datasets.load("fashion-mnist", "train", data_dir=tmp_path)
    msg = str(err.value)
    assert "t10k-images-idx3-ubyte" in msg and "train-images-idx3-ubyte" in msg
    assert "rename" in msg


def test_verification_is_cached_but_sees_a_changed_file(tmp_path: Path, tables) -> None:
    write_set(tmp_path)
    tables["content"]["mnist"].update(content_sha256(tmp_path))
    assert datasets.provenance("mnist", tmp_path)["verified"] is True
    write_set(tmp_path, seed=9)  # other contents under the same names
    verified = datasets.provenance("mnist", tmp_path)["verified"]
    assert isinstance(verified, str) and verified.startswith("unverified")


def test_provenance_of_other_sets(tmp_path: Path, tables) -> None:
    assert datasets.provenance("digits")["verified"].startswith("unverified: ")
    conv = datasets.provenance("convex")
    assert conv["dataset"] == "convex" and conv["verified"].startswith("unverified: generated")
    # An alias is recorded under the set it resolves to, with that set's verification.
    write_set(tmp_path)
    tables["content"]["mnist"].update(content_sha256(tmp_path))
    auto = datasets.provenance("mnist-auto", tmp_path)
    assert auto["dataset"] == "mnist" and auto["verified"] is True


def test_published_tables_hold_every_file_once() -> None:
    """The real tables: four files per set, well-formed, and no value in two places
    (a duplicate would make identification ambiguous)."""
    seen: list[str] = []
    for table, length in ((checksums.GZ_MD5, 32), (checksums.CONTENT_SHA256, 64)):
        assert set(table) == {"mnist", "fashion-mnist"}
        for sums in table.values():
            assert set(sums) == set(ROLES)
            for value in sums.values():
                assert len(value) == length and int(value, 16) >= 0
                seen.append(value)
    assert len(seen) == len(set(seen))


@pytest.mark.skipif(
    not all((FASHION_DIR / f"{n}.gz").is_file() for n in NAMES.values()),
    reason="Debian's dataset-fashion-mnist is not installed "
    "(as root: apt-get install dataset-fashion-mnist)",
)
def test_real_debian_fashion_mnist_is_verified_and_refused_as_mnist(tmp_path: Path) -> None:
    # Debian re-compressed the files (their .gz MD5s are not the published ones), so this
    # goes through the contents' SHA-256s.
    md5 = {
        r: hashlib.md5((FASHION_DIR / f"{n}.gz").read_bytes()).hexdigest() for r, n in NAMES.items()
    }
    assert md5 != checksums.GZ_MD5["fashion-mnist"]
    prov = datasets.provenance("fashion-mnist", FASHION_DIR)
    assert prov["verified"] is True, prov
    assert {r: f["sha256"] for r, f in prov["files"].items()} == checksums.CONTENT_SHA256[
        "fashion-mnist"
    ]
    # The same files offered as MNIST are refused, by name.
    for name in NAMES.values():
        (tmp_path / f"{name}.gz").symlink_to(FASHION_DIR / f"{name}.gz")
    with pytest.raises(DataError, match="holds Fashion-MNIST's files, not MNIST's"):
        datasets.load("mnist", "test", data_dir=tmp_path)
    assert np.array_equal(
        datasets.load("fashion-mnist", "test", data_dir=tmp_path)[1],
        datasets.load("fashion-mnist", "test", data_dir=FASHION_DIR)[1],
    )
