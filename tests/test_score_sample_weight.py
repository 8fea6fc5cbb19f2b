"""score(..., sample_weight=w) is the weighted R^2."""
import numpy as np
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
