"""Closed-form checks of the AIPW / TMLE / plug-in estimators from given nuisances."""
import numpy as np
import pytest
from scipy.special import expit

from causalnn.inference import (AverageEffectResult, OverlapWarning, aggregate_repeats,
                                aipw, check_overlap, estimate_average_effect,
                                overlap_summary, tmle)
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
    # the efficient influence function of the ATE (Hahn 1998), value by value
    psi = mu1b - mu0b + t * (y - mu1b) / e - (1 - t) * (y - mu0b) / (1 - e)
    np.testing.assert_allclose(infl, psi - by_hand, rtol=1e-12, atol=1e-12)


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


@pytest.mark.parametrize("target", ["ate", "att", "atc"])
def test_influence_values_are_the_effect_of_one_more_copy_of_a_row(target):
    """An influence value is a Gateaux derivative: adding one more copy of row i moves
    the estimate by phi_i / (n + 1). This holds however the code writes phi, so it
    checks the values (and hence the ATT/ATC standard errors), not a copy of them.
    For the ratio estimators (ATT, ATC) the arm's size also grows by t_i (or 1 - t_i),
    so the identity holds up to a relative 1/n_arm + 1/n: rtol = 3 / n_smaller_arm."""
    y, t, mu0, mu1, e = nuisance_data(n=5000, seed=10)
    mu0, mu1 = mu0 + 0.3, mu1 - 0.2  # a wrong outcome model: the correction terms count
    est, phi = aipw(y, t, mu0, mu1, e, target)
    n = len(y)
    rtol = 3 / min(t.sum(), (1 - t).sum())
    rows = list(np.flatnonzero(t == 1)[:4]) + list(np.flatnonzero(t == 0)[:4])
    for i in rows:
        more = [np.append(a, a[i]) for a in (y, t, mu0, mu1, e)]
        est_more, _ = aipw(*more, target)
        assert (est_more - est) * (n + 1) == pytest.approx(phi[i], rel=rtol, abs=1e-9)


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


def _tmle_by_definition(y, t, mu0, mu1, e, target, binary):
    """TMLE as documented (Gruber & van der Laan 2010), written out independently:
    map y to [0, 1] by its range, solve the weighted logistic fluctuation's score
    equation for epsilon with a root finder, return the plug-in of the fluctuated
    predictions and those predictions."""
    from scipy.optimize import brentq
    from scipy.special import logit
    if binary:
        lo, scale = 0.0, 1.0
    else:
        lo = min(y.min(), mu0.min(), mu1.min())
        scale = max(y.max(), mu0.max(), mu1.max()) - lo
    # predictions bounded away from 0 and 1 (at 1e-5) so that their logit is finite
    y01 = (y - lo) / scale
    q0, q1 = (np.clip((m - lo) / scale, 1e-5, 1 - 1e-5) for m in (mu0, mu1))
    if target == "ate":
        # covariate 2t - 1, weights 1/e (treated) and 1/(1-e) (controls)
        sign, weight, q = 2 * t - 1, np.where(t == 1, 1 / e, 1 / (1 - e)), np.where(
            t == 1, q1, q0)
    elif target == "att":  # an intercept on the controls' q0, weights e/(1-e)
        sign, weight, q = np.ones_like(t), np.where(t == 0, e / (1 - e), 0.0), q0
    else:  # an intercept on the treated rows' q1, weights (1-e)/e
        sign, weight, q = np.ones_like(t), np.where(t == 1, (1 - e) / e, 0.0), q1

    def score(eps):
        return np.sum(weight * sign * (y01 - expit(logit(q) + eps * sign)))

    eps = brentq(score, -20, 20, xtol=1e-14)
    mu1s = lo + scale * expit(logit(q1) + (eps if target != "att" else 0.0))
    mu0s = lo + scale * expit(logit(q0) - (eps if target == "ate" else 0.0)
                              + (eps if target == "att" else 0.0))
    if target == "ate":
        return np.mean(mu1s - mu0s), mu0s, mu1s
    if target == "att":
        return np.sum(t * (y - mu0s)) / t.sum(), mu0s, mu1
    return np.sum((1 - t) * (mu1s - y)) / (1 - t).sum(), mu0, mu1s


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("target", ["ate", "att", "atc"])
def test_tmle_is_the_plug_in_of_the_fluctuated_fit(target, binary):
    """TMLE is a substitution estimator: the plug-in of the predictions fluctuated by
    the epsilon that solves the efficient-influence-curve equation; its influence
    values are AIPW's at that fluctuated fit, whose correction term is zero there."""
    y, t, mu0, mu1, e = nuisance_data(seed=4, binary=binary)
    mu0b, mu1b = mu0 + 0.2, mu1 - 0.1  # a biased outcome model leaves work for TMLE
    if binary:
        mu0b, mu1b = np.clip(mu0b, 0.01, 0.99), np.clip(mu1b, 0.01, 0.99)
    est, infl = tmle(y, t, mu0b, mu1b, e, target, "binary" if binary else "continuous")
    expected, mu0s, mu1s = _tmle_by_definition(y, t, mu0b, mu1b, e, target, binary)
    assert est == pytest.approx(expected, rel=1e-7, abs=1e-9)
    dr, dr_infl = aipw(y, t, mu0s, mu1s, e, target)
    assert dr == pytest.approx(expected, rel=1e-7, abs=1e-9)  # correction term is zero
    np.testing.assert_allclose(infl, dr_infl, rtol=1e-6, atol=1e-8)
    # and the fluctuation did work: the bias the outcome model put in is gone
    plug = {"ate": np.mean(mu1b - mu0b), "att": np.mean((mu1b - mu0b)[t == 1]),
            "atc": np.mean((mu1b - mu0b)[t == 0])}[target]
    assert abs(est - plug) > 0.05


@pytest.mark.parametrize("target", ["ate", "att", "atc"])
def test_tmle_is_doubly_robust(target):
    """Outcome model 0, true propensity: TMLE, like AIPW, stays within 4 standard errors
    of the (sample) target effect; 200k rows make a wrong fluctuation weight show."""
    y, t, mu0, mu1, e = nuisance_data(n=200_000, seed=3)
    group = {"ate": t == t, "att": t == 1, "atc": t == 0}[target]
    truth = np.mean((mu1 - mu0)[group])
    zero = np.zeros_like(y)
    est, infl = tmle(y, t, zero, zero, e, target)
    assert abs(est - truth) < 4 * np.std(infl, ddof=1) / np.sqrt(len(y))


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
    assert frame.loc["ATE (aipw, trimmed at 0.05)", "n_trimmed"] == res.n_trimmed
    assert frame.loc["ATE (aipw, trimmed at 0.05)", "n_clipped"] == res.n_clipped


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


def test_result_reports_its_numbers():
    """z, p-value and interval of an estimate 1.96 standard errors from zero: p = 0.05
    and the 95% interval ends at 0 (closed forms), in the frame and the repr too."""
    z = 1.959963984540054
    res = AverageEffectResult(
        point_estimate=0.5 * z, stderr=0.5, influence=None, target="att", method="tmle",
        propensity=np.full(4, 0.5), treatment=np.array([0.0, 1.0, 0.0, 1.0]),
        plugin_estimate=0.7, propensity_clip=0.01, n_clipped=1, n_trimmed=2)
    assert res.zstat == pytest.approx(z)
    assert res.pvalue == pytest.approx(0.05, rel=1e-9)
    lo, hi = res.conf_int(0.05)
    assert lo == pytest.approx(0, abs=1e-12) and hi == pytest.approx(2 * 0.5 * z)
    lo90, _ = res.conf_int(0.10)
    assert lo90 == pytest.approx(0.5 * z - 0.5 * 1.6448536269514722)
    row = res.summary_frame(0.10).loc["ATT (tmle)"]
    assert row["ci_lower"] == pytest.approx(lo90) and row["pvalue"] == res.pvalue
    assert row["alpha"] == 0.10
    # EconML's summary columns first, in its order
    assert list(res.summary_frame().columns[:6]) == [
        "point_estimate", "stderr", "zstat", "pvalue", "ci_lower", "ci_upper"]
    assert row["n_samples"] == 4 and row["plugin_estimate"] == 0.7
    assert repr(res) == ("AverageEffectResult(ATT tmle: 0.98 (se 0.5, 95% CI [0, 1.96]), "
                         "n=4, clipped 1 rows at 0.01, trimmed 2)")


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


def test_aggregate_repeats_takes_the_median_and_the_partition_at_the_median():
    """The aggregate of three partitions (Chernozhukov et al. 2018, median rule): the
    median estimate and plug-in, and the influence values, propensities and clipping
    of the partition whose estimate is the median (documented on the result)."""
    results = [estimate_average_effect(*nuisance_data(n=300, seed=20 + k),
                                       propensity_clip=0.1)
               for k in range(3)]
    estimates = [r.point_estimate for r in results]
    plugins = [r.plugin_estimate for r in results]
    at_median = int(np.argsort(estimates)[1])
    # put first a partition that is neither the median estimate nor the median plug-in,
    # so that "the first partition" cannot pass for either
    first = next(k for k in range(3)
                 if k != at_median and plugins[k] != np.median(plugins))
    order = [first] + [k for k in range(3) if k != first]
    res = aggregate_repeats([results[k] for k in order])
    assert res.point_estimate == np.median(estimates)
    assert res.plugin_estimate == np.median(plugins)
    closest = results[at_median]
    assert res.influence is closest.influence and res.propensity is closest.propensity
    assert res.n_clipped == closest.n_clipped and res.n_samples == closest.n_samples
    assert res.n_repeats == 3 and res.repeats == [results[k] for k in order]
