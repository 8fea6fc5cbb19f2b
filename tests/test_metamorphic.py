"""Metamorphic relations whose failure is a silently wrong number: a cause given in other
units, a refit of the same object, a large outcome offset, an outcome scale near the
limits of float64, two Series paired by position."""
import numpy as np
import pandas as pd
import pytest

from causalnn import DeepIV, Deconfounder, Dragonnet, TARNet
from causalnn.inference import aggregate_repeats, estimate_average_effect
from causalnn.metrics import pehe

SMALL = dict(representation_layers=(16,), head_layers=(8,), max_epochs=5, batch_size=64,
             random_state=0, device="cpu")


def _real_causes(n=300, m=6, seed=2):
    r = np.random.RandomState(seed)
    Z = r.randn(n, 2)
    A = Z @ r.randn(2, m) + 0.5 * r.randn(n, m)
    X = r.randn(n, 2)
    y = A @ np.linspace(-1, 1, m) + Z[:, 0] + X[:, 0] + 0.3 * r.randn(n)
    return X, y, A


@pytest.mark.parametrize("factor", [10.0, 1000.0, 0.001])
def test_ppca_deconfounder_rescales_only_the_rescaled_causes_coefficient(factor):
    """A cause in other units (kg -> g) rescales its coefficient and nothing else
    (docs/deconfounder.md). PPCA of the raw causes gave the large-unit cause a factor of
    its own, which absorbed its effect: -0.76 -> -0.004 for a true -1 at a factor of 10."""
    X, y, A = _real_causes()
    kw = dict(n_factors=2, predictive_check=False, random_state=0)
    given = Deconfounder(**kw).fit(X, y, treatment=A)
    assert given.factor_model_kind_ == "ppca"
    A2 = A.copy()
    A2[:, 0] *= factor
    other = Deconfounder(**kw).fit(X, y, treatment=A2)
    coef = other.coef_.copy()
    coef[0] *= factor
    np.testing.assert_allclose(coef, given.coef_, rtol=0, atol=1e-9)


def test_a_refit_keeps_no_fitted_attribute_of_the_earlier_fit():
    r = np.random.RandomState(0)
    n, m = 200, 6
    X = r.randn(n, 2)
    Zl = r.randn(n, 1)
    A = (r.rand(n, m) < 1 / (1 + np.exp(-Zl))).astype(float)
    y = A @ np.linspace(-1, 1, m) + Zl[:, 0] + X[:, 0] + 0.3 * r.randn(n)
    kw = dict(n_factors=2, outcome_layers=(8,), max_epochs=5, factor_max_epochs=20,
              predictive_check=False, random_state=0, device="cpu")
    refit = Deconfounder(**kw, outcome_model="linear").fit(X, y, treatment=A)
    refit.set_params(outcome_model="neural").fit(X, y, treatment=A)
    fresh = Deconfounder(**kw, outcome_model="neural").fit(X, y, treatment=A)
    assert not hasattr(refit, "coef_")    # the linear fit's, beside neural effects
    np.testing.assert_array_equal(refit.cause_effects(), fresh.cause_effects())
    # the base estimators: fit_many's datasets carry no earlier fit's overlap share
    Xb, yb, tb = r.randn(120, 3), r.randn(120), (np.arange(120) % 2).astype(float)
    est = Dragonnet(**SMALL).fit(Xb, yb, treatment=tb)
    assert hasattr(est, "overlap_share_")
    fits = est.fit_many(Xb, np.stack([yb, yb]), treatment=tb)
    assert not any(hasattr(f, "overlap_share_") for f in fits)


def _grid_outcome(n, seed=0):
    """y on a 2**-10 grid, so that y + 2**k is exact for the offsets used below."""
    r = np.random.RandomState(seed)
    X = r.randn(n, 3)
    t = (r.rand(n) < 1 / (1 + np.exp(-X[:, 0]))).astype(float)
    y = np.round((X[:, 0] + t * (1 + X[:, 1]) + 0.3 * r.randn(n)) * 1024) / 1024
    return X, y, t


def test_ate_inference_is_exact_under_a_large_outcome_offset():
    """The plug-in of ate_inference equals est.ate and does not move with y + 2**40
    (the networks are bit-identical; mu1 - mu0 in the units of y lost ~1e-4 per row)."""
    X, y, t = _grid_outcome(200)
    base = TARNet(**SMALL).ate_inference(X, y, treatment=t, cv=2)
    shifted = TARNet(**SMALL).ate_inference(X, y + 2.0 ** 40, treatment=t, cv=2)
    assert shifted.plugin_estimate == base.plugin_estimate
    # the AIPW residuals y - mu still carry the rounding of the stored y_mean_ to
    # ulp(2**40) = 1.2e-4 (a shift common to mu0 and mu1): times the weights'
    # imbalance, a few 1e-6 in the estimate and ~1e-5 relative in its stderr
    assert shifted.point_estimate == pytest.approx(base.point_estimate, rel=0, abs=1e-5)
    assert shifted.stderr == pytest.approx(base.stderr, rel=1e-4)


def test_neural_deconfounder_effects_are_exact_under_a_large_outcome_offset():
    X, y, A = _real_causes(200)
    y = np.round(y * 1024) / 1024
    kw = dict(n_factors=2, outcome_model="neural", outcome_layers=(8,), max_epochs=5,
              predictive_check=False, random_state=0, device="cpu")
    base = Deconfounder(**kw).fit(X, y, treatment=A)
    shifted = Deconfounder(**kw).fit(X, y + 2.0 ** 40, treatment=A)
    np.testing.assert_array_equal(shifted.cause_effects(), base.cause_effects())
    np.testing.assert_array_equal(shifted.effect(X), base.effect(X))


@pytest.mark.parametrize("power", [-540, 0, 520])
def test_standard_errors_scale_with_the_outcome_at_any_magnitude(power):
    """Under y -> a y (a power of two) every number scales by a exactly; squaring the
    influence values gave a stderr of 0 below ~1e-154 and inf above ~1e154."""
    r = np.random.RandomState(0)
    n = 300
    x = r.randn(n)
    e = 1 / (1 + np.exp(-x))
    t = (r.rand(n) < e).astype(float)
    mu0, mu1 = x, x + 1
    y = np.where(t == 1, mu1, mu0) + r.randn(n)
    a = 2.0 ** power
    unit = estimate_average_effect(y, t, mu0, mu1, e)
    scaled = estimate_average_effect(a * y, t, a * mu0, a * mu1, e)
    assert scaled.point_estimate / a == pytest.approx(unit.point_estimate, rel=1e-12)
    assert scaled.stderr / a == pytest.approx(unit.stderr, rel=1e-12)
    both = aggregate_repeats([scaled, estimate_average_effect(a * y, t, a * mu0,
                                                              a * (mu1 + 0.1), e)])
    ref = aggregate_repeats([unit, estimate_average_effect(y, t, mu0, mu1 + 0.1, e)])
    assert both.stderr / a == pytest.approx(ref.stderr, rel=1e-12)


def test_pehe_refuses_two_series_in_different_orders():
    tau = pd.Series(np.arange(5.0), index=list("abcde"))
    with pytest.raises(ValueError, match="estimated_effect is a pandas Series whose index "
                                         "has the same labels as true_effect.index"):
        pehe(tau, tau.sort_values(ascending=False))   # a perfect estimate, sorted
    assert pehe(tau, tau.copy()) == 0.0
    assert pehe(tau, tau.to_numpy()[::-1]) > 0   # numpy: by position, as documented


def test_deepiv_refit_with_another_treatment_type_leaves_no_stale_attribute():
    r = np.random.RandomState(0)
    n = 200
    X, z, u = r.randn(n, 2), r.randn(n), r.randn(n)
    tc = z + 0.5 * u + X[:, 0]
    y = 2 * tc + X[:, 1] + u + 0.1 * r.randn(n)
    td = np.digitize(tc, [-1, 1]).astype(float)
    kw = dict(n_components=2, first_stage_layers=(8,), outcome_layers=(8,), max_epochs=3,
              random_state=0, device="cpu")
    fresh = DeepIV(**kw).fit(X, y, treatment=tc, instrument=z)
    refit = DeepIV(**kw, treatment_type="discrete").fit(X, y, treatment=td, instrument=z)
    refit.set_params(treatment_type="continuous").fit(X, y, treatment=tc, instrument=z)
    fitted = {k for k in vars(fresh) if k.endswith("_") and not k.startswith("_")}
    assert {k for k in vars(refit) if k.endswith("_") and not k.startswith("_")} == fitted



@pytest.mark.parametrize("bad", ["X", "treatment"])
def test_an_input_error_at_refit_leaves_the_earlier_fit_whatever_input_was_wrong(bad):
    """One rule for every input error: bad X (wrong length) and a bad treatment (not
    0/1) alike are refused before anything changes; a later failure unfits."""
    X, y, t = _grid_outcome(60)
    est = TARNet(**SMALL).fit(X, y, treatment=t)
    before = est.effect(X)
    with pytest.raises(ValueError):
        if bad == "X":
            est.fit(X[:-1], y, treatment=t)
        else:
            est.fit(X, y, treatment=t * 2)
    np.testing.assert_array_equal(est.effect(X), before)
