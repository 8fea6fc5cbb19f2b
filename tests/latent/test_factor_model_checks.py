"""The factor models behind the deconfounder's predictive check (Wang & Blei 2019)
against what is known (found by mutation testing): a fit and its posterior do not depend
on the values of the held-out entries; the matrix factorisations' Laplace covariance is
the inverse Hessian of the log posterior, prior included; the check's draws have the
posterior's covariance; the deep model's KL is the closed-form Gaussian KL."""
import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from causalnn.estimators.latent import _factor_models
from causalnn.estimators.latent._factor_models import (MatrixFactorizationModel, _t,
                                                       fit_factor_model, predictive_check)


def _fit(kind, likelihood, A, observed):
    kwargs = dict(optimizer="adam", learning_rate=1e-2, weight_decay=0.0, batch_size=64,
                  max_epochs=5, validation_fraction=0.0, patience=None,
                  device=torch.device("cpu"), verbose=0)
    return fit_factor_model(kind, likelihood, 2, A, observed, hidden=(16,),
                            trainer_kwargs=kwargs,
                            generator=torch.Generator().manual_seed(0), random_state=0)


@pytest.mark.parametrize("kind, likelihood", [("deep", "gaussian"), ("deep", "bernoulli"),
                                              ("bernoulli", "bernoulli"),
                                              ("poisson", "poisson"), ("ppca", "gaussian")])
def test_factor_model_ignores_the_values_of_held_out_entries(kind, likelihood):
    rng = np.random.RandomState(0)
    latent = rng.randn(200, 2) @ rng.randn(2, 8)
    observed = rng.rand(*latent.shape) > 0.2
    if likelihood == "gaussian":
        A = latent + 0.5 * rng.randn(*latent.shape)
        other = np.where(observed, A, A + 5.0 * rng.randn(*A.shape))
    elif likelihood == "bernoulli":
        A = (rng.rand(*latent.shape) < 1 / (1 + np.exp(-latent))) * 1.0
        other = np.where(observed, A, 1.0 - A)
    else:
        A = rng.poisson(np.exp(0.3 * latent)) * 1.0
        other = np.where(observed, A, A + rng.poisson(3.0, A.shape))
    model, model_other = _fit(kind, likelihood, A, observed), _fit(kind, likelihood, other,
                                                                    observed)
    mean, chol = model.posterior(_t(A), _t(observed))
    mean_other_values, _ = model.posterior(_t(other), _t(observed))
    np.testing.assert_allclose(mean.numpy(), mean_other_values.numpy(), atol=1e-6)
    mean_other_fit, chol_other_fit = model_other.posterior(_t(A), _t(observed))
    np.testing.assert_allclose(mean.numpy(), mean_other_fit.numpy(), atol=1e-5)
    np.testing.assert_allclose(chol.numpy(), chol_other_fit.numpy(), atol=1e-5)


@pytest.mark.parametrize("likelihood", ["bernoulli", "poisson"])
def test_mf_laplace_covariance_is_the_inverse_hessian_with_the_prior(likelihood):
    rng = np.random.RandomState(0)
    k, m = 2, 6
    model = MatrixFactorizationModel(k, likelihood)
    model.loadings_ = rng.randn(k, m) * 0.7
    model.bias_ = rng.randn(m) * 0.3
    A = torch.as_tensor((rng.rand(5, m) < 0.5) * 1.0 if likelihood == "bernoulli"
                        else rng.poisson(1.5, (5, m)) * 1.0, dtype=torch.float64)
    observed = torch.as_tensor(rng.rand(5, m) > 0.3, dtype=torch.float64)
    mean, chol = model.posterior(A, observed)
    W, b = torch.as_tensor(model.loadings_), torch.as_tensor(model.bias_)
    for i in range(A.shape[0]):
        def neg_log_post(z):
            eta = b + z @ W
            if likelihood == "bernoulli":
                ll = A[i] * eta - torch.nn.functional.softplus(eta)
            else:
                ll = A[i] * eta - eta.exp()
            return -(ll * observed[i]).sum() + 0.5 * (z ** 2).sum()
        z = mean[i].clone().requires_grad_(True)
        grad, = torch.autograd.grad(neg_log_post(z), z)
        assert grad.abs().max() < 1e-6  # the mode
        hessian = torch.autograd.functional.hessian(neg_log_post, mean[i])
        np.testing.assert_allclose((chol[i] @ chol[i].T).numpy(),
                                   torch.linalg.inv(hessian).numpy(), rtol=1e-6, atol=1e-9)


class _Recorder:
    """A factor model whose posterior has a known mean and Cholesky factor; ``natural``
    records the factors it is given (the first call receives the posterior draws)."""
    likelihood = "gaussian"
    n_factors = 2
    L = torch.tensor([[1.0, 0.0], [2.0, 0.5]], dtype=torch.float64)

    def __init__(self):
        self.calls = []

    def posterior(self, A, observed):
        n = A.shape[0]
        return torch.zeros(n, 2, dtype=torch.float64), self.L.expand(n, 2, 2)

    def natural(self, Z):
        self.calls.append(Z.clone())
        return Z

    @property
    def scale(self):
        return torch.tensor(1.0, dtype=torch.float64)


def test_predictive_check_draws_have_the_posterior_covariance():
    model = _Recorder()
    A = np.zeros((2000, 2))
    held = np.zeros_like(A, dtype=bool)
    held[:, 0] = True
    predictive_check(model, A, held, n_replicates=1, n_draws=20,
                     generator=torch.Generator().manual_seed(0))
    draws = model.calls[0].reshape(-1, 2).numpy()  # (S * n, k)
    expected = (model.L @ model.L.T).numpy()        # [[1, 2], [2, 4.25]]
    np.testing.assert_allclose(np.cov(draws.T), expected, atol=0.1)


def test_deep_factor_kl_term_is_the_closed_form_gaussian_kl(monkeypatch):
    captured = {}

    class Spy(_factor_models.Trainer):
        def __init__(self, *, loss_fn, **kwargs):
            captured["loss_fn"] = loss_fn
            super().__init__(loss_fn=loss_fn, **kwargs)

    monkeypatch.setattr(_factor_models, "Trainer", Spy)
    rng = np.random.RandomState(0)
    A = rng.randn(100, 2) @ rng.randn(2, 6) + 0.5 * rng.randn(100, 6)
    observed = np.ones_like(A, dtype=bool)
    kwargs = dict(optimizer="adam", learning_rate=1e-2, weight_decay=0.0, batch_size=50,
                  max_epochs=3, validation_fraction=0.0, patience=None,
                  device=torch.device("cpu"), verbose=0)
    model = _factor_models.fit_factor_model(
        "deep", "gaussian", 2, A, observed, hidden=(16,), trainer_kwargs=kwargs,
        generator=torch.Generator().manual_seed(0), random_state=0)
    batch = {"A": torch.as_tensor(model._standardize(A), dtype=torch.float32),
             "observed": torch.as_tensor(observed, dtype=torch.float32)}
    with torch.no_grad():
        kl = captured["loss_fn"](model.module_, batch)["kl"]
        q = model.module_.encode(batch["A"], batch["observed"])
        closed = kl_divergence(q, Normal(torch.zeros_like(q.loc), torch.ones_like(q.scale)))
    assert float(kl) == pytest.approx(float(closed.sum(1).mean()), rel=1e-5)
