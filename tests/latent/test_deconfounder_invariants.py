"""Deconfounder invariants: the linear outcome model's fitted values reproduce the
outcome's mean (least squares with an intercept), and the predictive check's factor
model never sees the entries it is checked on."""
import numpy as np
import pytest

from causalnn import Deconfounder


def test_linear_fitted_values_average_to_the_outcome_mean_with_offset_covariates():
    """``y = b0 + a beta + c gamma`` is fitted by ridge on ``beta`` and least squares
    with an intercept for the rest, so the in-sample fitted values (each unit at its
    observed causes and own substitute confounder) have the mean of ``y`` exactly
    (the normal equation of the intercept). Covariates far from 0 make the intercept
    carry their mean times ``gamma``."""
    rng = np.random.RandomState(0)
    n, m = 300, 8
    Z, X = rng.randn(n, 2), 5.0 + rng.randn(n, 2)
    A = Z @ rng.randn(2, m) + 0.5 * rng.randn(n, m)
    y = A @ rng.randn(m) + Z @ rng.randn(2) + 2.0 * X.sum(1) + rng.randn(n)
    est = Deconfounder(factor_model="ppca", n_factors=2, predictive_check=False,
                       random_state=0).fit(X, y, treatment=A)
    fitted = est.predict_outcome(X, A, observed_causes=A)
    assert fitted.mean() == pytest.approx(y.mean(), rel=1e-9, abs=1e-9)
    # and it is the prediction the estimator's own score uses
    r2 = 1 - np.sum((y - fitted) ** 2) / np.sum((y - y.mean()) ** 2)
    assert est.score(X, y, treatment=A) == pytest.approx(r2, rel=1e-9)


def test_the_predictive_checks_model_is_fit_without_the_held_out_entries(monkeypatch):
    """Wang & Blei's check holds out entries, fits the factor model to the rest and
    asks how likely the held-out ones are: the check's fit must hide them (a fit that
    saw them would grade its own homework). The hidden entries are the ones the check
    scores: units without any have a NaN p-value. The final model sees everything."""
    rng = np.random.RandomState(0)
    n, m = 120, 10
    A = rng.randn(n, 2) @ rng.randn(2, m) + rng.randn(n, m)
    y = A[:, 0] + rng.randn(n)
    masks = []
    fit_factors = Deconfounder._fit_factors

    def spy(self, A, observed, generator):
        masks.append(np.array(observed, dtype=bool))
        return fit_factors(self, A, observed, generator)

    monkeypatch.setattr(Deconfounder, "_fit_factors", spy)
    est = Deconfounder(factor_model="ppca", n_factors=2, holdout_fraction=0.2,
                       n_replicates=20, random_state=0).fit(None, y, treatment=A)
    check, final = masks
    assert final.all()
    hidden = ~check
    # binomial(1200, 0.2): SE of the fraction 0.012
    assert hidden.mean() == pytest.approx(0.2, abs=0.05)
    np.testing.assert_array_equal(np.isnan(est.predictive_check_pvalues_),
                                  ~hidden.any(axis=1))
