"""Networks whose ``forward(context)`` returns a ``torch.distributions.Distribution``.

Densities come from :mod:`torch.distributions`; the only code written here is the sampler
:func:`sample`, because ``Distribution.sample`` draws from torch's global random state and
causalnn seeds everything through an explicit ``torch.Generator``.
"""
import torch
from torch import nn
from torch.distributions import (Categorical, Independent, MixtureSameFamily, Normal)
from torch.nn import functional as F

from ..engine.random import draw_to_device
from .members import linear_layer
from .mlp import MLP

__all__ = ["MixtureDensityNetwork", "CategoricalNetwork", "sample"]


class MixtureDensityNetwork(nn.Module):
    """Mixture density network (Bishop 1994): a Gaussian mixture ``F(t | context)``.

    ``forward(context)`` returns a ``MixtureSameFamily`` of ``n_components`` diagonal
    Gaussians over ``out_features`` dimensions whose weights, means and scales are
    functions of the context (an MLP trunk and three linear heads).

    Parameters
    ----------
    in_features : int
        Size of the context.
    out_features : int
        Dimension of the modelled variable.
    n_components : int
        Number of mixture components.
    hidden : sequence of int
        Hidden widths of the trunk.
    activation : str, default="relu"
    min_scale : float, default=1e-3
        Lower bound on each component's standard deviation, so the likelihood cannot
        grow without bound on a component collapsing onto one point.
    dropout : float, default=0.0
        Dropout rate after every hidden layer of the trunk (see :class:`MLP`).
    """

    def __init__(self, in_features, out_features, n_components, hidden, activation="relu",
                 min_scale=1e-3, dropout=0.0):
        super().__init__()
        self.out_features = out_features
        self.n_components = n_components
        self.min_scale = min_scale
        self.trunk = MLP(in_features, hidden, activation=activation, dropout=dropout)
        width = self.trunk.out_features
        self.logits = linear_layer(width, n_components)
        self.loc = linear_layer(width, n_components * out_features)
        self.scale = linear_layer(width, n_components * out_features)

    def forward(self, context):
        h = self.trunk(context)
        shape = h.shape[:-1] + (self.n_components, self.out_features)
        loc = self.loc(h).view(shape)
        scale = F.softplus(self.scale(h)).view(shape) + self.min_scale
        mixture = Categorical(logits=self.logits(h), validate_args=False)
        components = Independent(Normal(loc, scale, validate_args=False), 1,
                                 validate_args=False)
        return MixtureSameFamily(mixture, components, validate_args=False)


class CategoricalNetwork(nn.Module):
    """Softmax classifier returning ``Categorical(logits=f(context))`` over
    ``n_classes`` levels.

    Parameters
    ----------
    in_features : int
    n_classes : int
    hidden : sequence of int
    activation : str, default="relu"
    dropout : float, default=0.0
        Dropout rate after every hidden layer (see :class:`MLP`).
    """

    def __init__(self, in_features, n_classes, hidden, activation="relu", dropout=0.0):
        super().__init__()
        self.net = MLP(in_features, hidden, out_features=n_classes, activation=activation,
                       dropout=dropout)

    def forward(self, context):
        return Categorical(logits=self.net(context), validate_args=False)


def sample(distribution, n_draws, generator):
    """Draw ``n_draws`` samples per row from ``distribution`` with ``generator``.

    Supports the distributions built in this module: a ``MixtureSameFamily`` of
    ``Independent(Normal)`` (returns shape ``(n_draws, n, d)``) and a ``Categorical``
    (returns class indices of shape ``(n_draws, n)``). No gradient flows through the
    draws. The random numbers come from ``generator`` on its own device (a CPU
    generator for a model on the GPU gives the same draws as on the CPU, so CPU and GPU
    fits agree up to rounding) and are then moved to the distribution's device without
    a host sync (:func:`causalnn.engine.random.draw_to_device`); classes and mixture
    components are picked by inverting the cumulative probabilities.
    """
    with torch.no_grad():
        if isinstance(distribution, Categorical):
            return _pick(distribution.probs, n_draws, generator).T
        if not isinstance(distribution, MixtureSameFamily):
            raise TypeError(f"cannot sample from {type(distribution).__name__}.")
        weights = distribution.mixture_distribution.probs          # (n, K)
        normal = distribution.component_distribution.base_dist     # loc, scale (n, K, d)
        component = _pick(weights, n_draws, generator)             # (n, S)
        index = component.unsqueeze(-1).expand(-1, -1, normal.loc.shape[-1])
        loc = normal.loc.gather(1, index)                          # (n, S, d)
        scale = normal.scale.gather(1, index)
        noise = draw_to_device(torch.randn, loc.shape, generator=generator,
                               device=loc.device, dtype=loc.dtype)
        return (loc + scale * noise).transpose(0, 1)


def _pick(probs, n_draws, generator):
    """``n_draws`` category indices per row of ``probs`` (n, K), as ``(n, n_draws)``."""
    uniform = draw_to_device(torch.rand, (probs.shape[0], n_draws), generator=generator,
                             device=probs.device, dtype=probs.dtype)
    cdf = probs.cumsum(-1)
    return torch.searchsorted(cdf, uniform).clamp_max(probs.shape[-1] - 1)
