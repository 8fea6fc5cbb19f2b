"""Closed forms of the losses (found by mutation testing): the logistic fluctuation
returns the root of the weighted TMLE score equation; the Sinkhorn cost spans exact
transport (blur -> 0) to the independent coupling (blur -> infinity); the RBF median
bandwidth is the median over pairs of distinct rows."""
import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist
from scipy.special import expit, logit

from causalnn.losses import fit_logistic_fluctuation, wasserstein
from causalnn.losses.ipm import median_bandwidth, pairwise_sq_distances


def test_returned_epsilon_solves_the_weighted_score_equation():
    rng = np.random.RandomState(0)
    for _ in range(50):
        n = 300
        g = np.clip(rng.rand(n), 0.02, 0.98)
        t = (rng.rand(n) < g) * 1.0
        h = t / g - (1 - t) / (1 - g)
        q = np.clip(rng.rand(n), 0.05, 0.95)
        y = (rng.rand(n) < q) * 1.0
        w = rng.poisson(1, n).astype(float)
        eps = fit_logistic_fluctuation(y, q, h, weight=w)
        score = np.sum(w * h * (y - expit(logit(q) + eps * h)))
        scale = np.sum(w * np.abs(h))
        assert abs(score) < 1e-8 * scale, (eps, score)


def test_wasserstein_spans_exact_transport_to_the_independent_coupling():
    a = np.linspace(0, 1, 40)[:, None]
    b = a + 0.3
    phi = torch.tensor(np.vstack([a, b]), dtype=torch.float64)
    t = torch.tensor([0.0] * 40 + [1.0] * 40, dtype=torch.float64)
    independent = np.abs(a - b.T).mean()  # 0.421: every plan entry 1 / (40 * 40)
    small = float(wasserstein(phi, t, blur=0.002, n_iter=2000))
    large = float(wasserstein(phi, t, blur=1e4, n_iter=50))
    assert small == pytest.approx(0.3, abs=0.01)
    assert large == pytest.approx(independent, abs=1e-3)
    values = [float(wasserstein(phi, t, blur=b_, n_iter=500)) for b_ in (0.01, 0.3, 3.0)]
    assert values[0] < values[1] < values[2]  # the entropic cost grows with the blur


def test_median_bandwidth_is_the_median_over_pairs_of_distinct_rows():
    rng = np.random.RandomState(0)
    phi = torch.as_tensor(rng.randn(7, 3))  # 21 pairs: an odd count, one median
    sq = pairwise_sq_distances(phi)
    expected = np.median(pdist(phi.numpy()) ** 2)
    assert float(median_bandwidth(sq, 0.0)) == pytest.approx(expected, rel=1e-10)
    weight = torch.ones(7, dtype=torch.float64)
    assert float(median_bandwidth(sq, 0.0, weight)) == pytest.approx(
        np.sort(pdist(phi.numpy()) ** 2)[10], rel=1e-10)  # the lower median of 21
