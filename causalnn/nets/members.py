"""Layers that hold ``n_members`` independent copies of their weights.

A *member module* computes ``n_members`` independent networks in one batched call. Its
activations carry a leading member axis, ``(n_members, n_rows, width)``, and its first
layer also accepts rows shared by every member, ``(n_rows, width)``.

Every parameter of a member module is stored *member-major along its first dimension*:
``p.shape[0]`` is a multiple of ``n_members`` and member ``m`` owns the rows
``p[m * k:(m + 1) * k]`` with ``k = p.shape[0] // n_members``. The engine relies on this
one rule (and nothing else) to keep a best copy of each member, to slice members out of
a fitted module (:func:`causalnn.engine.select_members`) and to decay each member's
weights on its own.

Why stacked weights and batched matrix products rather than ``torch.func.vmap`` over
``functional_call``: measured by ``benchmarks/members.py --compare-impl``, the stacked
layers ran a training step of 10 IHDP-sized TARNets faster on the CPU (see
``benchmarks/results/members_cpu.md``) and keep ordinary ``nn.Module`` state (optimizers,
``state_dict``, pickling) without a functional wrapper.
"""
import contextlib
import threading

import torch
from torch import nn

__all__ = ["MemberLinear"]

#: per thread: whether layers built now skip torch's default initialisation (a draw from
#: the process-wide random stream) because the caller re-draws every weight
_DEFERRED = threading.local()


def init_deferred():
    """Whether this thread builds layers without their default (global-stream) draws."""
    return getattr(_DEFERRED, "on", False)


@contextlib.contextmanager
def deferred_default_init():
    """Within the block, ``nn.Linear`` and :class:`MemberLinear` layers built by
    causalnn's networks in this thread skip their default initialisation, which draws
    from torch's process-wide generator. For callers that re-draw every weight and zero
    every bias with :func:`causalnn.nets.init_weights` (every estimator's fit): the fit
    then neither reads nor advances the global stream, so it needs no ``fork_rng``
    (whose restore rewinds the stream of every other thread)."""
    before = init_deferred()
    _DEFERRED.on = True
    try:
        yield
    finally:
        _DEFERRED.on = before


def fit_dtype():
    """float32 inside :func:`deferred_default_init` (a causalnn fit builds its networks
    in float32 whatever torch's process-wide default dtype, which other threads may
    change at any time), else ``None`` (torch's default)."""
    return torch.float32 if init_deferred() else None


def linear_layer(in_features, out_features):
    """``nn.Linear(in_features, out_features)``, uninitialised inside
    :func:`deferred_default_init`."""
    if init_deferred():
        return nn.utils.skip_init(nn.Linear, in_features, out_features, dtype=fit_dtype())
    return nn.Linear(in_features, out_features)


class MemberLinear(nn.Module):
    """``n_members`` independent affine maps ``x_m W_m + b_m`` as one batched product.

    Parameters
    ----------
    n_members : int
    in_features, out_features : int

    Notes
    -----
    ``weight`` has shape ``(n_members, in_features, out_features)``. ``bias`` is stored
    flat, ``(n_members * out_features,)``: member-major like every member parameter and
    one-dimensional, so the optimizer's rule "decay weight matrices, not biases or
    scalars" (``ndim >= 2``) applies to it unchanged.
    """

    def __init__(self, n_members, in_features, out_features):
        super().__init__()
        self.n_members = n_members
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(n_members, in_features, out_features,
                                               dtype=fit_dtype()))
        self.bias = nn.Parameter(torch.zeros(n_members * out_features, dtype=fit_dtype()))
        # nn.Linear's default range; estimators re-draw from their own generator
        # (causalnn.nets.init_weights)
        if not init_deferred():
            bound = in_features ** -0.5
            nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, x):
        bias = self.bias.view(self.n_members, 1, self.out_features)
        if x.dim() == 2:
            # rows shared by all members: one (n, in) x (in, M * out) product
            flat = self.weight.permute(1, 0, 2).reshape(self.in_features, -1)
            out = (x @ flat).view(x.shape[0], self.n_members, self.out_features)
            return out.transpose(0, 1) + bias
        return torch.baddbmm(bias, x, self.weight)

    def extra_repr(self):
        return (f"n_members={self.n_members}, in_features={self.in_features}, "
                f"out_features={self.out_features}")
