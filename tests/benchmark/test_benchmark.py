"""causalnn.benchmark and ``causalnn bench``: the grid, its metrics, failures, outputs."""
import json

import numpy as np
import pytest

from causalnn import TARNet
from causalnn.benchmark import (ModelSpec, format_table, load_replication, run_benchmark,
                                save_markdown, update_readme, write_results)
from causalnn.cli import main
from causalnn.metrics import pehe


class _ConstantFit:
    """Predicts, for every row, the true ATE of the fit rows."""

    def fit(self, data):
        self.tau_ = float(np.mean(data.ite[data.fit_index]))
        return self

    def effect(self, X):
        return np.full(len(X), self.tau_)


class _FailsOn:
    def __init__(self, replication):
        self.replication = replication

    def fit(self, data):
        if data.replication == self.replication:
            raise RuntimeError("boom on purpose")
        return _ConstantFit().fit(data)


CONSTANT = ModelSpec("constant", lambda seed, device: _ConstantFit(), ["binary"], "test")


def _small_tarnet(seed, device):
    from causalnn.benchmark._models import _Causalnn
    return _Causalnn(TARNet(representation_layers=(16,), head_layers=(8,), max_epochs=3,
                            batch_size=128, random_state=seed, device=device))


SMALL_TARNET = ModelSpec("small TARNet", _small_tarnet, ["binary"], "causalnn",
                         batched=True)


def test_metrics_match_the_closed_form_of_a_constant_effect():
    result = run_benchmark([CONSTANT], ["ihdp"], 2, progress=False)
    assert [r["replication"] for r in result["records"]] == [1, 2]
    for row in result["records"]:
        data = load_replication("ihdp", row["replication"])
        fit, test = data.fit_index, data.test_index
        tau = np.mean(data.ite[fit])
        # sqrt(PEHE) of a constant at the mean: the standard deviation of the effects
        assert row["pehe_in"] == pytest.approx(np.std(data.ite[fit]))
        assert row["ate_in"] == pytest.approx(0.0, abs=1e-9)
        assert row["pehe_out"] == pytest.approx(pehe(data.ite[test], np.full(len(test), tau)))
        assert row["ate_out"] == pytest.approx(abs(np.mean(data.ite[test]) - tau))


def test_a_failing_replication_is_recorded_and_the_rest_finish():
    failing = ModelSpec("flaky", lambda seed, device: _FailsOn(2), ["binary"], "test")
    result = run_benchmark([failing, CONSTANT], ["ihdp"], 3, progress=False)
    flaky = [r for r in result["records"] if r["model"] == "flaky"]
    assert [r["status"] for r in flaky] == ["ok", "failed", "ok"]
    assert "boom on purpose" in flaky[1]["error"]
    assert all(r["status"] == "ok" for r in result["records"] if r["model"] == "constant")
    table = format_table(result)
    assert "| ihdp | flaky | 2 / 3 |" in table
    assert "1 replication(s) failed: `RuntimeError: boom on purpose" in table


def test_a_peer_that_is_not_installed_is_listed_with_the_reason():
    missing = ModelSpec("ghost peer", lambda seed, device: _ConstantFit(), ["binary"],
                        "ghost", requires=["no_such_module_for_causalnn_tests"])
    result = run_benchmark([missing, CONSTANT], ["ihdp"], 1, progress=False)
    assert "ghost peer" in result["unavailable"]
    assert {r["model"] for r in result["records"]} == {"constant"}
    assert "- ghost peer: not run: no_such_module_for_causalnn_tests not installed" in (
        format_table(result))


def test_replications_sharing_a_design_run_as_one_batched_fit():
    result = run_benchmark([SMALL_TARNET], ["make_ihdp"], 3, sequential_subset=1,
                           progress=False)
    batched = [r for r in result["records"] if r["model"] == "small TARNet"]
    alone = [r for r in result["records"] if r["model"] == "small TARNet (one at a time)"]
    assert [r["status"] for r in batched] == ["ok"] * 3 and len(alone) == 1
    # one fit_many: its time is shared equally by the replications
    assert len({r["fit_seconds"] for r in batched}) == 1
    # each replication scored against its own truth
    assert len({r["pehe_out"] for r in batched}) == 3
    assert "3 replications as batched fit_many took" in format_table(result)
    # the IHDP files each have their own split: no batching across them
    files = run_benchmark([SMALL_TARNET], ["ihdp"], 2, progress=False)["records"]
    assert files[0]["fit_seconds"] != files[1]["fit_seconds"]
    shared = run_benchmark([SMALL_TARNET], ["ihdp"], 2, shared_split=True,
                           progress=False)["records"]
    assert shared[0]["fit_seconds"] == shared[1]["fit_seconds"]


def test_simulators_get_their_own_metrics():
    result = run_benchmark(["2SLS (poly3)", "OLS (naive)", "OLS per cause + 5 PCs"],
                           ["demand", "multi_cause"], 1, progress=False)
    rows = {r["model"]: r for r in result["records"]}
    assert 0 < rows["2SLS (poly3)"]["cf_mse"] < 1
    # adjusting for principal components of the causes removes part of the confounding
    assert (rows["OLS per cause + 5 PCs"]["cause_rmse"]
            < 0.8 * rows["OLS (naive)"]["cause_rmse"])


def test_the_pc_adjustment_is_each_causes_own_identified_regression():
    """Closed form against one LinearRegression per cause on [a_j, scores]; the joint
    regression on every cause and the scores is rank deficient (the scores are linear
    in the causes), so the baseline must not be it."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LinearRegression
    from causalnn.benchmark._models import pc_adjusted_cause_effects
    from causalnn.datasets import make_multi_cause
    data = make_multi_cause(300, 12, 2, random_state=0)
    A, y = data.treatment, data.y
    scores = PCA(3, random_state=0).fit_transform(A)
    expected = [LinearRegression().fit(np.column_stack([A[:, j], scores]), y).coef_[0]
                for j in range(A.shape[1])]
    np.testing.assert_allclose(pc_adjusted_cause_effects(A, y, 3, 0), expected,
                               rtol=1e-10, atol=1e-12)
    joint = np.column_stack([np.ones(len(y)), A, scores])
    assert np.linalg.matrix_rank(joint) == A.shape[1] + 1 < joint.shape[1]


def test_outputs_and_readme_section(tmp_path):
    result = run_benchmark([CONSTANT], ["ihdp"], 2, progress=False)
    markdown = write_results(result, tmp_path, "causalnn bench --test")
    records = json.loads((tmp_path / "results.json").read_text())["records"]
    assert [r["replication"] for r in records] == [1, 2]
    assert (tmp_path / "results.csv").read_text().count("\n") == 3
    assert "| ihdp | constant | 2 / 2 |" in markdown
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- causalnn bench: start -->\nold\n"
                      "<!-- causalnn bench: end -->\noutro\n")
    update_readme(readme, markdown)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old" not in text
    assert "| ihdp | constant | 2 / 2 |" in text
    with pytest.raises(ValueError, match="readme"):
        update_readme(tmp_path / "results.md", markdown)


def test_machine_line_names_the_threads_the_fits_ran_with(tmp_path):
    import torch
    before = torch.get_num_threads()
    threads = 1 if before != 1 else 2  # differs from this process's setting
    result = run_benchmark([CONSTANT], ["ihdp"], 1, threads=threads, progress=False)
    assert torch.get_num_threads() == before
    assert result["records"][0]["torch_threads"] == threads
    markdown = write_results(result, tmp_path, "causalnn bench --test")
    assert f"({threads} thread{'' if threads == 1 else 's'})" in markdown


def test_save_markdown_writes_lines_or_text_into_a_new_folder(tmp_path, capsys):
    path = save_markdown(["| a |", "|---|"], tmp_path / "new" / "table.md")
    assert path.read_text() == "| a |\n|---|\n"
    assert f"written to {path}" in capsys.readouterr().out
    save_markdown("whole text\n", path)
    assert path.read_text() == "whole text\n"


def test_plots(tmp_path):
    pytest.importorskip("matplotlib")
    from causalnn.benchmark import plot_results
    result = run_benchmark([CONSTANT], ["ihdp"], 2, progress=False)
    names = sorted(p.name for p in plot_results(result, tmp_path))
    assert names == ["effects_ihdp.png", "errorbars_ihdp.png"]
    assert (tmp_path / "errorbars_ihdp.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_bench(tmp_path, capsys):
    code = main(["bench", "--datasets", "demand", "--replications", "1", "--models",
                 "2SLS (poly3)", "--out", str(tmp_path), "--quiet", "--no-plots"])
    assert code == 0
    assert "| demand | 2SLS (poly3) | 1 / 1 |" in capsys.readouterr().out
    assert (tmp_path / "results.csv").exists()
    assert main(["bench", "--datasets", "ihdp", "--replications", "11"]) == 2
    assert "replications: dataset 'ihdp' has 10" in capsys.readouterr().err


def test_dask_local_cluster_gives_the_same_records():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        on_dask = run_benchmark([CONSTANT], ["ihdp"], 3, backend="dask",
                                scheduler=cluster.scheduler_address, progress=False)
    local = run_benchmark([CONSTANT], ["ihdp"], 3, progress=False)
    keep = ("replication", "status", "pehe_in", "pehe_out", "ate_out")
    assert [{k: r[k] for k in keep} for r in on_dask["records"]] == [
        {k: r[k] for k in keep} for r in local["records"]]


def test_econml_t_learner_runs_on_the_same_split():
    pytest.importorskip("econml")
    result = run_benchmark(["EconML T-learner"], ["ihdp"], 1, progress=False)
    row = result["records"][0]
    assert row["status"] == "ok" and row["pehe_out"] < 3.0


def test_grid_search_over_causalnn_through_joblibs_dask_backend():
    distributed = pytest.importorskip("distributed")
    import joblib
    import sklearn
    from sklearn.model_selection import GridSearchCV

    data = load_replication("ihdp", 1)
    small = dict(representation_layers=(16,), head_layers=(8,), max_epochs=3,
                 random_state=0)
    with sklearn.config_context(enable_metadata_routing=True):
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                      dashboard_address=None) as cluster, \
                distributed.Client(cluster):
            with joblib.parallel_config(backend="dask"):
                search = GridSearchCV(TARNet(**small), {"head_layers": [(8,), (4,)]},
                                      cv=2, n_jobs=-1).fit(
                    data.X, data.y, treatment=data.treatment)
    assert len(search.cv_results_["mean_test_score"]) == 2
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
