"""argparse types the benchmarks share: a bad count or list is argparse's one-line error
(naming the option), not a traceback, a NaN or a division by zero later on."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def at_least(low: int) -> Callable[[str], int]:
    """An integer >= low."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"{text!r}: must be at least {low}")
        return v
    return parse


def int_list(low: int) -> Callable[[str], list[int]]:
    """'1,2,4' (or '1 2 4') -> [1, 2, 4], each >= low, at least one."""
    one = at_least(low)

    def parse(text: str) -> list[int]:
        out = [one(v) for v in text.replace(",", " ").split()]
        if not out:
            raise argparse.ArgumentTypeError(f"{text!r} is an empty list, e.g. 1,2")
        return out
    return parse
