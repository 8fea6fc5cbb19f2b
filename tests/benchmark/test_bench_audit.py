"""The benchmark's guards: repeated names, predictions that cannot be scored, an ATE
interval that fails, outputs never overwritten by surprise, interrupted runs, the README
marker lines, the peers' threads and models, and the benchmark scripts' bookkeeping.
(D1-D10 in the section headers: the defects of the benchmark audit each section covers.)"""
import csv
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from causalnn.benchmark import (MODELS, ModelSpec, format_table, load_replication,
                                plot_results, run_benchmark, summarize, update_readme,
                                write_results)
from causalnn.benchmark._datasets import demand_grid
from causalnn.benchmark._report import README_END, README_START, check_readme
from causalnn.cli import main
# pytest's default (prepend) import mode puts this folder on sys.path
from test_benchmark import _ConstantFit

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_warm_up(monkeypatch):
    """These models fit in microseconds: skip the runner's untimed torch warm-up."""
    from causalnn.benchmark import _runner
    monkeypatch.setattr(_runner, "warm_up", lambda device: None)


def _constant(name="constant"):
    return ModelSpec(name, lambda seed, device: _ConstantFit(), ["binary"], "test")


# ---- D1: a name given twice ------------------------------------------------------------
@pytest.mark.parametrize("models, datasets, named", [
    (["constant", "constant"], ["ihdp"], "'constant'"),
    (["constant"], ["ihdp", "ihdp"], "datasets: 'ihdp'"),
    # a model of one's own named like a built-in one would be pooled with it
    (["TARNet", "TARNet (own)"], ["ihdp"], "'TARNet'"),
])
def test_a_model_or_dataset_named_twice_is_refused(models, datasets, named):
    specs = {"constant": _constant(), "TARNet": "TARNet",
             "TARNet (own)": _constant("TARNet")}
    with pytest.raises(ValueError, match="named more than once") as err:
        run_benchmark([specs[m] for m in models], datasets, 1, progress=False)
    assert named in str(err.value)


# ---- D2: predictions that cannot be scored ---------------------------------------------
class _Structural:
    """Returns the demand grid's true h (cf_mse 0), as ``shape`` says, NaN on
    replication ``nan_on``."""

    def __init__(self, shape, nan_on=None):
        self.shape, self.nan_on = shape, nan_on

    def fit(self, data):
        self.replication_ = data.replication
        return self

    def predict_outcome(self, X, treatment):
        h = demand_grid().structural.astype(float).copy()
        if self.replication_ == self.nan_on:
            h[::7] = np.nan
        return {"vector": h, "column": h[:, None], "two": np.column_stack([h, h])}[
            self.shape]


@pytest.fixture(scope="module")
def cached_demand(tmp_path_factory):
    # one draw of the demand data for the module's tests (5000 rows, two replications)
    return {r: load_replication("demand", r) for r in (1, 2)}


def _iv_records(monkeypatch, cached_demand, spec):
    from causalnn.benchmark import _runner
    monkeypatch.setattr(_runner, "load_replication",
                        lambda name, r, seed=0, shared=False: cached_demand[r])
    return run_benchmark([spec], ["demand"], 2, progress=False)


def test_a_nan_or_misshaped_prediction_fails_the_replication(monkeypatch, cached_demand):
    column = ModelSpec("column", lambda s, d: _Structural("column"), ["iv"], "test")
    result = _iv_records(monkeypatch, cached_demand, column)
    # an (m, 1) column is h itself: cf_mse 0, not the (m, m) broadcast difference
    assert [r["cf_mse"] for r in result["records"]] == [0.0, 0.0]
    nan = ModelSpec("nan", lambda s, d: _Structural("vector", nan_on=1), ["iv"], "test")
    two = ModelSpec("two", lambda s, d: _Structural("two"), ["iv"], "test")
    for spec, message in ((nan, "predict_outcome returned 400 NaN or infinite"),
                          (two, "predict_outcome returned shape (2800, 2)")):
        rows = _iv_records(monkeypatch, cached_demand, spec)["records"]
        assert [r["status"] for r in rows] == (["failed", "ok"] if spec is nan
                                               else ["failed", "failed"])
        assert message in rows[0]["error"] and "cf_mse" not in rows[0]
    table = format_table(_iv_records(monkeypatch, cached_demand, nan))
    assert "| demand | nan | 1 / 2 | 0.00 (0.00) |" in table


def test_a_nan_cause_effect_fails_the_replication():
    class NanEffects:
        def fit(self, data):
            return self

        def cause_effects(self):
            return np.full(50, np.nan)

    spec = ModelSpec("nan", lambda s, d: NanEffects(), ["multi_cause"], "test")
    row = run_benchmark([spec], ["multi_cause"], 1, progress=False)["records"][0]
    assert row["status"] == "failed" and "cause_effects returned 50 NaN" in row["error"]


def test_an_ok_record_with_a_nan_metric_is_counted_as_failed():
    # records not made by score (e.g. loaded from elsewhere): the counts must agree
    # with the rows the mean is over
    rows = [{"dataset": "demand", "model": "m", "family": "test", "replication": r,
             "status": "ok", "error": "", "fit_seconds": 1.0, "device": "cpu",
             "cf_mse": value} for r, value in ((1, 0.5), (2, np.nan), (3, 0.7))]
    entry = summarize({"records": rows})[0]
    assert (entry["n_ok"], entry["n_failed"]) == (2, 1)
    assert entry["metrics"]["cf_mse"]["n"] == 2
    assert entry["metrics"]["cf_mse"]["mean"] == pytest.approx(0.6)
    assert entry["errors"] == ["non-finite cf_mse"]


# ---- D5: an ATE interval that fails ----------------------------------------------------
class _WithInterval(_ConstantFit):
    def __init__(self, fails_on=None, n_members=None):
        self.fails_on = fails_on
        if n_members is not None:
            self.n_members_ = n_members

    def fit(self, data):
        self.replication_ = data.replication
        return super().fit(data)

    def ate_interval(self, X):
        if self.replication_ == self.fails_on or getattr(self, "n_members_", 2) < 2:
            raise RuntimeError("interval broke on purpose")
        return self.tau_ - 100.0, self.tau_ + 100.0


def test_a_failing_ate_interval_is_reported_not_swallowed():
    spec = ModelSpec("peer", lambda s, d: _WithInterval(fails_on=2), ["binary"], "test")
    result = run_benchmark([spec], ["ihdp"], 2, progress=False)
    first, second = result["records"]
    assert first["coverage"] == 1.0 and "coverage_error" not in first
    assert "coverage" not in second and "interval broke" in second["coverage_error"]
    table = format_table(result)
    assert "| ihdp | peer | 2 / 2 |" in table and "1.00 (n=1)" in table
    assert ("peer on ihdp: the ATE interval failed on 1 replication(s) (no coverage for "
            "them): `RuntimeError: interval broke on purpose") in table


def test_a_one_member_estimator_is_not_asked_for_an_interval():
    spec = ModelSpec("one member", lambda s, d: _WithInterval(n_members=1), ["binary"],
                     "test")
    row = run_benchmark([spec], ["ihdp"], 1, progress=False)["records"][0]
    assert "coverage" not in row and "coverage_error" not in row


# ---- D3 and D8: outputs never overwritten by surprise ----------------------------------
def test_write_and_plot_results_refuse_an_earlier_runs_folder(tmp_path):
    pytest.importorskip("matplotlib")
    result = run_benchmark([_constant()], ["ihdp"], 2, progress=False)
    (tmp_path / "results.md").write_text("my precious notes\n")
    (tmp_path / "effects_proxy.png").write_text("an earlier run's plot\n")
    (tmp_path / "other.txt").write_text("not ours\n")
    (tmp_path / "errorbars_mine.png").write_text("a user's plot, named like ours\n")
    with pytest.raises(FileExistsError, match="already holds effects_proxy.png, "
                                              "results.md; pass force=True"):
        write_results(result, tmp_path, command="my script")
    with pytest.raises(FileExistsError, match="effects_proxy.png"):
        plot_results(result, tmp_path)
    assert (tmp_path / "results.md").read_text() == "my precious notes\n"
    # force: the earlier run's outputs go (its proxy plot too), other files stay
    write_results(result, tmp_path, command="my script", force=True)
    assert not (tmp_path / "effects_proxy.png").exists()
    assert "Command: `my script`" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "other.txt").read_text() == "not ours\n"
    assert sorted(p.name for p in plot_results(result, tmp_path)) == [
        "effects_ihdp.png", "errorbars_ihdp.png"]
    # only the plots of the bench's own datasets are its files
    assert (tmp_path / "errorbars_mine.png").read_text() == (
        "a user's plot, named like ours\n")


def test_cli_force_removes_the_plots_of_datasets_the_new_run_lacks(tmp_path, capsys):
    for name in ("results.md", "errorbars_proxy.png", "effects_proxy.png", "notes.txt"):
        (tmp_path / name).write_text("run 1\n")
    argv = ["bench", "--datasets", "multi_cause", "--replications", "1", "--models",
            "OLS (naive)", "--quiet", "--no-plots", "--out", str(tmp_path)]
    assert main(argv) == 2          # refused without --force, nothing touched
    assert (tmp_path / "errorbars_proxy.png").exists()
    assert main(argv + ["--force"]) == 0
    # the new run's outputs and its run record (for --resume)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bench_records.jsonl", "bench_settings.json", "notes.txt", "results.csv",
        "results.json", "results.md"]


# ---- D7: an interrupted run keeps what finished ----------------------------------------
class _InterruptedOn(_ConstantFit):
    def __init__(self, replication):
        self.replication = replication

    def fit(self, data):
        if data.replication == self.replication:
            raise KeyboardInterrupt
        return super().fit(data)


def test_an_interrupted_run_returns_and_writes_what_finished(tmp_path):
    spec = ModelSpec("stops", lambda s, d: _InterruptedOn(3), ["binary"], "test")
    result = run_benchmark([spec], ["ihdp"], 4, progress=False)
    assert result["interrupted"] and result["planned"] == 4
    assert [r["replication"] for r in result["records"]] == [1, 2]
    markdown = write_results(result, tmp_path, command="my script")
    assert markdown.startswith("**Partial results: interrupted after 2/4 replications**")
    assert "| ihdp | stops | 2 / 2 |" in markdown
    assert json.loads((tmp_path / "results.json").read_text())["interrupted"] is True
    finished = run_benchmark([spec], ["ihdp"], 2, progress=False)
    assert finished["interrupted"] is False


def test_cli_writes_an_interrupted_runs_partial_results_and_leaves_the_readme(
        tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(MODELS, "stops", ModelSpec(
        "stops", lambda s, d: _InterruptedOn(2), ["binary"], "test"))
    readme = tmp_path / "README.md"
    readme.write_text(f"{README_START}\nOLD TABLE\n{README_END}\n")
    code = main(["bench", "--datasets", "ihdp", "--replications", "3", "--models",
                 "stops", "--quiet", "--no-plots", "--out", str(tmp_path / "out"),
                 "--readme", str(readme)])
    assert code == 130
    assert "interrupted after 1/3 replications" in capsys.readouterr().err
    assert "| ihdp | stops | 1 / 1 |" in (tmp_path / "out" / "results.md").read_text()
    assert "OLD TABLE" in readme.read_text()


# ---- D9: the README's marker lines, not a marker quoted in prose -----------------------
def test_update_readme_replaces_the_marker_lines_not_a_quoted_marker(tmp_path):
    prose = (f"The table sits between `{README_START}` and\n`{README_END}`.\n\n")
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{prose}{README_START}\nOLD TABLE\n{README_END}\n"
                      "after\n")
    update_readme(readme, "| NEW | TABLE |\n")
    assert readme.read_text() == (f"# Title\n\n{prose}{README_START}\n| NEW | TABLE |\n"
                                  f"{README_END}\nafter\n")


@pytest.mark.parametrize("text, found", [
    (f"{README_START}\na\n{README_END}\n{README_START}\nb\n{README_END}\n",
     "found 2 start and 2 end"),
    (f"{README_END}\na\n{README_START}\n", "the end first"),
    (f"quoted `{README_START}` ... `{README_END}` only\n", "found 0 start and 0 end"),
])
def test_check_readme_needs_one_start_line_then_one_end_line(tmp_path, text, found):
    readme = tmp_path / "README.md"
    readme.write_text(text)
    with pytest.raises(ValueError,
                       match="readme: .*each once and alone on its line") as err:
        check_readme(readme)
    assert found in str(err.value)


# ---- D4 and the models -----------------------------------------------------------------
@pytest.mark.parametrize("threads", [1, 2])
def test_causal_forest_uses_the_work_items_threads(threads):
    pytest.importorskip("econml")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)   # what run_unit does with --threads
    try:
        peer = MODELS["EconML CausalForestDML"].make(0, "cpu")
    finally:
        torch.set_num_threads(before)
    assert peer.build(None).n_jobs == threads


def test_cfr_with_the_rbf_mmd_is_a_model():
    fitter = MODELS["CFR-mmd_rbf"].make(3, "cpu")
    params = fitter.estimator.get_params()
    assert (params["ipm"], params["alpha"], params["random_state"]) == ("mmd_rbf", 0.01, 3)
    assert MODELS["CFR-mmd_rbf"].batched


CATENETS_CFR = "CATENets CFR (mmd_linear 0.01, batch_norm=False)"


def test_catenets_cfr_is_tarnet_with_a_linear_mmd_penalty():
    catenets_torch = pytest.importorskip("catenets.models.torch")
    data = load_replication("ihdp", 1)
    peer = MODELS[CATENETS_CFR].make(0, "cpu")
    model = peer.build(data)
    assert isinstance(model, catenets_torch.TARNet)
    assert model.penalty_disc == 0.01
    # the penalty is on: arms with different representations get a positive MMD
    rep = torch.tensor(np.r_[np.zeros((5, 2)), np.ones((5, 2))] + np.arange(10)[:, None]
                       * 0.01, dtype=torch.float32)
    w = torch.tensor([0.0] * 5 + [1.0] * 5)
    assert float(model._maximum_mean_discrepancy(rep, w)) > 0
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules())


def test_catenets_cfr_is_listed_as_not_installed_without_catenets(monkeypatch):
    monkeypatch.setitem(sys.modules, "catenets.models.torch", None)
    spec = MODELS[CATENETS_CFR]
    assert spec.unavailable().startswith("catenets.models.torch not installed")
    result = run_benchmark([_constant(), CATENETS_CFR], ["ihdp"], 1, progress=False)
    assert [r["model"] for r in result["records"]] == ["constant"]
    assert f"- {CATENETS_CFR}: not run: catenets.models.torch not installed" in (
        format_table(result))


def test_proxy_uses_outcome_confounding_two():
    from causalnn.datasets import make_proxy_confounded
    data = load_replication("proxy", 2, seed=1)
    expected = make_proxy_confounded(2000, outcome_confounding=2.0,
                                     random_state=1 * 100003 + 2)
    np.testing.assert_array_equal(data.y, expected.y)
    np.testing.assert_array_equal(data.ite, expected.ite)
    # c = 2 no longer saturates the outcome: the effect varies with the confounder
    assert np.ptp(data.ite) > 0.3


# ---- D6 and D10: the benchmark scripts -------------------------------------------------
def _script(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}",
                                                  ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ihdp_from_csv_reprints_beside_the_csv_with_the_runs_provenance(tmp_path, capsys):
    ihdp = _script("ihdp")
    run_csv = tmp_path / "ihdp_cpu.csv"
    fields = ["model", "replication", "fit_seconds", "device", "pehe_in", "pehe_out",
              "ate_in", "ate_out", "epochs"]
    with open(run_csv, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for rep, pehe in ((1, 0.5), (2, 0.7)):
            writer.writerow(dict(model="TARNet", replication=rep, fit_seconds=1.0,
                                 device="cpu", pehe_in=pehe, pehe_out=pehe, ate_in=0.1,
                                 ate_out=0.1, epochs=40))
    (tmp_path / "ihdp_cpu.json").write_text(json.dumps(
        {"machine": "the measuring box", "command": "python benchmarks/ihdp.py "
         "--replications 2", "note": None, "protocol": "63/27/10 split"}))
    (tmp_path / "ihdp_cpu.md").write_text("the run's own table\n")
    before = run_csv.read_text()
    ihdp.main(["--from-csv", str(run_csv), "--out", str(tmp_path)])
    assert (tmp_path / "ihdp_cpu.md").read_text() == "the run's own table\n"
    assert run_csv.read_text() == before
    text = (tmp_path / "ihdp_cpu_reprint.md").read_text()
    assert text.startswith("# IHDP benchmark (2 replications, 63/27/10 split)")
    assert "Machine: the measuring box." in text
    assert "Command: `python benchmarks/ihdp.py --replications 2`" in text
    assert "Re-printed by `python benchmarks/ihdp.py --from-csv" in text
    assert "| TARNet | 0.60 ± 0.10 | 0.60 ± 0.10 |" in text
    with pytest.raises(SystemExit, match="already exists"):
        ihdp.main(["--from-csv", str(run_csv)])


def test_throughput_counts_the_rows_catenets_trains_on():
    throughput = _script("throughput")

    def rows_seen(n, batch):
        # CATENets 0.2.4's epoch, as its fit loop slices it
        batch = min(batch, n)
        n_batches = int(np.round(n / batch)) if batch < n else 1
        idx = np.arange(n)
        return sum(len(idx[b * batch: min((b + 1) * batch, n - 1)])
                   for b in range(n_batches))

    count = throughput.CatenetsRunner.rows_per_epoch
    for n, batch in ((20000, 8192), (100000, 65536), (1000, 300), (500, 8192)):
        assert count(n, batch) == rows_seen(n, batch)
    assert count(20000, 8192) == 16384 and count(100000, 65536) == 99999
    assert throughput.PlainTorchRunner().rows_per_epoch(20000, 8192) == 20000
