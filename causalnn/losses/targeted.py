"""Targeted regularisation (Shi, Blei, Veitch 2019, Sec. 3).

With outcome model ``Q(t, x)`` and propensity ``g(x)``, the fluctuated outcome is

    Q~(t, x; eps) = Q(t, x) + eps * H(t, x),  H(t, x) = t / g(x) - (1 - t) / (1 - g(x)),

(on the linear-predictor scale; for a binary outcome this is the logistic fluctuation of
TMLE). The regulariser is the outcome loss of ``Q~`` on the factual data, minimised jointly
over the network and the scalar ``eps``. At a stationary point in ``eps`` the
efficient-influence-curve equation holds, so the plug-in ATE of ``Q~`` is a targeted
estimate.
"""
import numpy as np
import torch
from scipy.special import expit, logit
from torch import nn

__all__ = ["TargetedRegularization", "clever_covariate", "fit_logistic_fluctuation",
           "fluctuate"]


def fluctuate(eta0, eta1, g, epsilon):
    """Fluctuated linear predictors of both arms, ``(Q~(0, x), Q~(1, x))``.

    Plain arithmetic, so it serves tensors in training and arrays at prediction.
    """
    return eta0 - epsilon / (1.0 - g), eta1 + epsilon / g


def clever_covariate(t, g):
    """``H(t, x) = t / g - (1 - t) / (1 - g)``; ``g`` must already be clipped."""
    return t / g - (1.0 - t) / (1.0 - g)


def fit_logistic_fluctuation(y01, q, h, weight=None, max_iter=100, tol=1e-12):
    """Fit ``eps`` of the logistic submodel ``expit(logit(q) + eps * h)`` to ``y01``
    (in [0, 1]) with row weights ``weight`` by Newton's method with step halving;
    returns ``eps``.

    At the optimum the score ``sum weight * h * (y01 - expit(logit(q) + eps h))`` is
    zero, which is the equation TMLE needs solved.
    """
    off = logit(q)
    eps = 0.0
    w = np.ones_like(h) if weight is None else weight

    def loss(e):
        qe = expit(off + e * h)
        qe = np.clip(qe, 1e-12, 1 - 1e-12)
        return -np.sum(w * (y01 * np.log(qe) + (1 - y01) * np.log(1 - qe)))

    current = loss(eps)
    for _ in range(max_iter):
        qe = expit(off + eps * h)
        grad = np.sum(w * h * (qe - y01))
        hess = np.sum(w * h * h * qe * (1 - qe))
        if hess <= 0 or abs(grad) < tol * max(1.0, len(h)):
            break
        step = grad / hess
        for _ in range(50):
            if loss(eps - step) <= current:
                break
            step /= 2
        eps -= step
        current = loss(eps)
        if abs(step) < 1e-14:
            break
    return eps


class TargetedRegularization(nn.Module):
    """Holds the trainable fluctuation parameter ``epsilon`` (initialised at 0).

    ``n_members=M`` holds one ``epsilon`` per member, shape ``(M,)``, for inputs with a
    leading member axis ``(M, n)``.
    """

    def __init__(self, n_members=None):
        super().__init__()
        self.n_members = n_members
        shape = () if n_members is None else (n_members,)
        self.epsilon = nn.Parameter(torch.zeros(shape, dtype=torch.float32))

    def forward(self, eta_factual, t, g):
        """Fluctuated factual linear predictor ``Q~(t_i, x_i)``."""
        epsilon = self.epsilon if self.epsilon.dim() == 0 else self.epsilon[:, None]
        return eta_factual + epsilon * clever_covariate(t, g)
