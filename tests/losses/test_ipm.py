"""IPMs against closed forms."""
import numpy as np
import pytest
import torch

from causalnn.losses import mmd_linear, mmd_rbf, wasserstein
from causalnn.losses.ipm import median_bandwidth, pairwise_sq_distances


def _split(phi0, phi1):
    phi = torch.tensor(np.vstack([phi0, phi1]), dtype=torch.float64)
    t = torch.tensor([0.0] * len(phi0) + [1.0] * len(phi1), dtype=torch.float64)
    return phi, t


def _u_statistic(k, a, b):
    """Unbiased squared MMD from a kernel function on numpy arrays (Gretton et al. 2012)."""
    kaa, kbb = k(a, a), k(b, b)
    m, n = len(a), len(b)
    within_a = (kaa.sum() - np.trace(kaa)) / (m * (m - 1))
    within_b = (kbb.sum() - np.trace(kbb)) / (n * (n - 1))
    return within_a + within_b - 2 * k(a, b).mean()


def test_mmd_linear_is_the_u_statistic_of_the_squared_mean_difference():
    rng = np.random.RandomState(0)
    a, b = rng.randn(30, 4), rng.randn(20, 4) + 0.5
    phi, t = _split(a, b)
    expected = _u_statistic(lambda u, v: u @ v.T, a, b)
    assert float(mmd_linear(phi, t)) == pytest.approx(expected, rel=1e-10)
    # it differs from the plug-in ||mean_b - mean_a||^2 by the removed diagonal terms
    plug_in = np.sum((b.mean(0) - a.mean(0)) ** 2)
    assert float(mmd_linear(phi, t)) < plug_in


def test_mmd_rbf_matches_the_u_statistic():
    rng = np.random.RandomState(1)
    a, b = rng.randn(15, 3), rng.randn(10, 3) + 1.0
    phi, t = _split(a, b)
    sigma = 0.7

    def k(u, v):
        d2 = ((u[:, None, :] - v[None, :, :]) ** 2).sum(-1)
        return np.exp(-d2 / (2 * sigma**2))
    expected = _u_statistic(k, a, b)
    assert float(mmd_rbf(phi, t, bandwidth=sigma)) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("ipm", [mmd_linear, mmd_rbf])
def test_mmds_are_unbiased_on_identical_distributions(ipm):
    # 64-row batches with 12 treated, both arms from one distribution on the unit sphere
    # (a CFR representation): the plug-in estimates average 0.1 (linear) and 0.04 (RBF)
    gen = torch.Generator().manual_seed(0)
    phi = torch.randn(400, 64, 8, generator=gen, dtype=torch.float64)
    phi = phi / phi.norm(dim=2, keepdim=True)
    t = torch.zeros(64, dtype=torch.float64)
    t[:12] = 1.0
    values = torch.stack([ipm(p, t) for p in phi])
    standard_error = float(values.std()) / 400 ** 0.5
    assert abs(float(values.mean())) < 3 * standard_error
    assert standard_error < 0.005  # so the check above rules out a bias of 0.04
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


def test_pairwise_sq_distances_are_exact_on_a_concentrated_representation():
    # unit-sphere points within 1e-4 of each other: raw-coordinate Gram round-off
    # (~1e-7 in float32) would swamp squared distances of ~1e-8
    rng = np.random.RandomState(4)
    centre = rng.randn(1, 16)
    points = centre + 1e-4 * rng.randn(40, 16)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    exact = ((points[:, None] - points[None]) ** 2).sum(-1)
    sq = pairwise_sq_distances(torch.tensor(points, dtype=torch.float32)).double().numpy()
    assert np.all(np.diag(sq) == 0.0)
    off = ~np.eye(40, dtype=bool)
    np.testing.assert_allclose(sq[off], exact[off], rtol=1e-3)


def test_wasserstein_in_float32_on_a_concentrated_representation():
    """Sinkhorn's cost comes from centred coordinates too: on 64 unit-sphere points
    within 1e-4 of each other, float32 agrees with float64 (torch.cdist's Gram path
    was off by ~80% here), and duplicates across arms keep a finite gradient."""
    rng = np.random.RandomState(5)
    points = rng.randn(1, 8) + 1e-4 * rng.randn(64, 8)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    t = torch.tensor([0.0, 1.0] * 32)
    exact = wasserstein(torch.tensor(points, dtype=torch.float64), t.double())
    single = wasserstein(torch.tensor(points, dtype=torch.float32), t)
    assert float(single) == pytest.approx(float(exact), rel=1e-3)
    phi = torch.tensor(points[:4], dtype=torch.float32)
    phi = torch.cat([phi, phi]).requires_grad_(True)  # each row duplicated in the other arm
    wasserstein(phi, torch.tensor([0.0] * 4 + [1.0] * 4)).backward()
    assert torch.all(torch.isfinite(phi.grad))


def test_rbf_bandwidth_floor_bounds_the_gradient_of_a_concentrated_batch():
    rng = np.random.RandomState(5)
    base = rng.randn(64, 8)
    t = torch.tensor((np.arange(64) < 20).astype(float))
    norms = []
    for spread in (1.0, 1e-4):
        phi = torch.tensor(spread * base, requires_grad=True)
        mmd_rbf(phi, t).backward()
        norms.append(float(phi.grad.norm()))
    # with the median heuristic alone the gradient grows like 1/spread (1e4 here)
    assert norms[1] < 20 * norms[0]
    sq = pairwise_sq_distances(torch.tensor(1e-4 * base))
    assert float(median_bandwidth(sq, 0.1)) == pytest.approx(0.01)


@pytest.mark.parametrize("ipm", [mmd_linear, mmd_rbf, wasserstein])
def test_vmap_over_stacked_batches_equals_a_loop(ipm):
    # the member axis maps the IPMs over K models' batches with torch.func.vmap
    gen = torch.Generator().manual_seed(6)
    phi = torch.randn(3, 50, 4, generator=gen, dtype=torch.float64)
    t = (torch.rand(3, 50, generator=gen) < 0.3).to(torch.float64)
    t[2, :] = 1.0  # one batch without controls: contributes zero in both forms
    mapped = torch.func.vmap(ipm)(phi, t)
    looped = torch.stack([ipm(p, tt) for p, tt in zip(phi, t)])
    torch.testing.assert_close(mapped, looped)
    assert float(looped[2]) == 0.0


@pytest.mark.parametrize("ipm", [mmd_linear, mmd_rbf, wasserstein],
                         ids=lambda f: f.__name__)
def test_zero_one_weights_give_the_ipm_of_the_weighted_in_rows(ipm):
    # a member's own split, a cross-fitting fold: rows of weight 0 take no part at all,
    # not in the bandwidth nor in the Sinkhorn scale, and the weights' scale is free
    gen = torch.Generator().manual_seed(7)
    phi = torch.randn(60, 4, generator=gen, dtype=torch.float64)
    t = (torch.rand(60, generator=gen) < 0.4).to(torch.float64)
    keep = torch.rand(60, generator=gen) < 0.6
    phi_far = phi.clone()
    phi_far[~keep] += 50.0  # the left-out rows would change every term if they counted
    subset = ipm(phi[keep], t[keep])
    torch.testing.assert_close(ipm(phi_far, t, keep.to(torch.float64)), subset)
    torch.testing.assert_close(ipm(phi_far, t, 3.5 * keep.to(torch.float64)), subset)
    torch.testing.assert_close(ipm(phi, t, torch.ones(60, dtype=torch.float64)),
                               ipm(phi, t))


def test_wasserstein_count_weights_equal_repeated_rows():
    # bootstrap counts: a row drawn twice is two copies of it
    gen = torch.Generator().manual_seed(8)
    phi = torch.randn(30, 3, generator=gen, dtype=torch.float64)
    t = (torch.rand(30, generator=gen) < 0.5).to(torch.float64)
    counts = torch.randint(0, 3, (30,), generator=gen).to(torch.float64)
    rows = torch.repeat_interleave(torch.arange(30), counts.long())
    torch.testing.assert_close(wasserstein(phi, t, counts), wasserstein(phi[rows], t[rows]))


@pytest.mark.parametrize("ipm", [mmd_linear, mmd_rbf])
def test_weighted_mmd_leaves_out_a_rows_pairs_with_its_own_copies(ipm):
    # with count weights the within-arm average runs over pairs of distinct rows, so
    # doubling every weight changes nothing; and one row of weight 5 is still one row
    gen = torch.Generator().manual_seed(9)
    phi = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    t = (torch.rand(40, generator=gen) < 0.5).to(torch.float64)
    counts = torch.randint(1, 4, (40,), generator=gen).to(torch.float64)
    torch.testing.assert_close(ipm(phi, t, counts), ipm(phi, t, 2 * counts))
    lone = torch.zeros(40, dtype=torch.float64)
    lone[torch.nonzero(t == 1)[0]] = 5.0
    lone[t == 0] = 1.0
    assert float(ipm(phi, t, lone)) == 0.0  # one treated row: no within-arm pair


def test_weighted_median_bandwidth_is_the_median_of_the_weighted_in_pairs():
    gen = torch.Generator().manual_seed(10)
    phi = torch.randn(25, 2, generator=gen, dtype=torch.float64)
    keep = torch.rand(25, generator=gen) < 0.5
    sq = pairwise_sq_distances(phi)
    expected = median_bandwidth(pairwise_sq_distances(phi[keep]), 0.0)
    # (the two distance matrices are centred on different means: equal to round-off)
    assert float(median_bandwidth(sq, 0.0, keep.to(torch.float64))) == pytest.approx(
        float(expected), rel=1e-12)


@pytest.mark.parametrize("ipm", [mmd_linear, mmd_rbf, wasserstein],
                         ids=lambda f: f.__name__)
def test_a_positional_bandwidth_or_blur_is_refused(ipm):
    # weight is the third parameter: a number there is an old positional call
    phi = torch.randn(20, 3, dtype=torch.float64)
    t = (torch.arange(20) % 2).to(torch.float64)
    with pytest.raises(TypeError, match="weight must be None or a tensor of shape"):
        ipm(phi, t, 0.5)
    with pytest.raises(TypeError, match=r"shape \(20,\)"):
        ipm(phi, t, torch.ones(19, dtype=torch.float64))


@pytest.mark.parametrize("blur", [1e-3, 5e-3, 1e-2, 0.1])
def test_wasserstein_with_a_small_blur_stays_near_exact_transport(blur):
    """Two arms 3 apart in each coordinate: with CFR's 10 Sinkhorn iterations the
    entropic value stays within 10% of the exact Wasserstein-1 (an assignment problem)
    for any blur. With the other arm's rows given a mass of 1e-30 instead of none, a
    small blur let a treated column draw its mass from its own empty row at no cost:
    0.90 at blur 1e-3 and 2.81 at 5e-3 for an exact 3.33."""
    from scipy.optimize import linear_sum_assignment
    rng = np.random.RandomState(0)
    a, b = rng.normal(size=(20, 2)), rng.normal(size=(20, 2)) + 3.0
    cost = np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))
    rows, cols = linear_sum_assignment(cost)
    exact = cost[rows, cols].mean()
    phi = torch.tensor(np.vstack([a, b]), dtype=torch.float32)
    t = torch.tensor([0.0] * 20 + [1.0] * 20)
    assert float(wasserstein(phi, t, blur=blur)) == pytest.approx(exact, rel=0.1)


@pytest.mark.parametrize("kwargs, match", [
    ({"blur": 0.0}, "blur must be positive"), ({"blur": -1.0}, "blur must be positive"),
    ({"n_iter": 0}, "n_iter must be an int >= 1")])
def test_wasserstein_refuses_degenerate_settings(kwargs, match):
    phi, t = torch.randn(8, 2), torch.tensor([0.0, 1.0] * 4)
    with pytest.raises(ValueError, match=match):
        wasserstein(phi, t, **kwargs)


def test_mmd_rbf_refuses_a_zero_bandwidth():
    phi, t = torch.randn(8, 2), torch.tensor([0.0, 1.0] * 4)
    with pytest.raises(ValueError, match="bandwidth must be positive"):
        mmd_rbf(phi, t, bandwidth=0.0)


def test_wasserstein_compares_distributions_when_the_arms_differ_in_size():
    """Each arm is a probability distribution whatever its size: 10 controls on a grid
    and 30 treated rows (that grid three times) shifted by 0.3 are one distribution and
    its shift, W1 = 0.3 exactly; the two arms' masses each sum to one."""
    a = np.linspace(0, 1, 10)[:, None]
    phi, t = _split(a, np.tile(a, (3, 1)) + 0.3)
    value = float(wasserstein(phi, t, blur=0.002, n_iter=2000))
    assert value == pytest.approx(0.3, abs=0.01)
