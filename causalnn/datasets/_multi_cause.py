"""Simulated data with many causes and a shared latent confounder.

The generative process of Wang & Blei (2019), "The Blessings of Multiple Causes": a
latent ``Z`` drives every cause ``A_j`` and the outcome ``Y``, so each cause's
association with ``Y`` mixes its own effect with ``Z``'s. The per-cause effects
``E[Y | do(A_j = 1)] - E[Y | do(A_j = 0)]`` are returned with the data.

References
----------
.. [1] Y. Wang and D. M. Blei, "The Blessings of Multiple Causes", Journal of the
   American Statistical Association, 114(528):1574-1596, 2019.
"""
import numbers

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

from ._checks import check_int, check_real, check_seed

__all__ = ["make_multi_cause", "make_films"]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# probabilists' Gauss-Hermite rule: E[g(e)], e ~ N(0, 1), as sum(w * g(nodes)) / sqrt(2 pi)
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(60)
_WEIGHTS = _WEIGHTS / np.sqrt(2 * np.pi)


def _baseline_logits(rates, spreads):
    """``b_j`` with ``E[sigmoid(b_j + s_j e)] = rates_j`` for ``e ~ N(0, 1)``.

    The marginal rate increases in ``b``, so bisection on the logit converges; the
    expectation is taken by Gauss-Hermite quadrature (exact to ~1e-10 here).
    """
    low = np.full_like(rates, -60.0)
    high = np.full_like(rates, 60.0)
    for _ in range(80):
        middle = 0.5 * (low + high)
        rate = _sigmoid(middle[:, None] + spreads[:, None] * _NODES) @ _WEIGHTS
        too_low = rate < rates
        low = np.where(too_low, middle, low)
        high = np.where(too_low, high, middle)
    return 0.5 * (low + high)


def make_multi_cause(n_samples=2000, n_causes=50, n_factors=5, *, confounding=1.0,
                     effect_scale=1.0, noise=1.0, loading_scale=1.0, prevalence=0.3,
                     random_state=None):
    """Many binary causes driven by latent factors that also drive the outcome.

    ``Z_i ~ N(0, I_k)``; ``A_ij ~ Bernoulli(sigmoid(b_j + theta_j' Z_i))``;
    ``Y_i = sum_j beta_j A_ij + confounding * sqrt(n_causes) * gamma' Z_i + noise * eps``
    with ``theta_j ~ N(0, loading_scale^2 I)``, ``beta_j ~ N(0, effect_scale^2)``,
    ``gamma ~ N(0, I_k / k)`` and ``b_j`` solved numerically so that cause ``j`` is
    present in a fraction ``sigmoid(logit(prevalence) + 0.3 u_j)``, ``u_j ~ N(0, 1)``,
    of the rows (its marginal rate over ``Z``; the rates spread around ``prevalence``,
    the median of their distribution). The outcome is linear in the causes, so the effect of
    cause ``j`` is ``beta_j`` for every row. The confounder's term grows with
    ``sqrt(n_causes)`` so that its share of the outcome stays comparable to the causes'
    as ``n_causes`` varies.

    Parameters
    ----------
    n_samples : int, default=2000
    n_causes : int, default=50
        ``m``, the number of causes.
    n_factors : int, default=5
        ``k``, the dimension of the latent confounder.
    confounding : float, default=1.0
        Strength of the confounder's effect on the outcome; 0 gives unconfounded data.
    effect_scale, noise, loading_scale : float, default=1.0
        Standard deviations of the effects, the outcome noise and the loadings.
    prevalence : float, default=0.3
        Median of the distribution of the causes' rates: the fraction of rows in
        which a cause is present (``0 < prevalence < 1``). Each cause's marginal rate
        is exact in expectation over ``Z``, whatever ``n_factors`` and
        ``loading_scale``, but the rates themselves are random (the ``0.3 u_j``
        spread), so a given draw's mean or median rate over its causes is only near
        ``prevalence`` (at the defaults, over 30 seeds, the mean rate was within 0.014
        of it in 90% of draws, 0.028 at worst).
    random_state : int, RandomState or None, default=None

    Returns
    -------
    data : sklearn.utils.Bunch
        ``treatment`` (n, m) causes in {0, 1}; ``y`` (n,); ``X`` None (no observed
        covariates); ``effects`` (m,) the true per-cause effects ``beta``;
        ``confounder`` (n, k) the latent ``Z``; ``loadings`` (k, m) ``theta``.
    """
    check_int(n_samples, "n_samples", 2)
    check_int(n_causes, "n_causes", 2)
    check_int(n_factors, "n_factors", 1)
    for name, value in (("confounding", confounding), ("effect_scale", effect_scale),
                        ("noise", noise), ("loading_scale", loading_scale)):
        check_real(value, name, low=0.0)
    if (not isinstance(prevalence, numbers.Real) or isinstance(prevalence, bool)
            or not 0 < prevalence < 1):
        raise ValueError(f"prevalence must be a number strictly between 0 and 1 (the "
                         f"fraction of rows in which a cause is present); got "
                         f"{prevalence!r}.")
    rng = check_seed(random_state)
    Z = rng.randn(n_samples, n_factors)
    theta = loading_scale * rng.randn(n_factors, n_causes)
    rates = _sigmoid(np.log(prevalence / (1 - prevalence)) + 0.3 * rng.randn(n_causes))
    # theta_j' Z ~ N(0, |theta_j|^2): the baseline logit must offset its spread, which
    # pulls the marginal rate towards 1/2 (logit(0.05) gave 0.14 with 5 factors)
    base = _baseline_logits(rates, np.linalg.norm(theta, axis=0))
    A = (rng.rand(n_samples, n_causes) < _sigmoid(base + Z @ theta)).astype(np.float64)
    beta = effect_scale * rng.randn(n_causes)
    gamma = rng.randn(n_factors) / np.sqrt(n_factors)
    y = A @ beta + confounding * np.sqrt(n_causes) * Z @ gamma + noise * rng.randn(n_samples)
    return Bunch(treatment=A, y=y, X=None, effects=beta, confounder=Z, loadings=theta,
                 DESCR=make_multi_cause.__doc__)


def make_films(n_films=2000, n_actors=80, n_franchises=4, *, cast_size=8,
               franchise_boost=2.0, random_state=None):
    """Film casts and log revenue with latent franchises (the deconfounder's example).

    Each film belongs to one of ``n_franchises`` latent franchises with probability
    0.1 each (else to none). A franchise has a core cast of ``cast_size`` actors, each
    in 60% of its films and rarely elsewhere; the other actors appear at random, more
    often in films of one of two latent "genres". Log revenue is the sum of the cast's
    own effects, the genre's and the franchise's boost, and noise. Actor ``"planted"``
    appears in 90% of the most lucrative franchise's films (and in 3% of the others)
    and has **no** effect of its own: a naive regression credits it with the
    franchise's revenue (Wang & Blei's example of a supporting actor in every James
    Bond film), the deconfounder should not.

    Parameters
    ----------
    n_films : int, default=2000
    n_actors : int, default=80
    n_franchises : int, default=4
        Between 1 and 9: each franchise takes 10% of the films, the rest belong to
        none.
    cast_size : int, default=8
        Core cast of each franchise.
    franchise_boost : float, default=2.0
        Log-revenue boost of the most lucrative franchise (the others get less).
    random_state : int, RandomState or None, default=None

    Returns
    -------
    data : sklearn.utils.Bunch
        ``treatment`` DataFrame (n_films, n_actors) of 0/1 cast indicators with actor
        names as columns; ``y`` (n_films,) log revenue; ``X`` None; ``effects``
        Series of true per-actor effects; ``franchise`` (n_films,) latent franchise
        (-1 for none); ``planted_cause`` the name of the planted actor.
    """
    check_int(n_films, "n_films", 10)
    check_int(n_franchises, "n_franchises", 1)
    if n_franchises > 9:  # 10% of the films each, and some films in none
        raise ValueError(f"n_franchises must be at most 9 (each franchise takes 10% of "
                         f"the films); got {n_franchises}.")
    check_int(cast_size, "cast_size", 1)
    check_int(n_actors, "n_actors", cast_size * n_franchises + 3)
    check_real(franchise_boost, "franchise_boost")
    rng = check_seed(random_state)
    names = ["planted"] + [f"actor_{j:03d}" for j in range(1, n_actors)]
    franchise = np.where(rng.rand(n_films) < 0.1 * n_franchises,
                         rng.randint(n_franchises, size=n_films), -1)
    genre = rng.randint(2, size=n_films)
    core = 1 + np.arange(cast_size * n_franchises).reshape(n_franchises, cast_size)
    others = np.arange(1 + core.size, n_actors)
    lean = rng.randint(2, size=n_actors)
    prob = np.full((n_films, n_actors), 0.01)
    prob[:, others] = np.where(genre[:, None] == lean[None, others], 0.12, 0.03)
    for f in range(n_franchises):
        prob[np.ix_(franchise == f, core[f])] = 0.6
    prob[:, 0] = np.where(franchise == 0, 0.9, 0.03)
    A = (rng.rand(n_films, n_actors) < prob).astype(np.float64)
    effects = 0.3 * rng.randn(n_actors)
    effects[0] = 0.0  # the planted actor
    boosts = franchise_boost * np.linspace(1.0, 0.3, n_franchises)
    y = (A @ effects + np.where(franchise >= 0, boosts[np.maximum(franchise, 0)], 0.0)
         + 0.5 * genre + 0.5 * rng.randn(n_films) + 15.0)
    return Bunch(treatment=pd.DataFrame(A, columns=names), y=y, X=None,
                 effects=pd.Series(effects, index=names), franchise=franchise,
                 planted_cause="planted", DESCR=make_films.__doc__)
