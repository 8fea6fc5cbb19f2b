"""The synthetic proxy experiment of Louizos et al. (2017): a binary latent confounder
seen only through noisy proxies.

References
----------
.. [1] C. Louizos, U. Shalit, J. Mooij, D. Sontag, R. Zemel and M. Welling, "Causal
   effect inference with deep latent-variable models", NeurIPS, 2017, Section 5.
"""
import numpy as np
from sklearn.utils import Bunch

from ._checks import check_int, check_real, check_seed

__all__ = ["make_proxy_confounded"]


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def make_proxy_confounded(n=5000, *, n_proxies=5, noise_scale=1.0,
                          outcome_confounding=1.0, random_state=None):
    """Simulate the binary-latent-confounder experiment of Louizos et al. (2017).

    The data-generating process of the paper, with ``n_proxies`` conditionally
    independent proxies::

        z   ~ Bern(0.5)
        x_j | z ~ N(z, s^2),  s = noise_scale * (5 z + 3 (1 - z)),  j = 1..n_proxies
        t | z ~ Bern(0.75 z + 0.25 (1 - z))
        y | t, z ~ Bern(sigmoid(3 (c z + 2 (2 t - 1)))),  c = outcome_confounding

    ``z`` confounds ``t`` and ``y`` and is not returned in ``X``; adjusting for the
    proxies ``X`` alone leaves bias that shrinks as the proxies get more numerous or
    less noisy. The true effect depends on ``z`` only.

    Parameters
    ----------
    n : int, default=5000
        Number of rows.
    n_proxies : int, default=5
        Number of proxy columns.
    noise_scale : float, default=1.0
        Multiplies the proxies' standard deviations (3 and 5 in the paper): smaller is
        more informative.
    outcome_confounding : float, default=1.0
        Weight ``c`` of ``z`` in the outcome's logit (1 in the paper). With the paper's
        1 the outcome nearly saturates in ``t`` and the confounding bias of the
        difference in means is only about 0.012; ``c = 2`` raises it to 0.125 (for
        ``z = 1`` the untreated outcome probability becomes 0.5 instead of 0.05), so
        that adjustment methods can be told apart.
    random_state : int, RandomState or None, default=None
        Seed of the simulation.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        X : ndarray of shape (n, n_proxies)
            The proxies.
        treatment : ndarray of shape (n,)
            Treatment in {0, 1}.
        y : ndarray of shape (n,)
            Binary outcome.
        z : ndarray of shape (n,)
            The latent confounder (for diagnostics; an estimator never sees it).
        mu0, mu1 : ndarray of shape (n,)
            ``P(y = 1 | do(t), z)`` for t = 0 and 1.
        ite : ndarray of shape (n,)
            ``mu1 - mu0``.
        ate : float
            The population ATE, ``E_z[mu1 - mu0]`` under ``z ~ Bern(0.5)`` (not the
            sample mean of ``ite``).

    Examples
    --------
    >>> from causalnn.datasets import make_proxy_confounded
    >>> data = make_proxy_confounded(n=1000, random_state=0)
    >>> data.X.shape
    (1000, 5)
    """
    check_int(n, "n", 2)
    check_int(n_proxies, "n_proxies", 1)
    check_real(noise_scale, "noise_scale", low=0.0, low_open=True)
    c = check_real(outcome_confounding, "outcome_confounding")
    rng = check_seed(random_state)
    z = rng.binomial(1, 0.5, size=n).astype(float)
    scale = noise_scale * (5.0 * z + 3.0 * (1.0 - z))
    X = z[:, None] + scale[:, None] * rng.randn(n, n_proxies)
    treatment = rng.binomial(1, 0.75 * z + 0.25 * (1.0 - z)).astype(float)
    mu0 = _sigmoid(3.0 * (c * z - 2.0))
    mu1 = _sigmoid(3.0 * (c * z + 2.0))
    y = rng.binomial(1, np.where(treatment == 1, mu1, mu0)).astype(float)
    # E_z[mu1 - mu0] with z ~ Bern(0.5): z = 0 gives sigmoid(6) - sigmoid(-6), z = 1
    # gives sigmoid(3 (c + 2)) - sigmoid(3 (c - 2))
    ate = 0.5 * ((_sigmoid(6.0) - _sigmoid(-6.0))
                 + (_sigmoid(3.0 * (c + 2.0)) - _sigmoid(3.0 * (c - 2.0))))
    return Bunch(X=X, treatment=treatment, y=y, z=z, mu0=mu0, mu1=mu1,
                 ite=mu1 - mu0, ate=float(ate),
                 feature_names=[f"proxy{j}" for j in range(1, n_proxies + 1)])
