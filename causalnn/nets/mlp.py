"""Fully connected building blocks."""
from torch import nn

from .members import MemberLinear

__all__ = ["MLP", "ACTIVATIONS", "init_weights"]

ACTIVATIONS = {"elu": nn.ELU, "relu": nn.ReLU, "tanh": nn.Tanh, "selu": nn.SELU,
               "gelu": nn.GELU}


class MLP(nn.Sequential):
    """``Linear -> activation`` blocks, optionally ending in a linear output layer.

    Parameters
    ----------
    in_features : int
    hidden : sequence of int
        Widths of the hidden layers, each followed by the activation.
    out_features : int or None, default=None
        Size of a final linear layer without activation; ``None`` ends with the last
        hidden activation (a representation).
    activation : str, default="elu"
    n_members : int or None, default=None
        ``None``: ordinary layers, ``(n, in) -> (n, out)``. An integer: that many
        independent copies as :class:`causalnn.nets.MemberLinear` layers,
        ``(n, in)`` or ``(n_members, n, in) -> (n_members, n, out)``.
    """

    def __init__(self, in_features, hidden, out_features=None, activation="elu",
                 n_members=None):
        def linear(a, b):
            return nn.Linear(a, b) if n_members is None else MemberLinear(n_members, a, b)

        layers = []
        width = in_features
        for h in hidden:
            layers += [linear(width, h), ACTIVATIONS[activation]()]
            width = h
        if out_features is not None:
            layers.append(linear(width, out_features))
            width = out_features
        super().__init__(*layers)
        self.out_features = width


def init_weights(module, generator, scale=0.3):
    """Re-initialise every ``nn.Linear`` and ``MemberLinear`` in ``module`` from ``generator``.

    Weights are uniform with standard deviation ``scale / sqrt(fan_in)`` and biases
    zero. A small scale starts the networks close to a smooth function, which on small
    tabular data (IHDP: ~470 training rows) lowered the validation loss markedly against
    He initialisation (scale sqrt(2)); Shalit et al. (2017) likewise initialise with
    ``0.1 / sqrt(fan_in)``. Drawing from ``generator`` (not torch's global RNG) makes
    ``random_state`` control the initial weights.
    """
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, MemberLinear)):
            # each member of a MemberLinear draws its own weights
            bound = scale * (3.0 / layer.in_features) ** 0.5
            nn.init.uniform_(layer.weight, -bound, bound, generator=generator)
            nn.init.zeros_(layer.bias)
    return module
