"""benchmark._runner.score against hand-computed values with stand-in models whose
predictions are known exactly."""
import numpy as np
import pytest

from causalnn.benchmark import load_replication
from causalnn.benchmark._runner import score
from causalnn.datasets import demand_structural


class _RowEffects:
    """Effects that differ between rows (x1, a continuous IHDP covariate); records the
    rows ``ate_interval`` is asked about."""

    def __init__(self):
        self.interval_rows = None

    def effect(self, X):
        return 4.0 + np.asarray(X)[:, 0]

    def ate_interval(self, X):
        self.interval_rows = np.asarray(X)
        return -1e9, 1e9


def test_ate_errors_use_the_effects_of_their_own_rows():
    data = load_replication("ihdp", 1, 0)
    model = _RowEffects()
    result = score(model, data)
    for part, idx in (("in", data.fit_index), ("out", data.test_index)):
        tau_hat = 4.0 + data.X[idx, 0]
        assert result[f"ate_{part}"] == pytest.approx(
            abs(np.mean(data.ite[idx]) - np.mean(tau_hat)), rel=1e-12)
        assert result[f"pehe_{part}"] == pytest.approx(
            np.sqrt(np.mean((data.ite[idx] - tau_hat) ** 2)), rel=1e-12)
    # the two parts' mean effects differ, so a swap would show
    assert abs(np.mean(data.X[data.fit_index, 0]) - np.mean(data.X[data.test_index, 0])) > 1e-3


def test_the_ate_interval_is_asked_about_the_test_rows():
    data = load_replication("ihdp", 1, 0)
    model = _RowEffects()
    assert score(model, data)["coverage"] == 1.0
    np.testing.assert_array_equal(model.interval_rows, data.X[data.test_index])


class _ShiftedDemand:
    def predict_outcome(self, X, treatment):
        return demand_structural(X, treatment) + 0.5


def test_counterfactual_mse_is_the_mean_squared_error():
    data = load_replication("demand", 1, 0)
    assert score(_ShiftedDemand(), data)["cf_mse"] == pytest.approx(0.25, rel=1e-9)


class _ShiftedCauses:
    def __init__(self, effects, shift):
        self.effects, self.shift = effects, shift

    def cause_effects(self):
        return self.effects + self.shift


def test_cause_rmse_is_the_root_mean_squared_error():
    data = load_replication("multi_cause", 1, 0)
    shift = np.where(np.arange(len(data.effects)) % 2 == 0, 0.5, -0.5)
    assert score(_ShiftedCauses(data.effects, shift), data)["cause_rmse"] == \
        pytest.approx(0.5, rel=1e-9)


def test_the_effects_kept_for_the_plot_are_truth_then_estimate_on_the_test_rows():
    data = load_replication("ihdp", 1, 0)
    truth, estimate = score(_RowEffects(), data)["_effects"]
    np.testing.assert_array_equal(truth, data.ite[data.test_index])
    np.testing.assert_allclose(estimate, 4.0 + data.X[data.test_index, 0])
