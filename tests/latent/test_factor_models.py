"""The deconfounder's factor models and held-out predictive check against known truths."""
import numpy as np
import pytest
import torch

from causalnn.estimators.latent._factor_models import (MatrixFactorizationModel,
                                                       PPCAFactorModel, predictive_check)


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
