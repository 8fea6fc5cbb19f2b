"""Intervals from ensemble members: the normal interval covers its nominal level for any
number of members under the ideal bootstrap model; the percentile interval cannot for few
members, and says so."""
import warnings

import numpy as np
import pytest
from scipy import stats

from causalnn import TARNet
from causalnn.inference._mixins import IntervalMixin


class _Ensemble(IntervalMixin):
    """Stands in for a fitted estimator whose members' effects are given: row ``j`` of
    ``effect(X, members=True)`` is member ``j``'s effect on every row of ``X``."""

    bootstrap = True

    def __init__(self, member_effects):
        self.member_effects = np.asarray(member_effects, dtype=float)
        self.n_members_ = self.member_effects.shape[0]

    def effect(self, X, T0=0, T1=1, *, members=False):
        assert members and len(X) == self.member_effects.shape[1]
        return self.member_effects


def _ideal_members(rng, n_members, n_draws):
    """Ideal bootstrap replicates around an unbiased estimate of a truth of 0:
    ``theta_hat ~ N(0, 1)``, each member ``theta_hat + N(0, 1)``; one column per
    simulated dataset."""
    theta_hat = rng.normal(size=n_draws)
    return theta_hat + rng.normal(size=(n_members, n_draws))


@pytest.mark.parametrize("n_members", [2, 5, 20])
@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_normal_interval_covers_its_nominal_level_for_few_members(n_members, alpha):
    n_draws = 100_000
    members = _ideal_members(np.random.default_rng(n_members), n_members, n_draws)
    lower, upper = _Ensemble(members).effect_interval(np.zeros(n_draws), alpha=alpha)
    coverage = np.mean((lower <= 0) & (0 <= upper))
    se = np.sqrt(alpha * (1 - alpha) / n_draws)
    assert abs(coverage - (1 - alpha)) < 2.5 * se, coverage


@pytest.mark.parametrize("n_members", [2, 5, 20])
def test_normal_ate_interval_covers_the_average_effect(n_members):
    """The same through ``ate_interval``: each dataset's members average their effects
    over three rows, whose mean is the ideal replicate."""
    rng = np.random.default_rng(100 + n_members)
    n_draws = 2_000
    centres = _ideal_members(rng, n_members, n_draws)
    hits = []
    for d in range(n_draws):
        rows = centres[:, d:d + 1] + np.array([-1.0, 0.0, 1.0])  # row mean = centre
        lower, upper = _Ensemble(rows).ate_interval(np.zeros(3))
        hits.append(lower <= 0 <= upper)
    se = np.sqrt(0.05 * 0.95 / n_draws)
    assert abs(np.mean(hits) - 0.95) < 2.5 * se, np.mean(hits)


def test_normal_interval_closed_form_and_one_helper_for_rows_and_average():
    members = np.array([[1.0, 3.0], [2.0, 3.0], [4.0, 3.0], [5.0, 3.0]])
    ens = _Ensemble(members)
    lower, upper = ens.effect_interval(np.zeros(2), alpha=0.1)
    half = stats.t.ppf(0.95, 3) * np.std([1, 2, 4, 5], ddof=1) * np.sqrt(1 + 1 / 4)
    np.testing.assert_allclose(lower, [3 - half, 3.0])
    np.testing.assert_allclose(upper, [3 + half, 3.0])  # equal members: no width
    # the average effect's interval is the per-row one of the members' row means
    row_means = members.mean(axis=1, keepdims=True)
    assert ens.ate_interval(np.zeros(2), alpha=0.1) == pytest.approx(
        tuple(b[0] for b in _Ensemble(row_means).effect_interval(np.zeros(1), alpha=0.1)))


@pytest.mark.parametrize("n_members", [2, 5, 20])
def test_percentile_interval_warns_and_stays_inside_the_members_range(n_members):
    """With ``(B + 1) alpha / 2 < 1`` the percentile interval lies inside the members'
    range, which holds the truth with probability (B - 1) / (B + 1) under the ideal
    model: it cannot reach 95%, and it warns."""
    n_draws = 100_000
    members = _ideal_members(np.random.default_rng(7), n_members, n_draws)
    reachable = (n_members - 1) / (n_members + 1)
    with pytest.warns(UserWarning, match=rf"n_members={n_members} .* alpha=0\.05 .* "
                                         rf"{100 * reachable:.1f}%"):
        lower, upper = _Ensemble(members).effect_interval(np.zeros(n_draws),
                                                          method="percentile")
    np.testing.assert_array_equal(lower, np.quantile(members, 0.025, axis=0))
    np.testing.assert_array_equal(upper, np.quantile(members, 0.975, axis=0))
    coverage = np.mean((lower <= 0) & (0 <= upper))
    assert coverage <= reachable + 2 * np.sqrt(reachable * (1 - reachable) / n_draws)
    assert coverage < 0.95 - 0.04


def test_percentile_interval_is_quiet_with_enough_members():
    members = _ideal_members(np.random.default_rng(3), 39, 10)  # (39 + 1) * 0.025 = 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _Ensemble(members).ate_interval(np.zeros(10), method="percentile")
    with pytest.warns(UserWarning, match="n_members=38"):
        _Ensemble(members[:38]).ate_interval(np.zeros(10), method="percentile")


@pytest.mark.parametrize("bad", ["bca", None, "Normal", ["normal"]])
def test_unknown_method_is_refused_by_name(bad):
    ens = _Ensemble(np.ones((3, 2)))
    for interval in (ens.effect_interval, ens.ate_interval):
        with pytest.raises(ValueError, match=r"method must be one of \('normal', "
                                             r"'percentile'\); got"):
            interval(np.zeros(2), method=bad)


@pytest.mark.parametrize("bad", ["0.05", np.array([0.05, 0.1]), True, 0.0, 1.0,
                                 float("nan")])
def test_bad_alpha_is_refused_by_name(bad):
    with pytest.raises(ValueError, match=r"alpha must be a float in \(0, 1\)"):
        _Ensemble(np.ones((3, 2))).ate_interval(np.zeros(2), alpha=bad)


def test_tarnet_bootstrap_members_give_the_normal_interval():
    """A real ensemble: 5 bootstrap members of a small TARNet on a simulated design
    with a constant effect of 2."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    t = rng.binomial(1, 1 / (1 + np.exp(-0.5 * X[:, 0]))).astype(float)
    y = X[:, 0] + 2 * t + rng.normal(size=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = TARNet(representation_layers=(16,), head_layers=(8,), max_epochs=30,
                     learning_rate=1e-2, batch_size=64, patience=None, n_members=5,
                     bootstrap=True, random_state=0).fit(X, y, treatment=t)
    lower, upper = est.ate_interval(X)
    member_ates = est.effect(X, members=True).mean(axis=1)
    half = stats.t.ppf(0.975, 4) * np.std(member_ates, ddof=1) * np.sqrt(1.2)
    assert (lower + upper) / 2 == pytest.approx(est.ate(X), abs=1e-12)
    assert upper - lower == pytest.approx(2 * half, rel=1e-9)
    assert lower < 2.0 < upper
    row_lower, row_upper = est.effect_interval(X[:10])
    assert row_lower.shape == row_upper.shape == (10,)
    np.testing.assert_allclose((row_lower + row_upper) / 2, est.effect(X[:10]),
                               atol=1e-12)
    # the percentile interval of 5 members: inside their range, with a warning
    with pytest.warns(UserWarning, match="n_members=5"):
        lower_p, upper_p = est.ate_interval(X, method="percentile")
    assert member_ates.min() <= lower_p <= upper_p <= member_ates.max()
