"""DeepIV invariants against closed forms: the first-stage likelihood under a change of
the treatment's units (the Jacobian), the first stage's indifference to the instrument's
units, and the first-stage F statistic and partial R^2 of the weak-instrument report."""
import warnings

import numpy as np
import pandas as pd
import pytest

from causalnn import DeepIV
from causalnn.datasets import make_demand, make_linear_iv
from causalnn.exceptions import WeakInstrumentWarning

FAST = dict(first_stage_layers=(16, 16), outcome_layers=(16, 16), n_components=3,
            max_epochs=3, patience=None, batch_size=64)


def _linear_iv(n=300, seed=0):
    data = make_linear_iv(n, strength=1.0, random_state=seed)
    return data.X, data.y, data.treatment, data.instrument


def _fit(x, y, t, z, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DeepIV(**{**FAST, **kw}, random_state=0).fit(x, y, treatment=t, instrument=z)


def test_first_stage_log_likelihood_carries_the_jacobian_of_the_treatment_units():
    """The treatment is standardised before the first stage, so a fit on ``c t`` is the
    fit on ``t``; the density of the raw treatment then changes by the Jacobian:
    ``log f(c t) = log f(t) - log c`` (change of variables)."""
    x, y, t, z = _linear_iv()
    c = 10.0
    base = _fit(x, y, t, z).first_stage_log_likelihood(x, t, z)
    scaled = _fit(x, y, c * t, z).first_stage_log_likelihood(x, c * t, z)
    assert scaled == pytest.approx(base - np.log(c), abs=1e-6)


def test_first_stage_does_not_depend_on_the_instruments_units():
    """Instruments are standardised with the fit's own offset and scale, at fit and at
    ``first_stage_log_likelihood``/``causal_validation_loss``: fits on ``z`` and on
    ``10 z + 3`` are one model and score the same rows alike."""
    x, y, t, z = _linear_iv()
    a = _fit(x, y, t, z)
    b = _fit(x, y, t, 10.0 * z + 3.0)
    assert b.first_stage_log_likelihood(x, t, 10.0 * z + 3.0) == pytest.approx(
        a.first_stage_log_likelihood(x, t, z), abs=1e-6)
    assert b.causal_validation_loss(x, y, 10.0 * z + 3.0, n_draws=20) == pytest.approx(
        a.causal_validation_loss(x, y, z, n_draws=20), rel=1e-6)


def _t_statistic_squared(target, x, z):
    """Squared OLS t statistic of ``z`` in ``target ~ 1 + x + z`` (classical standard
    error): for one instrument it is the partial F statistic."""
    design = np.column_stack([np.ones(len(z)), x, z])
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    residual = target - design @ coef
    dof = len(z) - design.shape[1]
    covariance = residual @ residual / dof * np.linalg.inv(design.T @ design)
    return coef[-1] ** 2 / covariance[-1, -1], dof


def test_first_stage_strength_is_the_weakest_columns_partial_f_and_r2():
    """With a two-column treatment and one instrument, the reported strength is that of
    the column the instrument moves least (every column needs it): ``F = t^2`` of the
    instrument in that column's OLS, and partial ``R^2 = t^2 / (t^2 + dof)``."""
    rng = np.random.RandomState(1)
    n = 300
    x, z = rng.randn(n, 1), rng.randn(n, 1)
    t = np.column_stack([z[:, 0] + x[:, 0] + rng.randn(n),
                         0.3 * z[:, 0] - x[:, 0] + rng.randn(n)])
    y = t[:, 0] - t[:, 1] + 0.1 * rng.randn(n)
    est = _fit(x, y, t, z, max_epochs=1)
    stats = [_t_statistic_squared(t[:, j], x[:, 0], z[:, 0]) for j in range(2)]
    f = [s[0] for s in stats]
    assert f[1] < f[0]  # the design: the second column is the weak one
    assert est.first_stage_f_statistic_ == pytest.approx(f[1], rel=1e-8)
    assert est.first_stage_strength_ == pytest.approx(f[1] / (f[1] + stats[1][1]),
                                                      rel=1e-8)


@pytest.mark.parametrize("n", [8, 9])
def test_first_stage_strength_is_nan_without_residual_degrees_of_freedom(n):
    """With no more rows than the check's design columns (an intercept, 6 covariates
    and 2 instruments: 9), the linear first stage interpolates the treatment: the F
    statistic is undefined, not the 1e28 that round-off over round-off gave, which read
    as a very strong instrument."""
    rng = np.random.RandomState(0)
    x, z = rng.randn(n, 6), rng.randn(n, 2)
    t = z.sum(axis=1) + x[:, 0] + rng.randn(n)
    y = t + rng.randn(n)
    with pytest.warns(WeakInstrumentWarning, match="cannot be assessed: the %d rows are "
                      "no more than the 9 columns" % n):
        est = DeepIV(**{**FAST, "max_epochs": 1}, validation_fraction=0.0,
                     random_state=0).fit(x, y, treatment=t, instrument=z)
    assert np.isnan(est.first_stage_f_statistic_) and np.isnan(est.first_stage_strength_)
    # one row more leaves one residual degree of freedom: a number again
    x, z, t = np.vstack([x, x[:1] + 1]), np.vstack([z, z[:1]]), np.append(t, t[0] + 2)
    est = _fit(x, np.append(y, y[0]), t, z, max_epochs=1, validation_fraction=0.0)
    assert np.isfinite(est.first_stage_f_statistic_) == (n == 9)


@pytest.mark.parametrize("call", ["fit", "causal_validation_loss",
                                  "first_stage_log_likelihood"])
def test_numpy_X_with_series_sorted_apart_is_refused(call):
    """With a numpy X there is no index to check against: the pandas y, treatment and
    instrument must then agree with each other, or rows are paired with other rows'."""
    data = make_demand(200, rho=0.5, random_state=0)
    labels = np.arange(200) * 3
    y = pd.Series(data.y, index=labels)
    t = pd.Series(np.ravel(data.treatment), index=labels)
    z = pd.Series(np.ravel(data.instrument), index=labels).sample(frac=1.0, random_state=0)
    est = DeepIV(max_epochs=1, random_state=0)
    with pytest.raises(ValueError, match="instrument is a pandas Series whose index has "
                                         "the same labels as (y|treatment).index in "
                                         "another order"):
        if call == "fit":
            est.fit(data.X, y, treatment=t, instrument=z)
        else:
            est.fit(data.X, data.y, treatment=data.treatment, instrument=data.instrument)
            if call == "causal_validation_loss":
                est.causal_validation_loss(data.X, y, z)
            else:
                est.first_stage_log_likelihood(data.X, t, z)


def test_unnamed_levels_and_instruments_after_a_named_fit_are_warned_about():
    """As X: after a fit on named treatment and instrument columns, an array of several
    columns (or a vector of several levels) is taken in the fit's order, with the
    warning scikit-learn gives for X; DataFrames are matched by name, silently."""
    rng = np.random.RandomState(0)
    n = 200
    x = rng.randn(n, 2)
    z = pd.DataFrame(rng.randn(n, 2), columns=["z1", "z2"])
    t = pd.DataFrame({"p": z.z1 + rng.randn(n), "q": z.z2 + rng.randn(n)})
    est = _fit(x, t.p - t.q + rng.randn(n), t, z, max_epochs=1)
    order = "taken in the order seen in fit"
    with pytest.warns(UserWarning, match=f"T1 does not have valid feature names.*{order}"):
        est.effect(x, T0=0.0, T1=t.to_numpy())
    with pytest.warns(UserWarning, match=f"T1 is a vector without .*{order}"):
        est.effect(x, T0=0.0, T1=np.array([1.0, 2.0]))
    with pytest.warns(UserWarning, match=f"instrument does not have valid .*{order}"):
        est.first_stage_log_likelihood(x, t, z.to_numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        by_name = est.first_stage_log_likelihood(x, t, z[["z2", "z1"]])
        np.testing.assert_array_equal(est.effect(x, T0=0.0, T1=t[["q", "p"]]),
                                      est.effect(x, T0=0.0, T1=t))
    assert by_name == est.first_stage_log_likelihood(x, t, z)
