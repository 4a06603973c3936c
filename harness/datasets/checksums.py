"""Published checksums of the MNIST and Fashion-MNIST files: which set a folder really holds.

Two tables, by dataset and file role (``train_images``, ``train_labels``, ``test_images``,
``test_labels``):

* ``GZ_MD5``: MD5 of the published ``.gz`` files, as torchvision lists them
  (``torchvision/datasets/mnist.py``, ``MNIST.resources`` and ``FashionMNIST.resources``);
  Fashion-MNIST's own README lists the same four values.
* ``CONTENT_SHA256``: SHA-256 of the decompressed IDX bytes, so plain files and re-compressed
  ``.gz`` files are recognised too. Debian's ``dataset-fashion-mnist`` is such a case: its
  ``.gz`` files are re-compressed (their MD5s differ from the published ones) but their
  contents hash to the Fashion-MNIST values below, which were computed from those files and
  agree with the values published in several public checksum tables (whose MD5s of the
  decompressed files also match). The MNIST values are as published in several independent
  public checksum tables (scripts and Makefiles that gunzip the files and check them with
  ``sha256sum``); no copy of MNIST was at hand to recompute them.

Both are module-level so tests can put the checksums of small files in their place.
"""

from __future__ import annotations

import hashlib

ROLES = ("train_images", "train_labels", "test_images", "test_labels")
TITLE = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}

GZ_MD5: dict[str, dict[str, str]] = {
    "mnist": {
        "train_images": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train_labels": "d53e105ee54ea40749a09fcbcd1e9432",
        "test_images": "9fb629c4189551a2d022fa330f9573f3",
        "test_labels": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train_images": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train_labels": "25c81989df183df01b3e8a0aad5dffbe",
        "test_images": "bef4ecab320f06d8554ea6380940ec79",
        "test_labels": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

CONTENT_SHA256: dict[str, dict[str, str]] = {
    "mnist": {
        "train_images": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train_labels": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "test_images": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "test_labels": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion-mnist": {
        "train_images": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train_labels": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "test_images": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "test_labels": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}


def digests(raw: bytes, content: bytes) -> dict[str, str]:
    """{'sha256': of the content, 'gz_md5': of the stored bytes when they are gzip}."""
    out = {"sha256": hashlib.sha256(content).hexdigest()}
    if raw[:2] == b"\x1f\x8b":
        out["gz_md5"] = hashlib.md5(raw).hexdigest()
    return out


def identify(sums: dict[str, str]) -> tuple[str, str] | None:
    """(dataset, role) whose published checksum these digests match, or None."""
    for table, kind in ((CONTENT_SHA256, "sha256"), (GZ_MD5, "gz_md5")):
        value = sums.get(kind)
        for dataset, roles in table.items():
            for role, published in roles.items():
                if value == published:
                    return dataset, role
    return None
