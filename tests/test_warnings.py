"""Warnings point at the user's line and say what they concern (sixth audit round)."""
import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from causalnn import CEVAE, DeepIV, TARNet
from causalnn.datasets import make_demand
from causalnn.exceptions import ConvergenceWarning, ProxyAdjustmentWarning
from causalnn.inference import OverlapWarning


def _data(n=200, seed=0, overlap=1.0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 3))
    t = rng.binomial(1, 1 / (1 + np.exp(-overlap * X[:, 0])))
    return X, X[:, 1] + t + 0.1 * rng.normal(size=n), t


def test_convergence_warning_names_the_estimator_and_points_at_the_caller():
    X, y, t = _data()
    with pytest.warns(ConvergenceWarning, match=r"before early stopping \(TARNet\)") as rec:
        TARNet(representation_layers=(8,), head_layers=(4,), max_epochs=2, patience=5,
               random_state=0).fit(X, y, treatment=t)
    assert {w.filename for w in rec if w.category is ConvergenceWarning} == {__file__}


def test_deepiv_names_each_stage_that_ran_out_of_epochs():
    d = make_demand(300, random_state=0)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        DeepIV(max_epochs=1, patience=5, random_state=0).fit(
            d.X, d.y, treatment=d.treatment, instrument=d.instrument)
    messages = [str(w.message) for w in rec if w.category is ConvergenceWarning]
    assert any("(DeepIV, first stage)" in m for m in messages)
    assert any("(DeepIV, second stage)" in m for m in messages)
    assert all(w.filename == __file__ for w in rec if w.category is ConvergenceWarning)


def test_cevae_inference_warnings_have_their_class_and_point_at_the_caller():
    """CEVAE overrides ate_inference: through that extra layer a fixed stacklevel
    pointed inside the library."""
    X, y, t = _data(n=300, overlap=6.0)  # poor overlap: the OverlapWarning fires too
    est = CEVAE(latent_dim=2, hidden_layers=(8,), max_epochs=2, patience=None,
                n_samples=5, random_state=0)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        est.ate_inference(X, y, treatment=t, cv=2,
                          propensity_model=LogisticRegression(C=1e6, max_iter=1000))
    categories = {w.category: w.filename for w in rec}
    assert categories.get(ProxyAdjustmentWarning) == __file__
    assert categories.get(OverlapWarning) == __file__
