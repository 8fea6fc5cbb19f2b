"""The deconfounder's factor models and held-out predictive check against known truths."""
import warnings

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from causalnn.estimators.latent._factor_models import (MatrixFactorizationModel,
                                                       PPCAFactorModel, predictive_check)
from causalnn.exceptions import ConvergenceWarning


def _true_bernoulli_model(n=2000, m=20, k=2, seed=0):
    """Causes drawn from a known logistic factor model, and that model."""
    rng = np.random.RandomState(seed)
    Z, W, b = rng.randn(n, k), rng.randn(k, m), -0.8 + 0.3 * rng.randn(m)
    A = (rng.rand(n, m) < 1 / (1 + np.exp(-(b + Z @ W)))).astype(np.float64)
    model = MatrixFactorizationModel(k, "bernoulli")
    model.loadings_, model.bias_ = W, b
    return A, model


def test_mid_p_check_scores_one_half_for_the_true_discrete_model():
    # 20 binary causes, 20% held out: about 4 held-out entries per unit, so replicated
    # statistics often tie the observed one. With the true model the strict p-value
    # P(t_rep < t_obs) averages about 0.40 (ties count 0); the mid-p value (ties count
    # 1/2) is calibrated at 0.5.
    A, model = _true_bernoulli_model()
    held_out = np.random.RandomState(1).rand(*A.shape) < 0.2
    scores = {}
    for pvalue in ("mid", "strict"):
        scores[pvalue], unit = predictive_check(
            model, A, held_out, n_replicates=100,
            generator=torch.Generator().manual_seed(1), pvalue=pvalue)
        assert unit.shape == (2000,)
    assert scores["mid"] == pytest.approx(0.5, abs=0.02)
    assert scores["strict"] < 0.45


def test_mid_p_and_strict_agree_for_real_valued_causes():
    rng = np.random.RandomState(0)
    A = rng.randn(300, 2) @ rng.randn(2, 12) + 0.5 * rng.randn(300, 12)
    held_out = rng.rand(*A.shape) < 0.2
    model = PPCAFactorModel(2).fit(A, ~held_out, 0)
    mid = predictive_check(model, A, held_out, n_replicates=50,
                           generator=torch.Generator().manual_seed(0), pvalue="mid")
    strict = predictive_check(model, A, held_out, n_replicates=50,
                              generator=torch.Generator().manual_seed(0), pvalue="strict")
    assert mid[0] == strict[0]
    with pytest.raises(ValueError, match="pvalue must be 'mid' or 'strict'"):
        predictive_check(model, A, held_out, generator=torch.Generator(), pvalue="x")


@pytest.mark.parametrize("n, m", [(12, 5), (8, 20)])
def test_ppca_on_complete_data_is_the_tipping_bishop_ml_solution(n, m):
    # closed form (Tipping & Bishop 1999, eq. 7-8): sigma^2 the mean of the m - k
    # discarded eigenvalues of the covariance with divisor n, W W' from the kept ones.
    # scikit-learn's divisor n - 1 gave sigma^2 12/11 times too large at n=12; with
    # fewer units than causes it averages only min(n, m) - k eigenvalues, leaving out
    # the zeros (3 times too large at n=8, m=20)
    rng = np.random.RandomState(0)
    k = 2
    A = rng.randn(n, k) @ rng.randn(k, m) + 0.4 * rng.randn(n, m)
    model = PPCAFactorModel(k).fit(A, np.ones_like(A, dtype=bool), 0)
    eigenvalues, vectors = np.linalg.eigh(np.cov(A.T, bias=True))
    eigenvalues, vectors = eigenvalues[::-1], vectors[:, ::-1]
    sigma2 = eigenvalues[k:].mean()
    W = vectors[:, :k] * np.sqrt(eigenvalues[:k] - sigma2)
    assert model.noise_variance_ == pytest.approx(sigma2, rel=1e-12)
    np.testing.assert_allclose(model.loadings_.T @ model.loadings_, W @ W.T, atol=1e-12)
    np.testing.assert_allclose(model.mean_, A.mean(0), atol=1e-12)
    covariance = W @ W.T + sigma2 * np.eye(m)
    assert model.log_likelihood(A, np.ones_like(A, dtype=bool)) == pytest.approx(
        multivariate_normal(A.mean(0), covariance).logpdf(A).sum(), rel=1e-12)


def _ppca_causes(m, n=2000, k=2, seed=0):
    """Causes from a known PPCA (unit noise) and a 20% held-out mask."""
    rng = np.random.RandomState(seed)
    A = rng.randn(n, k) @ rng.randn(k, m) + rng.randn(n, m)
    return A, rng.rand(n, m) < 0.2


def test_ppca_with_held_out_entries_is_the_missing_data_ml_fit():
    # EM for PPCA with missing values: sigma^2 from the observed entries agrees with the
    # complete-data ML fit up to the information lost with 20% of the entries (the
    # difference was -0.013..0.015 over 8 simulations; 0.04 is about 4 sd). Mean
    # imputation without the posterior covariances gave -0.06..-0.12.
    A, held_out = _ppca_causes(m=6)
    complete = PPCAFactorModel(2).fit(A, np.ones_like(held_out), 0)
    model = PPCAFactorModel(2).fit(A, ~held_out, 0)
    assert model.noise_variance_ == pytest.approx(complete.noise_variance_, abs=0.04)
    assert complete.noise_variance_ == pytest.approx(1.0, abs=0.05)
    # a maximum of the observed entries' likelihood: moving sigma^2 or W lowers it
    best = model.log_likelihood(A, ~held_out)
    for attr, factor in (("noise_variance_", 0.95), ("noise_variance_", 1.05),
                         ("loadings_", 0.97), ("loadings_", 1.03)):
        moved = PPCAFactorModel(2)
        vars(moved).update(vars(model))
        setattr(moved, attr, getattr(model, attr) * factor)
        assert moved.log_likelihood(A, ~held_out) < best


def test_check_scores_one_half_for_the_true_ppca_model():
    # the true model, refitted with entries held out, should be calibrated: a sigma^2
    # biased low (mean imputation) made held-out entries look too unlikely and the
    # score 0.47 (0.46 at m = 4); one check's score has sd about 0.29 / sqrt(2000)
    scores = []
    for m in (4, 6):
        A, held_out = _ppca_causes(m=m, seed=1)
        model = PPCAFactorModel(2).fit(A, ~held_out, 0)
        scores.append(predictive_check(model, A, held_out, n_replicates=100,
                                       generator=torch.Generator().manual_seed(0))[0])
    assert np.mean(scores) == pytest.approx(0.5, abs=0.02), scores


def test_ppca_em_says_when_it_runs_out_of_iterations():
    A, held_out = _ppca_causes(m=6, n=300)
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        PPCAFactorModel(2, max_iter=2).fit(A, ~held_out, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model = PPCAFactorModel(2).fit(A, ~held_out, 0)
    assert 2 < model.n_iter_ < model.max_iter


def test_check_gives_small_p_values_to_a_model_that_mispredicts_the_held_out_causes():
    """Wang & Blei's p-value is ``P(t(a_rep) < t(a_held))`` with ``t`` the held-out
    log-likelihood: under a wrong model (the true one with every cause's baseline logit
    raised by 2, so it expects far more 1s) the observed held-out entries are less
    likely than the model's own replicates, so the p-values pile up near 0 and the
    check fails. A calibrated model scores 0.5 (SE about 0.29 / sqrt(500) = 0.013) with
    10% of units below 0.1; a reversed comparison would push them towards 1."""
    A, model = _true_bernoulli_model(n=500)
    model.bias_ = model.bias_ + 2.0
    held_out = np.random.RandomState(1).rand(*A.shape) < 0.2
    score, unit = predictive_check(model, A, held_out, n_replicates=50,
                                   generator=torch.Generator().manual_seed(0))
    assert score < 0.3
    assert np.nanmean(unit < 0.1) > 0.3
    assert np.nanmean(unit > 0.9) < 0.05


def test_unit_p_values_of_the_true_ppca_model_are_uniform():
    """With the true parameters, a unit's held-out entries given its observed ones are
    distributed as the posterior predictive the replicates are drawn from (each
    replicate from a fresh posterior draw of z), so the unit p-values are uniform: with
    100 replicates, 10/101 of units fall in the two 5% tails (SE about 0.007 here).
    Replicates from a single posterior draw ignore z's uncertainty and double that."""
    from causalnn.estimators.latent._factor_models import extreme_fraction
    rng = np.random.RandomState(0)
    n, m, k = 2000, 6, 2
    W = 2.0 * rng.randn(k, m)
    A = rng.randn(n, k) @ W + rng.randn(n, m)
    held_out = rng.rand(n, m) < 0.3
    model = PPCAFactorModel(k)
    model.mean_, model.loadings_, model.noise_variance_ = np.zeros(m), W, 1.0
    score, unit = predictive_check(model, A, held_out, n_replicates=100,
                                   generator=torch.Generator().manual_seed(0))
    scored = int(np.sum(~np.isnan(unit)))
    expected = 10 / 101
    se = np.sqrt(expected * (1 - expected) / scored)
    assert extreme_fraction(unit, level=0.1) == pytest.approx(expected, abs=4 * se)
    assert score == pytest.approx(0.5, abs=4 * 0.29 / np.sqrt(scored))
