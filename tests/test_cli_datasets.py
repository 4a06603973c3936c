"""`python -m harness datasets` lists every workload with a yes/no and the reason: it checks
the files' headers, sizes and labels, and says what is wrong and the fix."""

from __future__ import annotations

import pytest
from _idx_files import corrupt, write_set

from harness import datasets
from harness.cli import main


def test_datasets_command_lists_every_name_with_its_reason(capsys, tmp_path):
    assert main(["datasets", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    by_name = {line.split()[0]: line.split()[1] for line in out}
    assert set(by_name) == set(datasets.names())
    assert by_name["digits"] == "yes" and by_name["convex"] == "yes"
    assert by_name["smallnorb"] == "no"  # nothing supplied in an empty folder


# -- the listing checks the files, not just their presence ----------------------------------
MNIST_FIX = "re-download it from http://yann.lecun.com/exdb/mnist/"


def _listing(capsys, data_dir) -> dict[str, tuple[str, str]]:
    assert main(["datasets", "--data-dir", str(data_dir)]) == 0
    rows = {}
    for line in capsys.readouterr().out.splitlines():
        name, flag, detail = line.split(None, 2)
        rows[name] = (flag, detail)
    return rows


@pytest.mark.parametrize(
    ("what", "fault", "fix"),
    [
        ("truncated", "truncated", MNIST_FIX),
        ("magic", "wrong magic number 0x00000802, expected 0x00000803", MNIST_FIX),
        ("count", "30 images but", "re-download both files from http://yann.lecun.com"),
        ("label10", "label 10 at position 7 is out of range 0..9", MNIST_FIX),
        ("extra", "unexpected bytes", MNIST_FIX),
        ("dims", "wrong dimensions: images are 27x28", MNIST_FIX),
        ("gzip_truncated", "corrupt or truncated gzip", MNIST_FIX),
        ("gzip_garbage", "corrupt or truncated gzip", MNIST_FIX),
    ],
)
def test_listing_reports_each_fault_with_its_fix(capsys, tmp_path, what, fault, fix):
    write_set(tmp_path)
    bad = corrupt(tmp_path, what)
    rows = _listing(capsys, tmp_path)
    flag, detail = rows["mnist"]
    assert flag == "no", detail
    assert str(bad) in detail and fault in detail and fix in detail
    # Everything built on MNIST says so too, rather than "yes".
    assert rows["mnist8m"][0] == "no" and rows["mnist-auto"][0] == "no"


def test_listing_says_yes_but_unverified_for_intact_unknown_files(capsys, tmp_path):
    write_set(tmp_path)
    flag, detail = _listing(capsys, tmp_path)["mnist"]
    assert flag == "yes" and str(tmp_path) in detail and "unverified" in detail


def test_listing_reports_a_data_dir_that_is_a_file(capsys, tmp_path):
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    flag, detail = _listing(capsys, path)["mnist"]
    assert flag == "no" and "is a file, not a folder" in detail and "--data-dir" in detail
