"""What a sweep will run and how long it should take on this machine, before it starts.

>>> from harness import plan
>>> summary = plan.summarise(cells, store=store)        # counts by facet, sizes, stored cells
>>> est = plan.estimate(cells, summary, store=store)    # measured per-example rates
>>> print(plan.format_plan(summary, est))

Estimates come from measurements on this machine, never from constants:

- A cell whose finished record is already stored costs 0 s (the runner skips it).
- Otherwise its rates come from a stored record of this machine with the same *cost key*, if
  one exists (its epoch and inference windows at the real size), else from a short
  calibration.
- The cost key is the registered model and its full config (as the runner builds it: the
  data's input and class counts, then the cell's settings, normalised through the model's
  config class) without the seed. Cells that differ only by seed, by epochs, or by a dataset of
  the same input and class count share one key, so they share one calibration.
- Calibration builds the model through ``models.build`` as ``runner.run_cell`` does, under the
  same thread limits, calls ``warmup()``, trains one short epoch (which includes what a cell's
  first epoch does once: building hash tables, starting thread pools), then times a second
  short epoch sized to take about ``target_s``, and times ``predict_scores`` on the sample.
  Time the model reports as rebuilding its hash tables (``extra["rebuild_s"]``) is taken out
  of the per-example rate and kept as a cost per epoch: the released code's schedule rebuilds
  ten times an epoch whatever the epoch's size. Rebuilds on schedules counted in examples
  (every 1,000 examples, growing) seldom fall inside the short sample and are left out: a few
  percent of an LSH cell's time.

A cell's expected seconds are::

    overhead + epochs * (n_train * train_s + epoch_s + n_test * infer_s) + n_test * infer_s

with ``overhead`` = model build + warm-up + the first epoch's excess over the steady rate +
``describe()`` (the facts stored with each record, which may measure hash recall); the
``n_test`` term per epoch is the runner scoring the test split after each epoch, and the last
term its final inference window. Not included: loading or first-time generation of datasets,
the idle-power baseline, and writing records (each a few seconds per sweep).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
import statistics
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

import models
from harness import datasets
from harness.datasets import mnist, norb, registry
from harness.errors import DataError
from harness.experiments import Cell
from harness.store import ResultStore, State, iter_records

log = logging.getLogger(__name__)

FACETS = (
    "experiment",
    "dataset",
    "model",
    "hidden",
    "fraction",
    "seed",
    "threads",
    "epochs",
    "train/test",
)


# -- what will run ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CellShape:
    """The data a cell trains on, as the runner will load it."""

    dataset: str  # the dataset actually loaded (aliases such as "mnist-auto" resolved)
    n_train: int
    n_test: int
    n_inputs: int
    n_classes: int


@dataclass
class Summary:
    cells: list[Cell]
    shapes: list[CellShape]  # one per cell, same order
    stored: list[bool]  # one per cell: a finished record exists (and --force is not set)
    counts: dict[str, Counter[str]]  # facet (see FACETS) -> value -> number of cells
    unavailable: dict[str, str] = field(default_factory=dict)  # dataset -> why it cannot load

    @property
    def n_cells(self) -> int:
        return len(self.cells)

    @property
    def n_stored(self) -> int:
        return sum(self.stored)


class _Sizes:
    """Full split sizes of each dataset, found once per summary, without loading the data
    where the size is known from how the set is built."""

    def __init__(self, data_dir: Path | None) -> None:
        self.data_dir = data_dir
        self._sizes: dict[str, tuple[int, int]] = {}
        self.unavailable: dict[str, str] = {}

    def full(self, real: str) -> tuple[int, int]:
        if real not in self._sizes:
            self._sizes[real] = self._find(real)
        return self._sizes[real]

    def _find(self, real: str) -> tuple[int, int]:
        if real in registry.SPLIT_SIZES:  # generated at these sizes
            s = registry.SPLIT_SIZES[real]
            return s["train"], s["test"]
        if real == "smallnorb":
            return registry.NORB_TRAIN_SIZE, norb.PAPER_TEST
        if real == "mnist-5k":
            return mnist.MNIST5K_ROWS - mnist.MNIST5K_TEST, mnist.MNIST5K_TEST
        if real.startswith("mnist8m"):
            copies = int(datasets.info(real)["method"]["copies"])
            train, test = self.full(datasets.resolve_mnist(self.data_dir))
            return train * (copies + 1), test
        try:  # digits, mnist, fashion-mnist: small enough to load once
            n = [len(datasets.load(real, s, data_dir=self.data_dir)[1]) for s in ("train", "test")]
        except DataError as exc:
            self.unavailable[real] = str(exc)
            paper = datasets.info(real)["paper_sizes"]
            return int(paper["train"]), int(paper["test"])
        return n[0], n[1]


def _shape(cell: Cell, sizes: _Sizes) -> CellShape:
    real = datasets.canonical(cell.dataset, sizes.data_dir)
    facts = datasets.info(real)
    n_train, n_test = cell.n_train, cell.n_test
    if n_train is None or n_test is None:  # the full split
        full_train, full_test = sizes.full(real)
        n_train = full_train if n_train is None else n_train
        n_test = full_test if n_test is None else n_test
    return CellShape(real, n_train, n_test, int(facts["n_features"]), int(facts["n_classes"]))


def _facets(cell: Cell, shape: CellShape) -> dict[str, str]:
    s = cell.settings
    dataset = cell.dataset if shape.dataset == cell.dataset else f"{cell.dataset}={shape.dataset}"
    return {
        "experiment": cell.experiment,
        "dataset": dataset,
        "model": cell.name,
        "hidden": "x".join(str(h) for h in s.get("hidden", ())),
        "fraction": f"{float(s.get('active_fraction', 1.0)):g}",
        "seed": str(s.get("seed", 0)),
        "threads": str(s.get("threads", 1)),
        "epochs": str(cell.epochs),
        "train/test": f"{shape.n_train}/{shape.n_test}",
    }


def summarise(
    cells: Sequence[Cell],
    *,
    store: ResultStore | None = None,
    force: bool = False,
    data_dir: Path | None = None,
) -> Summary:
    """Counts of cells by facet, each cell's data sizes, and which cells are already stored."""
    sizes = _Sizes(data_dir)
    shapes = [_shape(c, sizes) for c in cells]
    stored = [
        store is not None and not force and store.state(c.experiment, c.cell_id)[0] is State.OK
        for c in cells
    ]
    counts: dict[str, Counter[str]] = {f: Counter() for f in FACETS}
    for cell, shape in zip(cells, shapes, strict=True):
        for facet, value in _facets(cell, shape).items():
            counts[facet][value] += 1
    unavailable = dict(sizes.unavailable)
    known = {a.name: a for a in datasets.available(data_dir)}
    for name in dict.fromkeys(c.dataset for c in cells):
        a = known.get(name)
        if a is not None and not a.available:
            unavailable[datasets.canonical(name, data_dir)] = a.detail
    return Summary(list(cells), shapes, stored, counts, unavailable)


# -- how long it will take -------------------------------------------------------------------
@dataclass(frozen=True)
class Rate:
    """Measured costs of one cost key on this machine."""

    train_s: float  # seconds per training example
    infer_s: float  # seconds per inference example
    epoch_s: float = 0.0  # seconds per epoch whatever its size (hash-table rebuilds)
    overhead_s: float = 0.0  # seconds per cell: build, warm-up, first-epoch excess
    source: str = "calibrated"  # calibrated | stored record | borrowed ... | random data


@dataclass(frozen=True)
class Probe:
    """One calibration to make: a cost key and the first cell that needs it."""

    key: str
    cell: Cell
    shape: CellShape


Calibrate = Callable[[Sequence[Probe]], Mapping[str, Rate]]


@dataclass(frozen=True)
class CellEstimate:
    cell: Cell
    shape: CellShape
    seconds: float | None  # None when no rate could be found for it
    source: str  # "already stored", or the rate's source


@dataclass
class Estimate:
    cells: list[CellEstimate]
    rates: dict[str, Rate]
    calibration_s: float
    cpu_count: int
    n_calibrated: int = 0  # cost keys measured by the calibration (not from stored records)
    process_s: float = 0.0  # per cell to run: its own process starting, loading, warming up

    @property
    def total_s(self) -> float:
        return sum(c.seconds or 0.0 for c in self.cells)

    @property
    def n_stored(self) -> int:
        return sum(c.source == "already stored" for c in self.cells)

    @property
    def n_unknown(self) -> int:
        return sum(c.seconds is None for c in self.cells)


def cost_key(model: str, settings: Mapping[str, Any], n_inputs: int, n_classes: int) -> str:
    """The model and its full config (normalised through its config class) without the seed:
    cells with equal keys cost the same per example."""
    raw = {"n_inputs": n_inputs, "n_classes": n_classes, **settings}
    try:
        config: dict[str, Any] = models.config_class(model).from_dict(raw).to_dict()
    except (ValueError, TypeError):  # a bad setting fails the cell; key it as it stands
        config = dict(raw)
    config.pop("seed", None)
    return f"{model} {json.dumps(config, sort_keys=True, default=str)}"


def cell_seconds(rate: Rate, cell: Cell, shape: CellShape) -> float:
    """Expected wall seconds of one cell (see the module docstring)."""
    per_epoch = shape.n_train * rate.train_s + rate.epoch_s + shape.n_test * rate.infer_s
    return rate.overhead_s + cell.epochs * per_epoch + shape.n_test * rate.infer_s


def stored_rates(store: ResultStore) -> dict[str, Rate]:
    """Rates from this machine's finished records, by cost key (the newest record wins):
    the median epoch after the first per training example, the inference window per test
    example, and the first epoch's excess as the overhead."""
    found: dict[str, tuple[float, Rate]] = {}
    for machine, _, record in iter_records(store.root):
        if machine != store.machine_id or record.status != "ok" or record.inference is None:
            continue
        config = {k: v for k, v in record.model.config.items() if k != "seed"}
        key = f"{record.model.name} {json.dumps(config, sort_keys=True, default=str)}"
        walls = [e.wall_s for e in record.epochs]
        steady = statistics.median(walls[1:] or walls)
        inference = record.inference
        rate = Rate(
            train_s=steady / max(record.dataset.n_train or 1, 1),
            infer_s=inference.wall_s / max(inference.n_examples, 1),
            overhead_s=max(0.0, walls[0] - steady),
            source="stored record",
        )
        created = record.created_unix_s
        if key not in found or created > found[key][0]:
            found[key] = (created, rate)
    return {k: r for k, (_, r) in found.items()}


def estimate(
    cells: Sequence[Cell],
    summary: Summary | None = None,
    *,
    store: ResultStore | None = None,
    force: bool = False,
    data_dir: Path | None = None,
    calibrate: Calibrate | None = None,
    process_s: float | None = None,
) -> Estimate:
    """Expected seconds of every cell and in total. ``calibrate`` measures the rates of the
    cost keys that neither a finished cell nor a stored record covers (default:
    ``calibrate_rates``); tests replace it with a fixed table. ``process_s``, the fixed cost
    of a cell's own process, is measured on the first cell to run (``process_seconds``)
    unless given, or unless ``calibrate`` is replaced (then 0)."""
    if summary is None:
        summary = summarise(cells, store=store, force=force, data_dir=data_dir)
    measure_process = process_s is None and calibrate is None
    if calibrate is None:
        calibrate = functools.partial(calibrate_rates, data_dir=data_dir)
    keys = [
        cost_key(c.model, c.settings, s.n_inputs, s.n_classes)
        for c, s in zip(summary.cells, summary.shapes, strict=True)
    ]
    todo = [i for i, done in enumerate(summary.stored) if not done]
    rates: dict[str, Rate] = {}
    if store is not None and todo:
        known = stored_rates(store)
        rates.update({keys[i]: known[keys[i]] for i in todo if keys[i] in known})
    probes: dict[str, Probe] = {}
    for i in todo:
        if keys[i] not in rates and keys[i] not in probes:
            probes[keys[i]] = Probe(keys[i], summary.cells[i], summary.shapes[i])
    started = time.perf_counter()
    measured = dict(calibrate(list(probes.values()))) if probes else {}
    if measure_process:
        process_s = process_seconds(summary.cells[todo[0]], data_dir) if todo else 0.0
    calibration_s = time.perf_counter() - started
    rates.update(measured)
    out = []
    fixed = process_s or 0.0
    for i, (cell, shape) in enumerate(zip(summary.cells, summary.shapes, strict=True)):
        if summary.stored[i]:
            out.append(CellEstimate(cell, shape, 0.0, "already stored"))
        elif keys[i] in rates:
            rate = rates[keys[i]]
            seconds = fixed + cell_seconds(rate, cell, shape)
            out.append(CellEstimate(cell, shape, seconds, rate.source))
        else:
            out.append(CellEstimate(cell, shape, None, "no estimate"))
    return Estimate(out, rates, calibration_s, os.cpu_count() or 1, len(measured), fixed)


def process_seconds(cell: Cell, data_dir: Path | None = None) -> float:
    """Wall seconds of a one-epoch, few-example copy of ``cell`` run as the sweep runs it, in
    its own process: what every cell pays beyond its training and inference (the process
    start, its data, the model's warm-up from numba's cache, meters, the record)."""
    from harness.cell import MeterOptions, task_for
    from harness.isolate import run_isolated

    tiny = dataclasses.replace(cell, epochs=1, n_train=min(cell.n_train or 64, 64),
                               n_test=min(cell.n_test or 32, 32))
    task = task_for(tiny, MeterOptions(include=["cpu-estimate"]), {}, data_dir)
    started = time.perf_counter()
    outcome = run_isolated(task, timeout_s=300)
    elapsed = time.perf_counter() - started
    if outcome.measured is None:
        return 0.0  # the sweep will say why; the estimate just leaves it out
    return max(0.0, elapsed - sum(e.wall_s for e in outcome.measured.epochs))


# -- calibration -----------------------------------------------------------------------------
def calibrate_rates(
    probes: Sequence[Probe],
    *,
    data_dir: Path | None = None,
    sample: int = 512,
    warm: int = 64,
    target_s: float = 0.25,
    budget_s: float = 120.0,
) -> dict[str, Rate]:
    """Measure each probe's rates (see ``measure_rate``). Each probe trains on at most
    ``sample`` examples of its own dataset (random data of its shape where the dataset cannot
    be loaded). Once ``budget_s`` has passed (and one probe is measured), the probes left
    borrow the rate of the most similar measured one (same model or variant first, then same
    layer widths, input and class count, threads, nearest active fraction)."""
    started = time.perf_counter()
    data: dict[tuple[str, int], tuple[np.ndarray, np.ndarray, str]] = {}
    rates: dict[str, Rate] = {}
    left: list[Probe] = []
    for probe in probes:
        if rates and time.perf_counter() - started > budget_s:
            left.append(probe)
            continue
        batch = int(probe.cell.settings.get("batch_size", 1))
        n = min(max(sample, 2 * batch), probe.shape.n_train)
        if (probe.shape.dataset, n) not in data:
            data[probe.shape.dataset, n] = _sample(probe.shape, n, data_dir)
        X, y, source = data[probe.shape.dataset, n]
        try:
            rate = measure_rate(probe, X, y, warm=warm, target_s=target_s)
        except Exception as exc:  # a cell that cannot build fails in the sweep too
            log.warning(
                "calibration of %s failed: %s: %s", probe.cell.cell_id, type(exc).__name__, exc
            )
            continue
        rates[probe.key] = dataclasses.replace(rate, source=source)
    measured = [p for p in probes if p.key in rates]
    for probe in left:
        twin = min(measured, key=lambda p: _distance(probe, p), default=None)
        if twin is not None:
            rates[probe.key] = dataclasses.replace(
                rates[twin.key], source=f"borrowed (calibration past {budget_s:g} s)"
            )
    if left:
        log.warning(
            "calibration passed %g s; %d of %d settings borrowed a similar one's rate",
            budget_s,
            len(left),
            len(probes),
        )
    log.info("calibrated %d settings in %.1f s", len(measured), time.perf_counter() - started)
    return rates


def _sample(shape: CellShape, n: int, data_dir: Path | None) -> tuple[np.ndarray, np.ndarray, str]:
    try:
        X, y = datasets.load(shape.dataset, "train", n=n, data_dir=data_dir, seed=0)
        return X, y, "calibrated"
    except DataError as exc:
        log.warning(
            "%s cannot be loaded (%s); calibrating on random data of its shape", shape.dataset, exc
        )
    rng = np.random.default_rng(0)
    lo, hi = datasets.info(shape.dataset)["value_range"]
    X = rng.uniform(lo, hi, size=(n, shape.n_inputs)).astype(np.float32)
    return X, np.arange(n, dtype=np.int64) % shape.n_classes, "calibrated on random data"


def _distance(a: Probe, b: Probe) -> tuple[int, int, int, int, float]:
    sa, sb = a.cell.settings, b.cell.settings
    return (
        a.cell.name != b.cell.name,
        list(sa.get("hidden", ())) != list(sb.get("hidden", ())),
        (a.shape.n_inputs, a.shape.n_classes) != (b.shape.n_inputs, b.shape.n_classes),
        sa.get("threads", 1) != sb.get("threads", 1),
        abs(float(sa.get("active_fraction", 1.0)) - float(sb.get("active_fraction", 1.0))),
    )


def measure_rate(
    probe: Probe, X: np.ndarray, y: np.ndarray, *, warm: int = 64, target_s: float = 0.25
) -> Rate:
    """Build, warm up and train the probe's model as the runner would, on (X, y)."""
    cell = probe.cell
    config = {"n_inputs": probe.shape.n_inputs, "n_classes": probe.shape.n_classes}
    config.update(cell.settings)
    batch = int(cell.settings.get("batch_size", 1))
    t0 = time.perf_counter()
    model = models.build(cell.model, config)
    build_s = time.perf_counter() - t0
    n = len(y)
    with threadpool_limits(limits=model.config.threads):
        model.warmup()  # the first of a kind may compile; a cell's process loads it cached
        t0 = time.perf_counter()
        model.warmup()
        warmup_s = time.perf_counter() - t0
        n_first = min(n, max(warm, batch))
        first_s, first_rebuild_s = _timed_epoch(model, X[:n_first], y[:n_first])
        guess = max(first_s - first_rebuild_s, 1e-9) / n_first
        n_timed = min(n, max(warm, 2 * batch, math.ceil(target_s / guess)))
        timed_s, rebuild_s = _timed_epoch(model, X[:n_timed], y[:n_timed])
        model.predict_scores(X[:8])
        t0 = time.perf_counter()
        model.predict_scores(X)
        infer_s = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    model.describe()  # stored with every record; the runner calls it outside the limits too
    describe_s = time.perf_counter() - t0
    train_s = max(timed_s - rebuild_s, 0.0) / n_timed
    excess_s = max(0.0, first_s - first_rebuild_s - n_first * train_s)
    log.debug(
        "%s: %.3g s/example training (%d examples), %.3g s/example inference",
        probe.key,
        train_s,
        n_timed,
        infer_s,
    )
    return Rate(train_s, infer_s, rebuild_s, build_s + warmup_s + excess_s + describe_s)


def _timed_epoch(model: models.Model, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(wall seconds of one epoch, the part the model reports as rebuilding tables)."""
    t0 = time.perf_counter()
    stats = model.train_epoch(X, y)
    wall = time.perf_counter() - t0
    rebuild = stats.extra.get("rebuild_s", 0.0) if isinstance(stats.extra, dict) else 0.0
    return wall, float(rebuild) if isinstance(rebuild, int | float) else 0.0


# -- the text the entry point prints ---------------------------------------------------------
def duration(seconds: float) -> str:
    """'2 h 5 min', '3 min 20 s' or '12 s'."""
    s = round(seconds)
    if s >= 3600:
        minutes = round(s / 60)  # rounded once, so 6 h 59.6 min reads 7 h 0 min, not 6 h 60
        return f"{minutes // 60} h {minutes % 60} min"
    if s >= 60:
        return f"{s // 60} min {s % 60} s"
    return f"{seconds:.0f} s" if seconds >= 1 else f"{seconds:.1f} s"


def format_plan(summary: Summary, estimate: Estimate | None = None) -> str:
    """A short table for a person: what will run and, with an estimate, how long."""
    lines = [f"Plan: {summary.n_cells} cells ({summary.n_stored} already stored)"]
    width = max(len(f) for f in FACETS)
    for facet in FACETS:
        values = ", ".join(f"{v}: {n}" for v, n in summary.counts[facet].items())
        lines.append(f"  {facet:<{width}}  {values}")
    for name, why in summary.unavailable.items():
        lines.append(
            f"  note: {name} cannot be loaded here ({why}); the sweep stops at its first cell"
        )
    if estimate is None:
        return "\n".join(lines)

    groups: dict[tuple[str, str], list[CellEstimate]] = {}
    for c in estimate.cells:
        groups.setdefault((c.cell.experiment, c.cell.name), []).append(c)
    ew = max([len("experiment"), *(len(e) for e, _ in groups)])
    mw = max([len("model"), *(len(m) for _, m in groups)])
    lines.append("")
    lines.append(f"  {'experiment':<{ew}}  {'model':<{mw}}  cells  stored  expected")
    for (experiment, name), group in groups.items():
        stored = sum(c.source == "already stored" for c in group)
        known = [c.seconds for c in group if c.seconds is not None]
        expected = duration(sum(known)) + (" + ?" if len(known) < len(group) else "")
        lines.append(
            f"  {experiment:<{ew}}  {name:<{mw}}  {len(group):>5}  {stored:>6}  {expected}"
        )
    sources = Counter(r.source for r in estimate.rates.values())
    lines.append("")
    lines.append(
        f"  rates of {len(estimate.rates)} cost keys (model and settings but seed, by input "
        "and class count): " + ", ".join(f"{n} {s}" for s, n in sources.items())
    )
    if estimate.n_unknown:
        lines.append(f"  {estimate.n_unknown} cells have no estimate (calibration failed; see log)")
    total = estimate.total_s
    lines.append(
        f"{summary.n_cells} cells ({estimate.n_stored} already stored) expected to take about "
        f"{duration(total)} on this machine (sequential, one cell at a time); "
        f"calibration took {estimate.calibration_s:.1f} s"
        + (f"; {estimate.process_s:.1f} s of each is its own process starting, loading its "
           "data and warming up" if estimate.process_s else "")
    )
    cores = estimate.cpu_count
    lines.append(
        f"This machine has {cores} logical CPUs. Here the runner runs one cell at a time "
        f"(cells sharing a machine would be timed against each other); on a Dask cluster of "
        f"N machines like this one (--scheduler), about {duration(total)} / N."
    )
    return "\n".join(lines)


def plan_text(
    cells: Sequence[Cell],
    *,
    store: ResultStore | None = None,
    force: bool = False,
    data_dir: Path | None = None,
    calibrate: bool = True,
) -> str:
    """The summary, and unless ``calibrate`` is False the estimate, as printable text."""
    summary = summarise(cells, store=store, force=force, data_dir=data_dir)
    if not calibrate:
        return format_plan(summary)
    est = estimate(cells, summary, store=store, force=force, data_dir=data_dir)
    return format_plan(summary, est)
