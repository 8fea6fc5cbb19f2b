"""The benchmark's reported numbers against closed forms: the standard error of the
table, the truth an interval's coverage is judged by, and each replication's seed."""
import numpy as np
import pytest

from causalnn.benchmark import ModelSpec, load_replication, run_benchmark, summarize
from causalnn.benchmark._runner import score


def test_table_error_is_the_standard_error_of_the_mean_over_replications():
    records = [{"dataset": "ihdp", "model": "m", "family": "f", "status": "ok",
                "error": "", "device": "cpu", "pehe_out": v, "fit_seconds": 1.0}
               for v in (1.0, 2.0, 3.0, 4.0)]
    stats = summarize({"records": records})[0]["metrics"]["pehe_out"]
    assert stats["mean"] == pytest.approx(2.5)
    assert stats["se"] == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2)  # 0.6455
    assert stats["median"] == pytest.approx(2.5)


class _IntervalAround:
    """Zero effects and an ATE interval of half-width 1e-9 around a given value."""

    def __init__(self, centre):
        self.centre = centre

    def fit(self, data):
        return self

    def effect(self, X):
        return np.zeros(len(X))

    def ate_interval(self, X):
        return self.centre - 1e-9, self.centre + 1e-9


def test_coverage_is_judged_against_the_true_ate_of_the_test_rows():
    data = load_replication("ihdp", 1, 0)
    test_truth = float(np.mean(data.ite[data.test_index]))
    all_rows_truth = float(np.mean(data.ite))
    assert abs(test_truth - all_rows_truth) > 1e-3
    assert score(_IntervalAround(test_truth), data)["coverage"] == 1.0
    assert score(_IntervalAround(all_rows_truth), data)["coverage"] == 0.0


def test_each_replication_gets_the_seed_plus_its_number():
    seeds = []

    def make(seed, device):
        seeds.append(seed)
        return _IntervalAround(0.0)

    spec = ModelSpec("recorder", make, ["binary"], "test")
    run_benchmark([spec], ["ihdp"], 3, seed=10, progress=False)
    # a warm-up fit may build the model once more; the replications get 11, 12, 13
    assert seeds[-3:] == [11, 12, 13]


def test_batched_groups_get_their_own_seeds():
    """--batch-size splits replications sharing a design into groups; each group's
    fit_many starts from seed + (its first replication - 1), so no two groups share
    initial weights and batch order (they did: every group got ``seed``)."""
    from causalnn import TARNet
    from causalnn.benchmark._models import _Causalnn
    seeds = []

    def make(seed, device):
        seeds.append(seed)
        return _Causalnn(TARNet(representation_layers=(8,), head_layers=(4,),
                                max_epochs=2, random_state=seed, device=device))

    spec = ModelSpec("tiny TARNet", make, ["binary"], "test", batched=True)
    result = run_benchmark([spec], ["make_ihdp"], 4, seed=5, batch_size=2,
                           progress=False)
    assert [r["status"] for r in result["records"]] == ["ok"] * 4
    assert seeds[-2:] == [5, 7]


def test_the_time_ratio_note_says_when_the_first_model_has_no_fit_time():
    from causalnn.benchmark import format_table

    def record(model, status, seconds):
        return {"dataset": "ihdp", "model": model, "family": "f", "status": status,
                "error": "boom" if status == "failed" else "", "device": "cpu",
                "pehe_out": 1.0, "fit_seconds": seconds}

    table = format_table({"records": [record("first", "failed", np.nan),
                                      record("second", "ok", 2.0),
                                      record("third", "ok", 4.0)]})
    assert "| ihdp | third | 1 / 1 |" in table and "| 2.00 | cpu |" in table
    assert ("over those of second (the first model on ihdp with a fit time; the grid's "
            "first, first, has none)") in table
