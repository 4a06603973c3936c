"""The paper's claims table from records whose answers are known: met, not met, inconclusive
(an interval straddling the threshold, or one seed) and not tested, each with its reason."""

from __future__ import annotations

import _records as R
import numpy as np
import pytest

from harness.store import ResultStore
from reports import claims as cl
from reports.frame import load_results
from reports.html import build_report

N_TRAIN = 100


def _record(
    model,
    fraction,
    seed,
    accuracy,
    *,
    dataset,
    wall_s=1.0,
    mults=10_000,  # training multiplications per example
    forward_hidden=None,  # forward multiplications in hidden layers per example
    energy_j=None,  # CPU joules per epoch
    mode="measured",
    batch_size=1,
    threads=1,
    experiment="fraction_sweep",
    machine="m",
):
    extra = {} if forward_hidden is None else {"mults_forward_hidden": forward_hidden * N_TRAIN}
    energy = [] if energy_j is None else [R.energy("cpu-package-0", energy_j, mode, source="rapl")]
    epochs = [
        R.epoch(e, wall_s=wall_s, accuracy=accuracy, mults=mults * N_TRAIN, energy_rows=energy,
                fraction=fraction, extra=extra)
        for e in (1, 2)
    ]
    return R.cell(
        f"{experiment}-{dataset}-{model}-{fraction}-t{threads}-s{seed}",
        epochs=epochs,
        machine_id=machine,
        experiment=experiment,
        model=model,
        dataset=dataset,
        n_train=N_TRAIN,
        settings={"active_fraction": fraction, "threads": threads, "seed": seed,
                  "batch_size": batch_size},
    )


DENSE_ACC = (0.900, 0.902, 0.898)
LSH_ACC = {
    "met": (0.899, 0.901, 0.897),  # 0.1 pp below, tight: within 1 pp
    "notmet": (0.850, 0.852, 0.848),  # 5 pp below, tight
    "straddle": (0.870, 0.890, 0.910),  # 1 pp below, +-5 pp: the interval straddles 1 pp
}


@pytest.fixture
def results(tmp_path):
    store = ResultStore(tmp_path, "box")
    jitter = (1.0, 1.01, 0.99)
    for dataset, lsh_acc in LSH_ACC.items():
        counted = dataset != "straddle"  # older records without the hidden-layer count
        mode = "measured" if dataset == "met" else "estimated"
        for seed in range(3):
            j = jitter[seed]
            R.put(store,
                _record("dense", 1.0, seed, DENSE_ACC[seed], dataset=dataset, wall_s=2.0 * j,
                        forward_hidden=1000 if counted else None, energy_j=4.0 * j, mode=mode)
            )  # fmt: skip
            R.put(store,
                _record("lsh", 0.05, seed, lsh_acc[seed], dataset=dataset, wall_s=0.5 * j,
                        mults=3000 * j, forward_hidden=40 * j if counted else None,
                        energy_j=1.0 * j, mode=mode)
            )  # fmt: skip
            R.put(store,
                _record("lsh", 0.5, seed, 0.9, dataset=dataset, wall_s=1.0, mults=6000)
            )
        if dataset == "met":  # a mini-batch reference, twice as fast as LSH
            for seed in range(3):
                R.put(store,
                    _record("dense-minibatch", 1.0, seed, 0.91, dataset=dataset,
                            wall_s=0.25 * jitter[seed], batch_size=256)
                )  # fmt: skip
            for seed in range(3):  # 1 -> 2 threads: 1.82x, 91% of linear
                for t, wall in ((1, 1.0), (2, 0.55)):
                    R.put(store,
                        _record("lsh", 0.05, seed, 0.9, dataset=dataset, threads=t,
                                wall_s=wall * jitter[seed], experiment="thread_scaling")
                    )  # fmt: skip
    for seed in range(2):  # no LSH at <= 5%: nothing to test
        R.put(store, _record("dense", 1.0, seed, 0.9, dataset="nolsh"))
        R.put(store, _record("lsh", 0.1, seed, 0.9, dataset="nolsh"))
    one = ResultStore(tmp_path, "one-core")  # a single-core machine: one thread count only
    R.put(one, _record("lsh", 0.05, 0, 0.9, dataset="met", experiment="thread_scaling"))
    return tmp_path


def _row(table, claim, dataset, machine="box"):
    rows = table[
        (table["claim"] == claim.text)
        & (table["dataset"] == dataset)
        & (table["machine"] == machine)
    ]
    assert len(rows) == 1, (claim.text, dataset, machine)
    return rows.iloc[0]


def test_verdicts_met_not_met_inconclusive(results):
    t = cl.claims(load_results(results))
    assert list(t.columns) == cl.COLUMNS
    gap = _row(t, cl.ACCURACY, "met")
    assert gap["verdict"] == "met"
    assert gap["estimate"] == pytest.approx(0.1)
    assert gap["n_seeds"] == 3 and gap["threshold"] == "<= 1.0 pp"
    assert gap["measured"].startswith("0.10 pp (95% CI ")
    assert _row(t, cl.ACCURACY, "notmet")["verdict"] == "not met"
    straddle = _row(t, cl.ACCURACY, "straddle")
    assert straddle["verdict"] == "inconclusive"
    assert straddle["ci_low"] < 1.0 < straddle["ci_high"]
    assert "straddles" in straddle["why"]

    paper = _row(t, cl.MULTS_PAPER, "met")  # 40 of 1000 hidden-layer forward products: 4%
    assert paper["verdict"] == "met" and paper["estimate"] == pytest.approx(4.0)
    everything = _row(t, cl.MULTS_ALL, "met")  # 3000 of 10000 over all phases: 30%
    assert everything["verdict"] == "not met" and everything["estimate"] == pytest.approx(30.0)

    assert _row(t, cl.SPEED, "met")["verdict"] == "met"  # 4x dense at batch 1
    mb = _row(t, cl.SPEED_MB, "met")  # half the mini-batch reference's speed
    assert mb["verdict"] == "not met" and mb["estimate"] == pytest.approx(0.5)
    assert "dense-minibatch (batch 256" in mb["why"]

    scaling = _row(t, cl.SCALING, "met")
    assert scaling["verdict"] == "met"
    assert scaling["estimate"] == pytest.approx(1 / 0.55)
    assert scaling["threshold"].startswith(">= 1.6x")

    energy = _row(t, cl.ENERGY, "met")
    assert energy["verdict"] == "met" and "(measured" in energy["why"]
    estimated = _row(t, cl.ENERGY, "notmet")
    assert estimated["verdict"] == "met" and "not a meter" in estimated["why"]

    mean = _row(t, cl.ACCURACY, "all (mean)")
    assert mean["estimate"] == pytest.approx(np.mean([0.1, 5.0, 1.0]))
    assert "3 dataset(s)" in mean["why"]


def test_untested_claims_say_why(results):
    t = cl.claims(load_results(results))
    for claim in (cl.MULTS_PAPER, cl.MULTS_ALL, cl.ACCURACY, cl.SPEED, cl.ENERGY):
        row = _row(t, claim, "nolsh")
        assert row["verdict"] == "not tested"
        assert row["why"] == "no LSH cells at <= 5% active (lowest swept: 10%)"
    lacking = _row(t, cl.MULTS_PAPER, "straddle")
    assert lacking["verdict"] == "not tested"
    assert lacking["why"] == "records lack the hidden-layer forward count"
    assert _row(t, cl.SPEED_MB, "notmet")["verdict"] == "not tested"
    assert "no thread-scaling cells" in _row(t, cl.SCALING, "notmet")["why"]
    single = _row(t, cl.SCALING, "met", machine="one-core")
    assert single["verdict"] == "not tested" and "single core" in single["why"]


def test_one_seed_is_inconclusive(tmp_path):
    store = ResultStore(tmp_path, "box")
    R.put(store, _record("dense", 1.0, 0, 0.90, dataset="toy"))
    R.put(store, _record("lsh", 0.05, 0, 0.899, dataset="toy", wall_s=0.1))
    t = cl.claims(load_results(tmp_path))
    speed = _row(t, cl.SPEED, "toy")  # 10x faster, but one seed gives no interval
    assert speed["verdict"] == "inconclusive"
    assert speed["measured"] == "10.00x (one seed: no interval)"


def test_report_has_the_claims_section_and_csv(results, tmp_path):
    out = tmp_path / "report"
    html = build_report(results, out).read_text()
    assert 'href="#claims"' in html and "The paper's claims" in html
    assert 'class="verdict v-not-met"' in html and 'class="verdict v-met"' in html
    csv = (out / "claims.csv").read_text().splitlines()
    assert csv[0] == ",".join(cl.COLUMNS)
    assert len(csv) - 1 == len(cl.claims(load_results(results)))
    assert (out / "summary.csv").exists()
