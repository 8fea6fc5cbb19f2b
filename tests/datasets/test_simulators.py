"""The simulators draw what their docstrings write down: moments of the proxies of
make_proxy_confounded, its potential-outcome formulas, and the size of the confounding
term of make_multi_cause."""
import numpy as np
import pytest

from causalnn.datasets import (demand_test_grid, make_demand, make_films, make_multi_cause,
                               make_proxy_confounded)


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def test_proxies_are_normal_around_z_with_the_documented_scale_per_class():
    """``x_j | z ~ N(z, s^2)`` with ``s = noise_scale (5 z + 3 (1 - z))``: the classes'
    sample means and standard deviations (about 50 000 draws each, SE of the sd below
    0.3%) match."""
    data = make_proxy_confounded(20000, n_proxies=5, noise_scale=0.5, random_state=0)
    for z, sd in ((1.0, 2.5), (0.0, 1.5)):
        x = data.X[data.z == z].ravel()
        assert x.mean() == pytest.approx(z, abs=5 * sd / np.sqrt(len(x)))
        assert x.std() == pytest.approx(sd, rel=0.015)


@pytest.mark.parametrize("c", [0.0, 2.0])
def test_potential_outcomes_follow_the_documented_formula(c):
    """``P(y=1 | t, z) = sigmoid(3 (c z + 2 (2 t - 1)))``, for ``c`` other than the
    paper's 1, and the ATE is its mean over ``z ~ Bern(0.5)``."""
    data = make_proxy_confounded(500, outcome_confounding=c, random_state=0)
    np.testing.assert_allclose(data.mu0, _sigmoid(3 * (c * data.z - 2)), rtol=1e-12)
    np.testing.assert_allclose(data.mu1, _sigmoid(3 * (c * data.z + 2)), rtol=1e-12)
    by_class = [_sigmoid(3 * (c * z + 2)) - _sigmoid(3 * (c * z - 2)) for z in (0, 1)]
    assert data.ate == pytest.approx(np.mean(by_class), rel=1e-12)


def test_multi_cause_confounding_term_has_the_documented_size():
    """``y = A beta + confounding sqrt(m) gamma' Z + noise eps`` with ``gamma ~ N(0,
    I / k)``: without noise, ``y - A beta`` is exactly linear in the returned ``Z``,
    with coefficients ``sqrt(m) gamma``, so ``|coef|^2 / m`` estimates ``E|gamma|^2 =
    1``. Over 40 seeds its mean has SE sqrt(2 / k) / sqrt(40) = 0.10 (k = 5)."""
    m, k = 50, 5
    ratios = []
    for seed in range(40):
        data = make_multi_cause(n_samples=40, n_causes=m, n_factors=k, noise=0.0,
                                random_state=seed)
        residual = data.y - data.treatment @ data.effects
        coef, *_ = np.linalg.lstsq(data.confounder, residual, rcond=None)
        np.testing.assert_allclose(data.confounder @ coef, residual, atol=1e-9)
        ratios.append(coef @ coef / m)
    assert np.mean(ratios) == pytest.approx(1.0, abs=0.4)


def test_demand_structural_is_standardised_by_its_exact_moments():
    """``H_MEAN`` and ``H_STD`` are the closed-form mean and sd of the raw demand over
    the design (``Var p = psi^2 + 1``, v included), so the standardised ``h`` has mean 0
    and sd 1. On 2e6 draws the sample sd has SE sqrt((kurtosis - 1) / (4 n)), about
    4e-4; leaving out Var v = 1 moves the sd by 3.4e-3."""
    h = make_demand(2_000_000, random_state=0).structural
    n = len(h)
    kurtosis = np.mean((h - h.mean()) ** 4) / h.var() ** 2
    se_sd = np.sqrt((kurtosis - 1) / (4 * n))
    assert abs(h.mean()) < 4 / np.sqrt(n)
    assert abs(h.std() - 1.0) < 4 * se_sd


def test_demand_test_grid_spans_the_central_95_percent_of_prices():
    """The grid's prices run from the 2.5% to the 97.5% quantile of the simulated price
    distribution: on a fresh simulation of 2e5 prices, 2.5% lie below the lowest and
    2.5% above the highest (the binomial SE of each share is 3.5e-4, the grid's own
    reference sample of 1e5 adds 5e-4)."""
    grid = demand_test_grid(n_prices=5, n_times=2)
    price = make_demand(200_000, random_state=1).treatment
    assert np.mean(price < grid.treatment.min()) == pytest.approx(0.025, abs=0.003)
    assert np.mean(price > grid.treatment.max()) == pytest.approx(0.025, abs=0.003)
    assert len(np.unique(grid.treatment)) == 5


@pytest.mark.parametrize("call, match", [
    (lambda: make_demand(-5), "n_samples must be an int >= 1"),
    (lambda: make_demand(2.5), "n_samples must be an int >= 1"),
    (lambda: make_demand(100, rho="a"), "rho must be a finite number"),
    (lambda: make_demand(100, rho=float("nan")), "rho must be a finite number"),
    (lambda: demand_test_grid(-1), "n_prices must be an int >= 1"),
    (lambda: make_multi_cause(100, effect_scale="a"), "effect_scale must be a finite"),
    # NaN once gave an all-NaN outcome without a word
    (lambda: make_multi_cause(100, confounding=float("nan")), "confounding must be a"),
    (lambda: make_multi_cause(100, noise=-1.0), "noise must be a finite number >= 0"),
    (lambda: make_films(100, franchise_boost=float("inf")), "franchise_boost"),
    (lambda: make_proxy_confounded(100, noise_scale=0.0), "noise_scale must be a finite"),
    (lambda: make_proxy_confounded(100, outcome_confounding=float("nan")),
     "outcome_confounding"),
])
def test_simulators_refuse_bad_sizes_and_strengths_by_name(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_make_linear_iv_confounds_least_squares_and_identifies_the_slope():
    from causalnn.datasets import make_linear_iv
    data = make_linear_iv(20_000, strength=2.0, random_state=1)
    ones = np.ones(len(data.y))
    ols = np.linalg.lstsq(np.column_stack([ones, data.treatment, data.X]), data.y,
                          rcond=None)[0][1]
    first = np.column_stack([ones, data.instrument, data.X])
    t_hat = first @ np.linalg.lstsq(first, data.treatment, rcond=None)[0]
    iv = np.linalg.lstsq(np.column_stack([ones, t_hat, data.X]), data.y, rcond=None)[0][1]
    assert data.slope == 2.0 and ols > 2.5 and abs(iv - 2.0) < 0.02
    with pytest.raises(ValueError, match="strength must be a finite number >= 0.0"):
        make_linear_iv(10, strength=-1.0)
    with pytest.raises(ValueError, match="n_samples must be an int >= 1"):
        make_linear_iv(0)
