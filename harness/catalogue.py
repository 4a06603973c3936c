"""The one model catalogue: how every model name is labelled, coloured and ordered, and what
kind of network it is. Experiments read which models are swept over active fractions; reports
read labels, colours, order and which networks are references. A name that is not here still
gets a style (and a warning), so no result is ever left out of a figure for want of an entry.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelStyle:
    name: str
    label: str
    colour: str
    order: int  # draw and legend order; unknown names come after every known one
    reference: bool = False  # a network with every node, drawn as a horizontal reference line
    line_style: str = "-"  # how a reference line is drawn
    sparse: bool = False  # swept over active fractions
    variant_of: str | None = None  # the registered model a named variant runs (VARIANTS)
    known: bool = True  # False for the default style of a name not in the catalogue


_ENTRIES = (
    ModelStyle("dense", "standard (dense)", "#333333", 0, reference=True, line_style="--"),
    ModelStyle(
        "dense-minibatch",
        "standard, mini-batch 256",
        "#8c8c8c",
        1,
        reference=True,
        line_style=":",
        variant_of="dense",
    ),
    ModelStyle("torch-dense", "PyTorch dense", "#17becf", 2, reference=True, line_style="-."),
    ModelStyle("lsh", "LSH", "#d62728", 10, sparse=True),
    ModelStyle(
        "lsh-paper", "LSH, released code's settings", "#ff7f0e", 11, sparse=True, variant_of="lsh"
    ),
    ModelStyle(
        "lsh-rowwise", "LSH, row-wise Adagrad", "#e377c2", 12, sparse=True, variant_of="lsh"
    ),
    ModelStyle("dropout", "vanilla dropout", "#1f77b4", 20, sparse=True),
    ModelStyle("standout", "adaptive dropout", "#2ca02c", 21, sparse=True),
    ModelStyle("wta", "winner-take-all", "#9467bd", 22, sparse=True),
)
CATALOGUE: dict[str, ModelStyle] = {e.name: e for e in _ENTRIES}

# Colours used by no catalogue entry; an unknown name picks one by a stable hash of itself, so
# it keeps its colour across figures and runs.
_FALLBACK_COLOURS = ("#8c564b", "#bcbd22", "#1b9e77", "#e6ab02", "#7570b3", "#a6761d")
_UNKNOWN_ORDER = 10_000
_warned: set[str] = set()


def style(name: str) -> ModelStyle:
    """The catalogue entry, or a default style for a name it does not know (warned once)."""
    entry = CATALOGUE.get(name)
    if entry is not None:
        return entry
    if name not in _warned:
        _warned.add(name)
        log.warning("model %r is not in harness/catalogue.py; drawn with a default style", name)
    colour = _FALLBACK_COLOURS[zlib.crc32(name.encode()) % len(_FALLBACK_COLOURS)]
    return ModelStyle(name, name, colour, _UNKNOWN_ORDER, known=False)


def ordered(names: Iterable[str]) -> list[str]:
    """Distinct names in catalogue order; unknown names last, alphabetically."""
    return sorted(set(names), key=lambda n: (style(n).order, n))


def references() -> tuple[str, ...]:
    """The networks with every node, in catalogue order."""
    return tuple(e.name for e in _ENTRIES if e.reference)


def sparse_models() -> tuple[str, ...]:
    """The registered (not variant) models swept over active fractions, in catalogue order."""
    return tuple(
        e.name for e in sorted(_ENTRIES, key=lambda e: e.order) if e.sparse and e.variant_of is None
    )
