"""ate_inference on a binary outcome: the estimate is estimate_average_effect of the
nuisances, with no offset taken off y (the probabilities mu0, mu1 carry none); TMLE
there must accept y in {0, 1} whatever its median."""
import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from causalnn import TARNet
from causalnn.inference import estimate_average_effect

TINY = dict(representation_layers=(16,), head_layers=(8,), max_epochs=5,
            batch_size=64, patience=None, random_state=0)


@pytest.mark.parametrize("method", ["aipw", "tmle"])
def test_binary_outcome_mostly_ones_is_not_shifted(method):
    rng = np.random.default_rng(0)
    n = 300
    X = rng.normal(size=(n, 3))
    t = rng.binomial(1, 1 / (1 + np.exp(-X[:, 0]))).astype(float)
    y = rng.binomial(1, 1 / (1 + np.exp(-(1.5 + X[:, 1] + t)))).astype(float)
    assert np.median(y) == 1  # most outcomes are 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = TARNet(**TINY).fit(X, y, treatment=t)
        res = est.ate_inference(X, y, treatment=t, cv=None, method=method)
    mu0, mu1 = est.predict_outcome(X, 0), est.predict_outcome(X, 1)
    e = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(
        X, t).predict_proba(X)[:, 1]
    ref = estimate_average_effect(y, t, mu0, mu1, e, method=method, outcome="binary")
    assert res.point_estimate == pytest.approx(ref.point_estimate, rel=1e-9, abs=1e-12)
    assert res.stderr == pytest.approx(ref.stderr, rel=1e-9)
