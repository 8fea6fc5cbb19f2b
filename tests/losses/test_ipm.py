"""IPMs against closed forms."""
import numpy as np
import pytest
import torch

from causalnn.losses import mmd_linear, mmd_rbf, wasserstein


def _split(phi0, phi1):
    phi = torch.tensor(np.vstack([phi0, phi1]), dtype=torch.float64)
    t = torch.tensor([0.0] * len(phi0) + [1.0] * len(phi1), dtype=torch.float64)
    return phi, t


def test_mmd_linear_is_squared_mean_difference():
    rng = np.random.RandomState(0)
    a, b = rng.randn(30, 4), rng.randn(20, 4) + 0.5
    phi, t = _split(a, b)
    expected = np.sum((b.mean(0) - a.mean(0)) ** 2)
    assert float(mmd_linear(phi, t)) == pytest.approx(expected, rel=1e-10)


def test_mmd_rbf_matches_the_v_statistic():
    rng = np.random.RandomState(1)
    a, b = rng.randn(15, 3), rng.randn(10, 3) + 1.0
    phi, t = _split(a, b)
    sigma = 0.7

    def k(u, v):
        d2 = ((u[:, None, :] - v[None, :, :]) ** 2).sum(-1)
        return np.exp(-d2 / (2 * sigma**2))
    expected = k(a, a).mean() + k(b, b).mean() - 2 * k(a, b).mean()
    assert float(mmd_rbf(phi, t, bandwidth=sigma)) == pytest.approx(expected, rel=1e-10)


def test_wasserstein_of_a_shift_in_one_dimension():
    # equal-size 1-d samples: W1 is the mean distance between sorted points
    a = np.linspace(0, 1, 40)[:, None]
    b = a + 0.3
    phi, t = _split(a, b)
    value = float(wasserstein(phi, t, blur=0.002, n_iter=2000))
    assert value == pytest.approx(0.3, abs=0.01)


def test_wasserstein_gradient_moves_the_arms_together():
    rng = np.random.RandomState(2)
    phi, t = _split(rng.randn(20, 2), rng.randn(20, 2) + 2.0)
    phi.requires_grad_(True)
    wasserstein(phi, t).backward()
    treated_grad = phi.grad[t == 1].mean(0)
    # the penalty decreases when the treated points move towards the controls (-x)
    assert torch.all(treated_grad > 0)


@pytest.mark.parametrize("ipm", [mmd_linear, mmd_rbf, wasserstein])
def test_one_arm_absent_gives_zero(ipm):
    phi = torch.randn(10, 3, dtype=torch.float64)
    assert float(ipm(phi, torch.ones(10, dtype=torch.float64))) == 0.0
    assert float(ipm(phi, torch.zeros(10, dtype=torch.float64))) == 0.0


@pytest.mark.parametrize("ipm", [mmd_linear, mmd_rbf, wasserstein])
def test_identical_arms_are_close_to_zero_and_shift_is_larger(ipm):
    rng = np.random.RandomState(3)
    a = rng.randn(50, 2)
    same = float(ipm(*_split(a, a)))
    shifted = float(ipm(*_split(a, a + 1.5)))
    assert shifted > 5 * max(same, 1e-3)
