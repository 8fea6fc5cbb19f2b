"""The simulators' random parts against their documented laws."""
import numpy as np

from causalnn.datasets import make_demand, make_ihdp, make_proxy_confounded
from causalnn.datasets._demand import _psi


def test_make_ihdp_draws_the_two_potential_outcomes_with_independent_noise():
    # as in the shipped NPCI files (correlation 0.04, -0.01, -0.03 in replications 1-3)
    for rep in make_ihdp(3, random_state=0):
        t = rep.treatment == 1
        factual = rep.y - np.where(t, rep.mu1, rep.mu0)
        counterfactual = rep.y_cf - np.where(t, rep.mu0, rep.mu1)
        assert abs(np.corrcoef(factual, counterfactual)[0, 1]) < 0.2   # sd about 0.037


def test_make_ihdp_coefficients_take_zero_with_probability_0_6():
    zeros = []
    for rep in make_ihdp(20, random_state=0):
        A = rep.X + 0.5          # log mu0 = (X + 0.5) beta exactly
        beta = np.linalg.lstsq(A, np.log(rep.mu0), rcond=None)[0]
        zeros += list(np.isclose(beta, 0.0, atol=1e-6))
    # 500 coefficients: P(beta = 0) = 0.6 (sd of the share 0.022)
    assert 0.5 < np.mean(zeros) < 0.7


def test_make_proxy_confounded_draws_y_from_the_arm_it_received():
    data = make_proxy_confounded(20000, random_state=0)
    for arm, mu in ((1, data.mu1), (0, data.mu0)):
        rows = data.treatment == arm
        # y ~ Bern(mu_t): the mean of y over an arm is the mean of that arm's mu
        assert abs(data.y[rows].mean() - mu[rows].mean()) < 0.02


def test_make_demand_noise_is_rho_v_plus_independent_noise():
    rho = 0.5
    data = make_demand(100000, rho=rho, random_state=0)
    time, z = data.X[:, 0], data.instrument[:, 0]
    v = data.treatment - 25.0 - (z + 3.0) * _psi(time)     # the price's own noise
    e = data.y - data.structural                           # e = rho v + sqrt(1-rho^2) N
    slope = np.cov(e, v)[0, 1] / np.var(v, ddof=1)
    assert abs(slope - rho) < 0.02
    assert abs(np.var(e - slope * v) - (1 - rho ** 2)) < 0.02
    assert abs(np.var(e) - 1.0) < 0.02
