"""Closed-form checks of the AIPW / TMLE / plug-in estimators from given nuisances."""
import numpy as np
import pytest
from scipy.special import expit

from causalnn.inference import (AverageEffectResult, OverlapWarning, aipw,
                                check_overlap, estimate_average_effect, overlap_summary,
                                tmle)
from causalnn.losses import fit_logistic_fluctuation


def nuisance_data(n=2000, seed=0, binary=False):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    e = expit(0.8 * x)
    t = rng.binomial(1, e).astype(float)
    if binary:
        mu0, mu1 = expit(x - 0.5), expit(x + 0.5)
        y = rng.binomial(1, np.where(t == 1, mu1, mu0)).astype(float)
    else:
        mu0, mu1 = x, x + 1 + 0.5 * x
        y = np.where(t == 1, mu1, mu0) + rng.normal(size=n)
    return y, t, mu0, mu1, e


def test_aipw_ate_equals_formula():
    y, t, mu0, mu1, e = nuisance_data()
    mu0b, mu1b = mu0 + 0.3, mu1 - 0.2  # any outcome model
    est, infl = aipw(y, t, mu0b, mu1b, e, "ate")
    by_hand = np.mean(mu1b - mu0b + t * (y - mu1b) / e - (1 - t) * (y - mu0b) / (1 - e))
    assert est == pytest.approx(by_hand, rel=1e-12)
    assert np.mean(infl) == pytest.approx(0, abs=1e-12)


def test_aipw_att_atc_equal_formula():
    y, t, mu0, mu1, e = nuisance_data(seed=1)
    att, _ = aipw(y, t, mu0, mu1, e, "att")
    by_hand = (np.sum(t * (y - mu0)) - np.sum((1 - t) * e / (1 - e) * (y - mu0))) / t.sum()
    assert att == pytest.approx(by_hand, rel=1e-12)
    atc, _ = aipw(y, t, mu0, mu1, e, "atc")
    by_hand = (np.sum((1 - t) * (mu1 - y)) + np.sum(t * (1 - e) / e * (y - mu1))) / (
        1 - t).sum()
    assert atc == pytest.approx(by_hand, rel=1e-12)


def test_influence_stderr_is_sample_std_over_sqrt_n():
    y, t, mu0, mu1, e = nuisance_data(seed=2)
    for target in ("ate", "att", "atc"):
        res = estimate_average_effect(y, t, mu0, mu1, e, target=target,
                                      propensity_clip=0.0)
        assert res.stderr == pytest.approx(
            np.std(res.influence, ddof=1) / np.sqrt(len(y)), rel=1e-12)
        lo, hi = res.conf_int(0.05)
        assert (hi - lo) == pytest.approx(2 * 1.959964 * res.stderr, rel=1e-5)


@pytest.mark.parametrize("wrong", ["outcome", "propensity"])
def test_aipw_is_doubly_robust(wrong):
    # one nuisance badly wrong, the other right: the estimate stays near the truth
    y, t, mu0, mu1, e = nuisance_data(n=200_000, seed=3)
    truth = np.mean(mu1 - mu0)
    if wrong == "outcome":
        mu0, mu1 = np.zeros_like(mu0), np.zeros_like(mu1)
    else:
        e = np.full_like(e, t.mean())
    est, infl = aipw(y, t, mu0, mu1, e, "ate")
    assert abs(est - truth) < 4 * np.std(infl) / np.sqrt(len(y))
    plug = np.mean(mu1 - mu0)
    if wrong == "propensity":
        assert plug == pytest.approx(truth)


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("target", ["ate", "att", "atc"])
def test_tmle_solves_its_score_equation(target, binary):
    y, t, mu0, mu1, e = nuisance_data(seed=4, binary=binary)
    mu0b, mu1b = mu0 + 0.2, mu1 - 0.1  # a biased outcome model leaves work for TMLE
    if binary:
        mu0b, mu1b = np.clip(mu0b, 0.01, 0.99), np.clip(mu1b, 0.01, 0.99)
    est, infl = tmle(y, t, mu0b, mu1b, e, target, "binary" if binary else "continuous")
    # at the fluctuated fit the AIPW correction is zero: the estimate is the plug-in of
    # the fluctuated predictions, and the influence values average to zero
    assert np.mean(infl) == pytest.approx(0, abs=1e-9)
    dr, _ = aipw(y, t, mu0b, mu1b, e, target)
    assert est == pytest.approx(dr, abs=0.05)  # both debias the same outcome model


def test_fluctuation_score_is_zero():
    rng = np.random.default_rng(5)
    q = rng.uniform(0.1, 0.9, 500)
    h = rng.normal(size=500)
    y01 = rng.uniform(size=500)
    eps = fit_logistic_fluctuation(y01, q, h)
    score = np.sum(h * (y01 - expit(np.log(q / (1 - q)) + eps * h)))
    assert abs(score) < 1e-8


def test_clipping_and_trimming_are_counted():
    y, t, mu0, mu1, e = nuisance_data(seed=6)
    e = e.copy()
    e[:5], e[5:8] = 0.001, 0.999
    t[:5], t[5:8] = 0, 1
    res = estimate_average_effect(y, t, mu0, mu1, e, propensity_clip=0.01)
    assert res.n_clipped == 8 and res.n_trimmed == 0
    res = estimate_average_effect(y, t, mu0, mu1, e, propensity_clip=0.01, trim=0.05)
    assert res.n_trimmed >= 8 and res.n_samples == len(y) - res.n_trimmed
    frame = res.summary_frame()
    assert frame.loc["ATE (aipw)", "n_trimmed"] == res.n_trimmed
    assert frame.loc["ATE (aipw)", "n_clipped"] == res.n_clipped


def test_plugin_has_no_stderr():
    y, t, mu0, mu1, e = nuisance_data(seed=7)
    res = estimate_average_effect(y, t, mu0, mu1, e, target="att", method="plugin")
    assert res.point_estimate == pytest.approx(np.mean((mu1 - mu0)[t == 1]))
    assert np.isnan(res.stderr)


def test_bad_arguments():
    y, t, mu0, mu1, e = nuisance_data(n=50)
    with pytest.raises(ValueError, match="target must be one of"):
        estimate_average_effect(y, t, mu0, mu1, e, target="late")
    with pytest.raises(ValueError, match="method must be one of"):
        estimate_average_effect(y, t, mu0, mu1, e, method="ipw2")
    with pytest.raises(ValueError, match="propensity must have shape"):
        estimate_average_effect(y, t, mu0, mu1, e[:-1])
    with pytest.raises(ValueError, match="alpha"):
        estimate_average_effect(y, t, mu0, mu1, e).conf_int(alpha=1.5)


def test_overlap_warning_and_summary():
    e = np.r_[np.full(90, 0.5), np.full(10, 0.001)]
    t = np.r_[np.ones(45), np.zeros(55)]
    with pytest.warns(OverlapWarning, match="10.0% of rows"):
        share = check_overlap(e)
    assert share == pytest.approx(0.1)
    summary = overlap_summary(e, t)
    assert summary.loc["all", "n_below_clip"] == 10
    assert summary.loc["control", "n"] == 55
    assert isinstance(repr(estimate_average_effect(
        np.ones(100), t, np.zeros(100), np.zeros(100), e)), str)


def test_result_is_documented_class():
    assert AverageEffectResult.__doc__


def test_plot_propensity():
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    y, t, mu0, mu1, e = nuisance_data(n=100)
    ax = estimate_average_effect(y, t, mu0, mu1, e).plot_propensity()
    assert ax.get_xlabel().startswith("estimated propensity")


@pytest.mark.parametrize("target, where", [("ate", 0.0), ("ate", 1.0), ("att", 1.0),
                                           ("atc", 0.0)])
def test_a_propensity_of_0_or_1_without_clipping_is_refused(target, where):
    """With propensity_clip=0 the weights 1/e or 1/(1-e) are unbounded at such a row
    (a NaN estimate before); with clipping the same data give a finite estimate."""
    y, t, mu0, mu1, e = nuisance_data(n=200, seed=8)
    e = e.copy()
    e[0] = where
    for method in ("aipw", "tmle"):
        with pytest.raises(ValueError, match="1 rows have a propensity of exactly 0 or 1"):
            estimate_average_effect(y, t, mu0, mu1, e, target=target, method=method,
                                    propensity_clip=0)
        res = estimate_average_effect(y, t, mu0, mu1, e, target=target, method=method,
                                      propensity_clip=0.01)
        assert np.isfinite(res.point_estimate) and np.isfinite(res.stderr)
    # a target whose weights never divide by it is unaffected
    other = {"att": "atc", "atc": "att"}.get(target)
    if other:
        res = estimate_average_effect(y, t, mu0, mu1, e, target=other, propensity_clip=0)
        assert np.isfinite(res.point_estimate)


@pytest.mark.parametrize("bad", [None, "0.01", True, 0.5, -0.1])
def test_propensity_clip_and_trim_must_be_numbers_in_range(bad):
    y, t, mu0, mu1, e = nuisance_data(n=50)
    with pytest.raises(ValueError, match="propensity_clip must be a number"):
        estimate_average_effect(y, t, mu0, mu1, e, propensity_clip=bad)
    if bad is not None:
        with pytest.raises(ValueError, match="trim must be a number"):
            estimate_average_effect(y, t, mu0, mu1, e, trim=bad)


def test_tmle_for_a_binary_outcome_refuses_values_outside_0_1():
    y, t, mu0, mu1, e = nuisance_data(n=100, seed=9, binary=True)
    with pytest.raises(ValueError, match=r"outcome='binary' needs y in \[0, 1\]"):
        estimate_average_effect(y * 3, t, mu0, mu1, e, method="tmle", outcome="binary")
