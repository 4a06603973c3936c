"""`python -m harness datasets` lists every workload with a yes/no and the reason."""

from __future__ import annotations

from harness import datasets
from harness.__main__ import main


def test_datasets_command_lists_every_name_with_its_reason(capsys, tmp_path):
    assert main(["datasets", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    by_name = {line.split()[0]: line.split()[1] for line in out}
    assert set(by_name) == set(datasets.names())
    assert by_name["digits"] == "yes" and by_name["convex"] == "yes"
    assert by_name["smallnorb"] == "no"  # nothing supplied in an empty folder
