#!/usr/bin/env python3
"""Regenerate everything: run the paper's experiments for a profile, then write the report.

    python run_all.py --profile smoke      # about a minute: tiny digits, every model
    python run_all.py --profile quick      # minutes: real digits and the generated sets
    python run_all.py --profile paper      # the paper's protocol in full (hours)
    python run_all.py --profile paper --plan   # what it would run and how long here; no runs

This is ``hashsparse run`` (harness/cli.py), with the same options: ``--help`` lists them.
Results go to ``results/<machine>/<experiment>/``; the report to ``report/index.html``.
"""

from __future__ import annotations

import sys

from harness import cli


def main(argv: list[str] | None = None) -> int:
    return cli.main(["run", *(sys.argv[1:] if argv is None else argv)], prog="run_all.py")


if __name__ == "__main__":
    sys.exit(main())
