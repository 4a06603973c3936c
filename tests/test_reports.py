"""Reports from records built here with known contents: the frames, the summary ratios, the
labelling of energy modes, machine comparison, and a clear error when there is nothing."""

from __future__ import annotations

import _records as R
import pandas as pd
import pytest

from harness.errors import UserError
from harness.store import ResultStore
from reports import tables
from reports.frame import energy_modes, epoch_energy, load_results
from reports.html import build_report


def _record(
    model,
    fraction,
    accuracy,
    mults,
    wall_s,
    *,
    dataset="toy",
    cpu_j=2.0,
    mode="estimated",
    n_train=100,
    threads=1,
    experiment="fraction_sweep",
    first_wall_s=None,
    seed=0,
    machine="m",
):
    energy = [
        R.energy("cpu-package-0", cpu_j, mode),
        R.energy("gpu-0", 50.0, "measured", meter="nvml", attributable=False),
    ]
    epochs = [
        R.epoch(
            e,
            wall_s=first_wall_s if e == 1 and first_wall_s is not None else wall_s,
            accuracy=accuracy - 0.1 * (2 - e),
            mults=mults,
            loss=1.0 / e,
            energy_rows=energy,
            fraction=fraction,
            computed=fraction if model == "lsh" else 1.0,
            op_energy_j=1e-6,
        )
        for e in (1, 2)
    ]
    return R.cell(
        f"{dataset}-{model}-{fraction}-{threads}" + (f"-s{seed}" if seed else ""),
        epochs=epochs,
        machine_id=machine,
        experiment=experiment,
        model=model,
        dataset=dataset,
        n_train=n_train,
        settings={"active_fraction": fraction, "threads": threads, "seed": seed},
    )


@pytest.fixture
def results(tmp_path):
    for machine, speed in (("fast-box", 1.0), ("slow-box", 3.0)):
        store = ResultStore(tmp_path, machine)
        m = {"machine": machine}
        store.write_cell(_record("dense", 1.0, 0.90, 10_000, 2.0 * speed, **m))
        store.write_cell(_record("dense-minibatch", 1.0, 0.91, 10_000, 0.25 * speed, **m))
        store.write_cell(_record("lsh", 0.05, 0.89, 500, 0.5 * speed, **m))
        store.write_cell(_record("lsh", 0.5, 0.90, 5_000, 1.0 * speed, **m))
        store.write_cell(_record("wta", 0.05, 0.70, 10_000, 2.0 * speed, **m))
        for t in (1, 2):  # 2 threads start slowly: speedup counts the epochs after the first
            store.write_cell(
                _record("lsh", 0.05, 0.89, 500, speed / t, threads=t, experiment="thread_scaling",
                        first_wall_s=10 * speed if t == 2 else None, **m)
            )
    R.write(tmp_path, R.cell("broken", machine_id="fast-box", model="lsh", status="failed",
                             settings={"active_fraction": 0.1}))
    return tmp_path


def test_frames_hold_every_epoch_cell_machine_and_failure(results):
    res = load_results(results)
    assert len(res.epochs) == 2 * 2 * 7
    assert len(res.cells) == 2 * 7
    assert set(res.machines["machine"]) == {"fast-box", "slow-box"}
    assert res.failed["error"].tolist() == ["ValueError: boom"]
    row = res.cells[
        (res.cells["machine"] == "fast-box")
        & (res.cells["model"] == "lsh")
        & (res.cells["fraction"] == 0.05)
        & (res.cells["experiment"] == "fraction_sweep")
    ]
    assert row["mults_per_example"].item() == 5.0
    assert row["total_wall_s"].item() == 1.0
    assert row["epoch_wall_spread_pct"].item() == 0.0  # identical epochs


def test_summary_ratios_against_dense(results):
    s = tables.summary(load_results(results))
    lsh = s[(s["machine"] == "slow-box") & (s["model"] == "lsh") & (s["fraction"] == 0.05)]
    assert lsh["accuracy_gap_pp"].item() == pytest.approx(-1.0)
    assert lsh["mults_vs_dense_pct"].item() == pytest.approx(5.0)
    assert lsh["speed_vs_dense"].item() == pytest.approx(4.0)
    assert lsh["speed_vs_dense_minibatch"].item() == pytest.approx(0.5)


def test_energy_is_long_form_and_modes_are_never_added(tmp_path):
    rows = [
        R.energy("cpu-package-0", 3.0, "measured", idle_j=1.0),
        R.energy("cpu-package-1", 4.0, "measured", idle_j=1.5),
        R.energy("cpu-package-0", 3.1, "measured", meter="pyrapl"),  # a cross-check, not more
        R.energy("cpu", 10.0, "estimated", meter="cpu-estimate"),
        R.energy("gpu-0", 7.0, "measured", meter="nvml", attributable=False),
        R.energy("dram-0", None),
    ]
    R.write(tmp_path, R.cell("c", epochs=[R.epoch(1, energy_rows=rows)]))
    res = load_results(tmp_path)
    assert len(res.energy) == 6  # one row per domain and meter, unavailable included
    assert set(res.energy["meter"]) == {"rapl", "pyrapl", "cpu-estimate", "nvml"}
    e = epoch_energy(res, "cpu").set_index("mode")["energy_j"]
    assert e["measured"] == 7.0 and e["estimated"] == 10.0  # side by side, never summed
    net = epoch_energy(res, "cpu", net=True).set_index("mode")["energy_j"]
    assert net["measured"] == pytest.approx(4.5) and "estimated" not in net  # no idle term
    assert epoch_energy(res, "gpu").empty  # a GPU the model did not use is not its cost
    assert energy_modes(res, "cpu") == {"measured", "estimated"}


def test_report_draws_every_figure_and_labels_estimates(results, tmp_path):
    out = tmp_path / "report"
    index = build_report(results, out)
    html = index.read_text()
    for name in (
        "accuracy_vs_fraction",
        "accuracy_per_epoch",
        "mults_vs_fraction",
        "throughput_vs_fraction",
        "energy_per_example",
        "thread_scaling",
        "machine_comparison",
    ):
        assert (out / f"{name}.png").stat().st_size > 1000
        assert f'src="{name}.png"' in html
    assert "estimated" in html and "fast-box" in html and "slow-box" in html
    assert "ValueError: boom" in html  # failed runs are shown, not hidden
    speedup = (out / "thread_scaling.csv").read_text().splitlines()
    assert any(line.endswith(",2.0") or ",2.0," in line for line in speedup[1:])


def test_no_results_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="no results folder"):
        build_report(tmp_path / "nothing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no result records"):
        build_report(tmp_path / "empty", tmp_path / "out")


def test_time_and_energy_to_reach_dense_accuracy(results):
    s = tables.summary(load_results(results)).set_index(["machine", "model", "fraction"])
    # Dense ends at 0.90, so the target is 0.89: LSH at 5% reaches it in epoch 2 (0.79, 0.89).
    lsh = s.loc[("fast-box", "lsh", 0.05)]
    assert lsh["epochs_to_target"] == 2
    assert lsh["time_to_target_s"] == pytest.approx(1.0)
    assert lsh["cpu_estimated_j_to_target"] == pytest.approx(4.0)
    assert pd.isna(s.loc[("fast-box", "wta", 0.05)]["epochs_to_target"])  # 0.70 never does


def test_unwritable_report_folder_is_a_clear_error(results, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="cannot create report folder"):
        build_report(results, blocker / "report")


def test_full_disk_while_drawing_keeps_the_previous_report(results, tmp_path, monkeypatch):
    import errno

    from matplotlib.figure import Figure as MplFigure

    out = tmp_path / "report"
    build_report(results, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def no_space(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(MplFigure, "savefig", no_space)
    with pytest.raises(UserError, match="No space left on device"):
        build_report(results, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# --- the model catalogue: every model in the results is drawn, known or not ---------------


@pytest.fixture
def with_unknown(tmp_path, monkeypatch):
    from harness import catalogue

    monkeypatch.setattr(catalogue, "_warned", set())  # warn afresh whatever ran before
    store = ResultStore(tmp_path, "box")
    store.write_cell(_record("dense", 1.0, 0.90, 10_000, 2.0, machine="box"))
    for model in ("lsh", "lsh-rowwise", "mystery-net"):
        for fraction in (0.05, 0.5):
            store.write_cell(_record(model, fraction, 0.85, 500, 0.5, machine="box"))
    return tmp_path


def test_unknown_and_variant_models_are_drawn_with_a_warning(with_unknown, caplog):
    from reports.figures import ALL_FIGURES, accuracy_vs_fraction

    res = load_results(with_unknown)
    with caplog.at_level("WARNING", logger="harness.catalogue"):
        spec = accuracy_vs_fraction(res)
    assert spec is not None
    assert {"dense", "lsh", "lsh-rowwise", "mystery-net"} <= set(spec.data["model"])
    _, labels = spec.fig.axes[0].get_legend_handles_labels()  # curves and reference lines
    assert "mystery-net" in labels  # the default style's label is the name itself
    assert "LSH, row-wise Adagrad" in labels
    assert [r.message for r in caplog.records].count(
        "model 'mystery-net' is not in harness/catalogue.py; drawn with a default style"
    ) == 1  # once per name, however many times it is styled
    for draw in ALL_FIGURES:  # every figure of the sweep holds it where it has models
        other = draw(res)
        if other is not None and "model" in other.data:
            assert "mystery-net" in set(other.data["model"]), other.name


def test_catalogue_orders_known_names_first_and_derives_the_sparse_models():
    from harness import catalogue, experiments

    assert catalogue.ordered(["zeta", "wta", "alpha", "lsh-rowwise", "dense", "lsh"]) == [
        "dense",
        "lsh",
        "lsh-rowwise",
        "wta",
        "alpha",
        "zeta",
    ]
    assert experiments.SPARSE_MODELS == ("lsh", "dropout", "standout", "wta")
    for name, (base, _) in experiments.VARIANTS.items():  # variants are catalogued as such
        assert catalogue.style(name).variant_of == base
    unknown = catalogue.style("mystery-net")
    assert not unknown.known and unknown.colour not in {
        e.colour for e in catalogue.CATALOGUE.values()
    }
    assert set(catalogue.references()) == {"dense", "dense-minibatch", "torch-dense"}


def test_error_bars_are_t_intervals_over_seeds_and_captions_say_so(tmp_path):
    from reports.figures import accuracy_vs_fraction

    store = ResultStore(tmp_path, "box")
    store.write_cell(_record("dense", 1.0, 0.90, 10_000, 2.0, machine="box"))
    for seed, acc in enumerate((0.80, 0.82, 0.84)):
        store.write_cell(_record("lsh", 0.05, acc, 500, 0.5, seed=seed, machine="box"))
    spec = accuracy_vs_fraction(load_results(tmp_path))
    assert spec is not None
    row = spec.data.set_index("model").loc["lsh"]
    half = 4.302653 * 0.02 / 3**0.5  # t(0.975, 2) * sd / sqrt(n)
    assert row["test_accuracy"] == pytest.approx(0.82)
    assert row["test_accuracy_sd"] == pytest.approx(0.02)
    assert row["test_accuracy_ci_low"] == pytest.approx(0.82 - half, abs=1e-6)
    assert row["test_accuracy_ci_high"] == pytest.approx(0.82 + half, abs=1e-6)
    assert row["n_runs"] == 3
    assert pd.isna(spec.data.set_index("model").loc["dense", "test_accuracy_ci_low"])
    assert "means over 1-3 seeds; error bars are 95% t-intervals of the mean" in spec.caption


def test_seconds_and_rates_get_log_scale_error_bars_that_stay_above_zero():
    from reports.figures import _seed_stats
    from reports.stats import mean_ci, positive_mean_ci

    df = pd.DataFrame({
        "model": ["lsh", "lsh", "dense", "dense", "odd", "odd"],
        "seed": [0, 1, 0, 1, 0, 1],
        "epoch_wall_s": [0.4, 0.25, 1.0, 1.0, 0.0, 0.5],  # "odd": a zero, no log
        "test_accuracy": [0.80, 0.84, 0.9, 0.9, 0.5, 0.6],
    })
    t = _seed_stats(df, ["model"], "epoch_wall_s").set_index("model")
    want = positive_mean_ci([0.4, 0.25])
    assert mean_ci([0.4, 0.25]).low < 0 < want.low  # what the log scale is for
    assert (t.loc["lsh", "epoch_wall_s_ci_low"], t.loc["lsh", "epoch_wall_s_ci_high"]) == (
        pytest.approx((want.low, want.high)))
    assert (t.loc["dense", "epoch_wall_s_ci_low"], t.loc["dense", "epoch_wall_s_ci_high"]) == (
        pytest.approx((1.0, 1.0)))  # equal runs: the point
    odd = mean_ci([0.0, 0.5])
    assert (t.loc["odd", "epoch_wall_s_ci_low"], t.loc["odd", "epoch_wall_s_ci_high"]) == (
        pytest.approx((odd.low, odd.high)))
    a = _seed_stats(df, ["model"], "test_accuracy").set_index("model")  # not a log quantity
    acc = mean_ci([0.80, 0.84])
    assert (a.loc["lsh", "test_accuracy_ci_low"], a.loc["lsh", "test_accuracy_ci_high"]) == (
        pytest.approx((acc.low, acc.high)))
    assert "min" not in a.columns


def test_one_run_per_point_says_there_is_no_interval(results):
    from reports.figures import ALL_FIGURES

    res = load_results(results)
    for draw in ALL_FIGURES:
        spec = draw(res)
        if spec is not None and "n_runs" in spec.data:
            assert "One run per point (no interval)." in spec.caption, spec.name
