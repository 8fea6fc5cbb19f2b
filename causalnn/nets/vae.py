"""Stochastic networks of the causal effect VAE (Louizos et al. 2017).

Each head is an ``nn.Module`` whose ``forward`` returns a
:class:`torch.distributions.Distribution`; the estimator writes the ELBO with
``log_prob`` and ``kl_divergence`` on them. ``CEVAEModule`` groups the model network
``p(x, t, y, z)`` and the inference network ``q(z, t, y | x)`` of the paper's Figure 2.

With ``n_members=M`` every network is a member network (:mod:`causalnn.nets.members`):
M independent CEVAEs computed as one, whose distributions carry a leading member axis,
batch shape ``(M, n, k)``. Inputs shared by all members keep their ``(n, ...)`` shape.
"""
import torch
from torch import distributions as D
from torch import nn
from torch.nn import functional as F

from .mlp import MLP
from .members import fit_dtype

__all__ = ["ArmHeads", "BernoulliHead", "CEVAEModule", "NormalHead", "ProxyDecoder"]

_MIN_SCALE = 1e-3


class NormalHead(nn.Module):
    """``context -> Normal(mu(context), sigma)``.

    Parameters
    ----------
    in_features, out_features : int
    hidden : sequence of int
    learned_scale : {"network", "constant"}, default="network"
        ``"network"`` predicts a per-row scale with a softplus output, ``"constant"``
        learns one scale per output (homoscedastic noise).
    activation : str, default="elu"
    n_members : int or None, default=None
    """

    def __init__(self, in_features, out_features, hidden, *, learned_scale="network",
                 activation="elu", n_members=None):
        super().__init__()
        self.learned_scale = learned_scale
        n_out = 2 * out_features if learned_scale == "network" else out_features
        self.net = MLP(in_features, hidden, out_features=n_out, activation=activation,
                       n_members=n_members)
        if learned_scale == "constant":
            # member-major and flat: (M * out,), one scale per member and output
            self.raw_scale = nn.Parameter(torch.zeros((n_members or 1) * out_features,
                                                      dtype=fit_dtype()))
        self.n_members = n_members
        self.out_features = out_features

    def forward(self, context):
        out = self.net(context)
        if self.learned_scale == "network":
            loc, raw = out.split(self.out_features, dim=-1)
        else:
            shape = ((self.out_features,) if self.n_members is None
                     else (self.n_members, 1, self.out_features))
            loc, raw = out, self.raw_scale.view(shape).expand_as(out)
        return D.Normal(loc, F.softplus(raw) + _MIN_SCALE, validate_args=False)


class BernoulliHead(nn.Module):
    """``context -> Bernoulli(logits=f(context))``."""

    def __init__(self, in_features, out_features, hidden, *, activation="elu",
                 n_members=None):
        super().__init__()
        self.net = MLP(in_features, hidden, out_features=out_features,
                       activation=activation, n_members=n_members)

    def forward(self, context):
        return D.Bernoulli(logits=self.net(context), validate_args=False)


class ArmHeads(nn.Module):
    """One head per treatment arm on a shared context: ``forward(context, t)`` returns
    the distribution of arm ``t_i`` for each row (TARNet-style, as the paper's ``f_2,
    f_3`` and ``g_2, g_3``). ``all_arms(context)`` returns the list of every arm's
    distribution."""

    def __init__(self, make_head, n_arms=2):
        super().__init__()
        self.heads = nn.ModuleList(make_head() for _ in range(n_arms))

    def all_arms(self, context):
        return [head(context) for head in self.heads]

    def forward(self, context, t):
        arms = self.all_arms(context)
        index = t.long().unsqueeze(-1)  # rows pick their arm; arms have batch (n, k)
        params = {}
        for name in ("loc", "scale", "logits"):
            if name in type(arms[0]).arg_constraints and name in vars(arms[0]):
                stacked = torch.stack([getattr(a, name) for a in arms], dim=-1)
                params[name] = torch.gather(
                    stacked, -1, index.unsqueeze(-1).expand(*stacked.shape[:-1], 1)
                ).squeeze(-1)
        return type(arms[0])(**params, validate_args=False)


class ProxyDecoder(nn.Module):
    """``p(x | z)``: a factorised distribution over the proxy columns, Gaussian for the
    continuous ones and Bernoulli for the binary ones, from one shared trunk.

    ``forward(z)`` returns a dict ``{"continuous": Normal, "binary": Bernoulli}`` (a
    block is absent when the data have no such column); the columns of each block are
    those listed in ``continuous_columns`` and ``binary_columns``.
    """

    def __init__(self, latent_dim, continuous_columns, binary_columns, hidden, *,
                 activation="elu", n_members=None):
        super().__init__()
        # not in state_dict: the engine treats every state entry as member-major
        self.register_buffer("continuous_columns",
                             torch.as_tensor(continuous_columns, dtype=torch.long),
                             persistent=False)
        self.register_buffer("binary_columns",
                             torch.as_tensor(binary_columns, dtype=torch.long),
                             persistent=False)
        self.trunk = MLP(latent_dim, hidden[:-1], activation=activation,
                         n_members=n_members)
        width = self.trunk.out_features
        self.continuous = (NormalHead(width, len(continuous_columns), hidden[-1:],
                                      activation=activation, n_members=n_members)
                           if len(continuous_columns) else None)
        self.binary = (BernoulliHead(width, len(binary_columns), hidden[-1:],
                                     activation=activation, n_members=n_members)
                       if len(binary_columns) else None)

    def forward(self, z):
        h = self.trunk(z)
        out = {}
        if self.continuous is not None:
            out["continuous"] = self.continuous(h)
        if self.binary is not None:
            out["binary"] = self.binary(h)
        return out

    def log_prob(self, z, x):
        """``log p(x | z)`` per row and block: dict of (n,) tensors."""
        columns = {"continuous": self.continuous_columns, "binary": self.binary_columns}
        return {block: dist.log_prob(x[:, columns[block]]).sum(-1)
                for block, dist in self.forward(z).items()}


class CEVAEModule(nn.Module):
    """The model and inference networks of CEVAE.

    Model (decoder): ``p(z) = N(0, I)``, ``p(x | z)`` (:class:`ProxyDecoder`),
    ``p(t | z) = Bern(sigma(f_1(z)))``, ``p(y | t, z)`` with one head per arm.
    Inference (encoder): ``q(t | x) = Bern(sigma(g_4(x)))``, ``q(y | x, t)`` with a
    shared trunk ``g_5`` and one head per arm, ``q(z | x, t, y)`` with a shared trunk
    ``g_1(x, y)`` and one Gaussian head per arm.

    Parameters
    ----------
    n_features : int
    latent_dim : int
    continuous_columns, binary_columns : sequence of int
        Column indices of ``x`` modelled as Gaussian and as Bernoulli.
    hidden : sequence of int
        Hidden widths of every network; the shared trunks take all but the last width,
        the per-arm heads the last.
    outcome : {"continuous", "binary"}
    activation : str, default="elu"
    n_members : int or None, default=None
        ``None``: one CEVAE. An integer: that many independent CEVAEs as one member
        module; every distribution then has a leading member axis.
    """

    def __init__(self, n_features, latent_dim, continuous_columns, binary_columns,
                 hidden, *, outcome="continuous", activation="elu", n_members=None):
        super().__init__()
        hidden = tuple(hidden)
        trunk, head = hidden[:-1], hidden[-1:]
        self.latent_dim = latent_dim
        options = dict(activation=activation, n_members=n_members)

        def outcome_head(in_features, hidden_):
            if outcome == "binary":
                return BernoulliHead(in_features, 1, hidden_, **options)
            return NormalHead(in_features, 1, hidden_, learned_scale="constant",
                              **options)

        # model network p(x, t, y | z)
        self.p_x = ProxyDecoder(latent_dim, continuous_columns, binary_columns, hidden,
                                **options)
        self.p_t = BernoulliHead(latent_dim, 1, hidden, **options)
        self.p_y = ArmHeads(lambda: outcome_head(latent_dim, hidden))
        # inference network q(t | x), q(y | x, t), q(z | x, t, y)
        self.q_t = BernoulliHead(n_features, 1, hidden, **options)
        self.q_y_trunk = MLP(n_features, trunk, **options)
        self.q_y = ArmHeads(lambda: outcome_head(self.q_y_trunk.out_features, head))
        self.q_z_trunk = MLP(n_features + 1, trunk, **options)
        self.q_z = ArmHeads(lambda: NormalHead(self.q_z_trunk.out_features, latent_dim,
                                               head, **options))

    def encode(self, x, t, y):
        """``q(z | x, t, y)``: a Normal of batch shape ``(..., n, latent_dim)``.

        ``x`` is ``(n, d)``; ``t`` and ``y`` are ``(n,)``, or ``(n_members, n)`` when
        each member brings its own draws (prediction), in which case ``x`` is shared.
        """
        if y.dim() > 1:
            x = x.expand(*y.shape[:-1], *x.shape)
        return self.q_z(self.q_z_trunk(torch.cat([x, y.unsqueeze(-1)], dim=-1)), t)

    def auxiliary_t(self, x):
        """``q(t | x)``: Bernoulli of batch shape ``(..., n, 1)``."""
        return self.q_t(x)

    def auxiliary_y(self, x, t):
        """``q(y | x, t)`` of batch shape ``(..., n, 1)``."""
        return self.q_y(self.q_y_trunk(x), t)

    def prior(self, like):
        """``p(z) = N(0, I)`` on the device and dtype of ``like``."""
        zeros = like.new_zeros(like.shape[:-1] + (self.latent_dim,))
        # no argument check: it reads the scale back to the host on every call
        return D.Normal(zeros, torch.ones_like(zeros), validate_args=False)
