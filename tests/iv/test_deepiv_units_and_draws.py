"""DeepIV (found by mutation testing): marginal_effect of a vector treatment is in units
of y per unit of each column (finite differences of predict_outcome), and the held-out
second-stage loss that drives early stopping uses the validation draws, not the
training steps' draws."""
import warnings

import numpy as np

from causalnn import DeepIV
from causalnn.estimators.iv import _deepiv


def test_deepiv_marginal_effect_of_a_vector_treatment_per_column():
    rng = np.random.RandomState(0)
    n = 300
    z = rng.randn(n, 2)
    e = rng.randn(n)
    T = np.column_stack([z[:, 0] + e, 100.0 * (z[:, 1] + 0.5 * rng.randn(n))])  # units 1:100
    X = rng.randn(n, 2)
    y = T[:, 0] + 0.01 * T[:, 1] + e
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = DeepIV(max_epochs=3, patience=None, n_components=2, first_stage_layers=(8,),
                     outcome_layers=(16,), random_state=0).fit(X, y, treatment=T,
                                                                 instrument=z)
    grad = est.marginal_effect(X, T=T)
    assert grad.shape == (n, 2)
    for j in range(2):
        step = 1e-6 * np.abs(T[:, j]).mean()
        up, down = T.copy(), T.copy()
        up[:, j] += step
        down[:, j] -= step
        numeric = (est.predict_outcome(X, up) - est.predict_outcome(X, down)) / (2 * step)
        at = est.predict_outcome(X, T)
        smooth = np.abs(est.predict_outcome(X, up) - 2 * at
                        + est.predict_outcome(X, down)) / np.abs(at).max() < 1e-8
        assert smooth.mean() > 0.9
        np.testing.assert_allclose(grad[smooth, j], numeric[smooth], rtol=1e-4,
                                   atol=1e-6 * np.abs(numeric).max())


def test_held_out_second_stage_loss_uses_the_validation_draws(monkeypatch):
    seen = []
    original = _deepiv.DeepIV._outcome_at_draws

    def spy(module, distribution, x, n_draws, generator):
        seen.append((module.training, n_draws))
        return original(module, distribution, x, n_draws, generator)

    monkeypatch.setattr(_deepiv.DeepIV, "_outcome_at_draws", staticmethod(spy))
    rng = np.random.RandomState(0)
    n = 200
    z, e = rng.randn(n), rng.randn(n)
    t = z + e
    y = 2 * t + e
    X = rng.randn(n, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        DeepIV(n_treatment_samples=3, max_epochs=2, patience=None, n_components=2,
               first_stage_layers=(8,), outcome_layers=(8,), random_state=0).fit(
            X, y, treatment=t, instrument=z)
    assert {d for training, d in seen if training} == {2 * 3}
    assert {d for training, d in seen if not training} == {2 * _deepiv.VALIDATION_DRAWS}
