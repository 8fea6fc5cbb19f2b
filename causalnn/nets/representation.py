"""Shared-representation networks with one outcome head per treatment arm.

Used by TARNet/CFR (Shalit et al. 2017) and, with a propensity head, Dragonnet
(Shi et al. 2019).
"""
from typing import NamedTuple, Optional

import torch
from torch import nn

from .mlp import MLP

__all__ = ["RepresentationOutput", "RepresentationNet"]


class RepresentationOutput(NamedTuple):
    # shapes for a single network; a member network adds a leading (n_members,) axis
    representation: torch.Tensor        # Phi(x), (n, d_rep)
    outcome: torch.Tensor               # linear predictor of each arm, (n, n_arms)
    propensity_logit: Optional[torch.Tensor]  # logit P(t=1 | x), (n,), or None


class RepresentationNet(nn.Module):
    """``x -> Phi(x) -> (h_0(Phi), ..., h_{K-1}(Phi))`` and optionally ``g(Phi)``.

    Parameters
    ----------
    n_features : int
    representation_layers : sequence of int
        Hidden widths of Phi.
    head_layers : sequence of int
        Hidden widths of each outcome head (a final linear unit is added).
    n_arms : int, default=2
    normalize_representation : bool, default=False
        Project Phi onto the unit sphere, as CFR does so that the IPM penalty cannot be
        lowered by shrinking the representation.
    propensity_head : bool, default=False
        Add Dragonnet's linear-logistic propensity head on Phi.
    activation : str, default="elu"
    n_members : int or None, default=None
        ``None``: one network. An integer: that many independent networks computed as
        one (:class:`causalnn.nets.MemberLinear` layers); every output then has a
        leading ``(n_members,)`` axis and ``x`` may be ``(n, d)`` (rows shared by the
        members) or ``(n_members, n, d)``.
    """

    def __init__(self, n_features, representation_layers, head_layers, *, n_arms=2,
                 normalize_representation=False, propensity_head=False, activation="elu",
                 n_members=None):
        super().__init__()
        self.n_members = n_members
        self.representation = MLP(n_features, representation_layers, activation=activation,
                                  n_members=n_members)
        width = self.representation.out_features
        self.heads = nn.ModuleList(
            MLP(width, head_layers, out_features=1, activation=activation,
                n_members=n_members)
            for _ in range(n_arms))
        self.propensity = (MLP(width, (), out_features=1, n_members=n_members)[0]
                           if propensity_head else None)
        self.normalize_representation = normalize_representation

    def forward(self, x):
        phi = self.representation(x)
        if self.normalize_representation:
            phi = phi / phi.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        outcome = torch.cat([head(phi) for head in self.heads], dim=-1)
        logit = self.propensity(phi).squeeze(-1) if self.propensity is not None else None
        return RepresentationOutput(phi, outcome, logit)
