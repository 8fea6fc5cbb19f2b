"""Probabilistic factor models of many causes (the deconfounder's first stage).

Wang & Blei (2019) fit a factor model ``p(z) prod_j p(a_j | z)`` to the causes and use
``E[Z | A]`` as a substitute confounder. The modules here return the causes'
distribution given factors, as ``torch.distributions`` objects (house style 11):

- :class:`MatrixFactorization`: one factor row per unit (a point estimate, found by
  maximum a posteriori training), linear natural parameters ``b + z W``;
- :class:`DeepFactorModel`: a variational autoencoder whose decoder maps ``z`` to the
  natural parameters through an MLP and whose encoder gives ``q(z | a)`` from the
  observed entries only (held-out entries are masked), so it serves the predictive check.

``natural`` parameters are logits (Bernoulli), log-rates (Poisson) or means (Gaussian).
"""
import torch
from torch import nn
from torch.distributions import Bernoulli, Normal, Poisson

from .mlp import MLP
from .members import fit_dtype

__all__ = ["LIKELIHOODS", "cause_distribution", "MatrixFactorization", "DeepFactorModel"]

LIKELIHOODS = ("bernoulli", "poisson", "gaussian")

# exp of a log-rate above this overflows float32 rates in the Poisson likelihood
_MAX_LOG_RATE = 20.0


def cause_distribution(likelihood, natural, scale=None):
    """The causes' distribution with natural parameters ``natural`` (any batch shape)."""
    if likelihood == "bernoulli":
        return Bernoulli(logits=natural, validate_args=False)
    if likelihood == "poisson":
        return Poisson(rate=natural.clamp(max=_MAX_LOG_RATE).exp(), validate_args=False)
    if likelihood == "gaussian":
        return Normal(natural, scale, validate_args=False)
    raise ValueError(f"unknown likelihood {likelihood!r}; expected one of {LIKELIHOODS}.")


class MatrixFactorization(nn.Module):
    """``a_ij ~ p(. | b_j + z_i' w_j)`` with per-unit factors ``z_i`` and loadings ``W``.

    Parameters
    ----------
    n_units, n_causes, n_factors : int
    likelihood : {"bernoulli", "poisson", "gaussian"}
    generator : torch.Generator
        Draws the initial factors and loadings.
    """

    def __init__(self, n_units, n_causes, n_factors, likelihood, generator):
        super().__init__()
        self.likelihood = likelihood
        self.factors = nn.Parameter(
            0.1 * torch.randn(n_units, n_factors, generator=generator, dtype=fit_dtype()))
        self.loadings = nn.Parameter(
            0.1 * torch.randn(n_factors, n_causes, generator=generator, dtype=fit_dtype()))
        self.bias = nn.Parameter(torch.zeros(n_causes, dtype=fit_dtype()))
        # used when gaussian
        self.log_scale = nn.Parameter(torch.zeros(n_causes, dtype=fit_dtype()))

    def natural(self, z):
        return self.bias + z @ self.loadings

    def forward(self, rows):
        """Distribution of the causes of units ``rows`` (a long tensor of indices)."""
        return cause_distribution(self.likelihood, self.natural(self.factors[rows]),
                                  self.log_scale.exp())


class DeepFactorModel(nn.Module):
    """Variational autoencoder of the causes: ``z ~ N(0, I)``, ``a | z ~ p(. | f(z))``.

    The encoder sees ``(a * observed, observed)``, so entries held out for the
    predictive check inform neither ``q(z | a)`` nor the reconstruction loss.

    Parameters
    ----------
    n_causes, n_factors : int
    hidden : sequence of int
        Hidden widths of the encoder and of the decoder.
    likelihood : {"bernoulli", "poisson", "gaussian"}
    activation : str, default="elu"
    """

    def __init__(self, n_causes, n_factors, hidden, likelihood, activation="elu"):
        super().__init__()
        self.likelihood = likelihood
        self.encoder = MLP(2 * n_causes, hidden, out_features=2 * n_factors,
                           activation=activation)
        self.decoder = MLP(n_factors, tuple(reversed(hidden)), out_features=n_causes,
                           activation=activation)
        # used when gaussian
        self.log_scale = nn.Parameter(torch.zeros(n_causes, dtype=fit_dtype()))

    def encode(self, a, observed):
        """``q(z | observed entries of a)``, a diagonal Normal."""
        mean, log_std = self.encoder(torch.cat([a * observed, observed], dim=-1)).chunk(2, -1)
        return Normal(mean, log_std.clamp(-8.0, 4.0).exp(), validate_args=False)

    def natural(self, z):
        return self.decoder(z)

    def forward(self, z):
        """Distribution of the causes given factors ``z``."""
        return cause_distribution(self.likelihood, self.natural(z), self.log_scale.exp())
