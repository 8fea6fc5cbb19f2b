"""score(..., sample_weight=w) is the weighted R^2."""
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import r2_score

from causalnn import TARNet


def test_score_uses_the_sample_weight():
    rng = np.random.default_rng(0)
    n = 200
    X = rng.normal(size=(n, 3))
    t = (rng.random(n) < 0.5).astype(float)
    y = X[:, 0] + t + rng.normal(size=n)
    est = TARNet(representation_layers=(16,), head_layers=(8,), max_epochs=5,
                 batch_size=64, random_state=0).fit(X, y, treatment=t)
    w = np.where(X[:, 1] > 0, 5.0, 0.2)
    mu = est.predict_outcome(X, t)
    assert est.score(X, y, treatment=t, sample_weight=w) == pytest.approx(
        r2_score(y, mu, sample_weight=w), rel=1e-12)
    assert est.score(X, y, treatment=t, sample_weight=w) != pytest.approx(
        est.score(X, y, treatment=t), rel=1e-6)


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(1)
    n = 80
    X = pd.DataFrame(rng.normal(size=(n, 2)), columns=["a", "b"], index=np.arange(n) * 3)
    t = pd.Series((rng.random(n) < 0.5).astype(float), index=X.index)
    y = pd.Series(X["a"] + t + rng.normal(size=n), index=X.index)
    est = TARNet(representation_layers=(8,), head_layers=(4,), max_epochs=3,
                 random_state=0).fit(X, y, treatment=t)
    return est, X, y, t


def test_a_sample_weight_series_in_another_row_order_is_refused(fitted):
    est, X, y, t = fitted
    w = pd.Series(np.linspace(0.1, 3.0, len(X)), index=X.index)
    assert est.score(X, y, treatment=t, sample_weight=w) == pytest.approx(
        est.score(X, y, treatment=t, sample_weight=w.to_numpy()), rel=1e-12)
    with pytest.raises(ValueError, match="sample_weight is a pandas Series"):
        est.score(X, y, treatment=t, sample_weight=w.iloc[::-1])  # was paired by position


@pytest.mark.parametrize("weights, message", [
    (np.ones(5), "sample_weight has 5 rows but X has 80"),
    (np.full(80, np.nan), "sample_weight"),
    (np.r_[-1.0, np.ones(79)], "non-negative with a positive sum"),
    (np.zeros(80), "non-negative with a positive sum"),
])
def test_bad_sample_weight_is_refused_by_name(fitted, weights, message):
    est, X, y, t = fitted
    with pytest.raises(ValueError, match=message):
        est.score(X, y, treatment=t, sample_weight=weights)


def test_the_deconfounder_scores_with_checked_weights():
    from causalnn import Deconfounder
    from causalnn.datasets import make_multi_cause
    data = make_multi_cause(120, 6, 2, random_state=0)
    est = Deconfounder(factor_model="ppca", n_factors=2, outcome_model="linear",
                       random_state=0).fit(None, data.y, treatment=data.treatment)
    w = np.linspace(0.5, 2.0, 120)
    mu = est._factual_outcome(None, data.treatment)
    assert est.score(None, data.y, treatment=data.treatment, sample_weight=w) == \
        pytest.approx(r2_score(data.y, mu, sample_weight=w), rel=1e-12)
    with pytest.raises(ValueError, match="sample_weight has 7 rows"):
        est.score(None, data.y, treatment=data.treatment, sample_weight=np.ones(7))
