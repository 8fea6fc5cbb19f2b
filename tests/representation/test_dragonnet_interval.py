"""Dragonnet's ate_interval: targeted=True is the bootstrap of the targeted estimator,
built from each member's fluctuated ATE with the member's own epsilon (Shi, Blei &
Veitch 2019), the ATEs that ate(targeted=True) averages."""
import warnings

import numpy as np
import pytest
from scipy import stats

from causalnn import Dragonnet

from conftest import SMALL, simulate

X, Y, T, _ = simulate(n=300, d=4)


def _fit(**params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Dragonnet(**{**SMALL, "max_epochs": 10, **params},
                         random_state=0).fit(X, Y, treatment=T)


@pytest.fixture(scope="module")
def pair():
    """Two bootstrap members: their two ATEs can be read back from the interval."""
    return _fit(n_members=2, bootstrap=True)


def _expected_targeted_ates(est):
    """Each member's fluctuated ATE in closed form (continuous outcome):
    ``mean_i [Q(1, x_i) - Q(0, x_i)] + y_scale * epsilon_m * mean_i (1/g + 1/(1-g))``,
    with ``g`` the member's squeezed propensity."""
    logit = est._heads_and_propensity_logit(est._validate_X(X))[..., 2]
    g = est.propensity_clip + (1 - 2 * est.propensity_clip) / (1 + np.exp(-logit))
    plugin = est.effect(X, members=True).mean(axis=1)
    return plugin + est.y_scale_ * est.epsilon_ * np.mean(1 / g + 1 / (1 - g), axis=1)


def test_targeted_interval_is_built_from_each_members_own_fluctuated_ate(pair):
    expected = _expected_targeted_ates(pair)
    assert abs(pair.epsilon_[0] - pair.epsilon_[1]) > 1e-4  # the members differ
    # ate(targeted=True) averages the members' fluctuated ATEs (each over the same rows)
    # (the heads in float32: agreement to its round-off)
    assert pair.ate(X, targeted=True) == pytest.approx(expected.mean(), rel=1e-6)
    lower, upper = pair.ate_interval(X, targeted=True)
    # normal interval of two members: centre their mean, half-width
    # t_{1, 0.975} * |a - b| / sqrt(2) * sqrt(1 + 1/2)
    assert (lower + upper) / 2 == pytest.approx(pair.ate(X, targeted=True), abs=1e-12)
    gap = (upper - lower) / 2 / (stats.t.ppf(0.975, 1) * np.sqrt(1.5)) * np.sqrt(2)
    assert gap == pytest.approx(abs(expected[0] - expected[1]), rel=1e-5)
    with pytest.warns(UserWarning, match="n_members=2"):
        lower_p, upper_p = pair.ate_interval(X, targeted=True, method="percentile")
    low, high = np.sort(expected)
    assert lower_p == pytest.approx(low + 0.025 * (high - low), rel=1e-6)
    assert upper_p == pytest.approx(high - 0.025 * (high - low), rel=1e-6)
    # swapping T0 and T1 negates the members' ATEs
    assert pair.ate_interval(X, T0=1, T1=0, targeted=True) == pytest.approx(
        (-upper, -lower), abs=1e-12)
    assert pair.ate_interval(X, T0=1, T1=1, targeted=True) == (0.0, 0.0)


def test_plugin_interval_stays_around_the_plugin_ate(pair):
    # by default the plug-in, as ate(X), with a warning under targeted regularisation
    with pytest.warns(UserWarning, match="shrunk towards 0"):
        lower, upper = pair.ate_interval(X)
    assert (lower + upper) / 2 == pytest.approx(pair.ate(X), abs=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # an explicit choice is not warned about
        assert (lower, upper) == pair.ate_interval(X, targeted=False, method="normal")


def test_targeted_interval_refuses_what_the_targeted_ate_refuses(pair):
    with pytest.raises(ValueError, match="scalar T0 and T1"):
        pair.ate_interval(X, T1=np.ones(len(X)), targeted=True)
    untargeted = _fit(n_members=2, bootstrap=True, targeted_regularization=False,
                      max_epochs=1)
    with pytest.raises(ValueError, match=r"ate_interval\(targeted=True\) needs a "
                                         "Dragonnet fitted with targeted_regularization"):
        untargeted.ate_interval(X, targeted=True)
    with pytest.raises(ValueError, match=r"ate\(targeted=True\) needs"):
        untargeted.ate(X, targeted=True)
    with pytest.raises(ValueError, match="method must be one of"):
        pair.ate_interval(X, targeted=True, method="bca")
    with pytest.raises(ValueError, match="n_members >= 2"):
        _fit(max_epochs=1).ate_interval(X, targeted=True)
