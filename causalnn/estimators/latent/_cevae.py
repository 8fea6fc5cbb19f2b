"""Causal effect variational autoencoder (CEVAE).

Louizos, Shalit, Mooij, Sontag, Zemel & Welling (2017), "Causal effect inference with
deep latent-variable models", NeurIPS.

Model:  ``z ~ N(0, I)``, ``x | z ~ prod_j p(x_j | z)`` (Gaussian or Bernoulli per column),
        ``t | z ~ Bern(sigma(f_1(z)))``, ``y | t, z ~ p(y | f_{2+t}(z))`` (one head per arm).
Inference: ``q(z | x, t, y) = N(mu_t(x, y), sigma_t^2(x, y))`` (one head per arm) and the
        auxiliary ``q(t | x)``, ``q(y | x, t)`` that stand in for the unseen ``t, y`` of a
        new row.
Loss:   ``-ELBO - log q(t_i | x_i) - log q(y_i | x_i, t_i)`` with
        ``ELBO = E_q[log p(x|z) + log p(t|z) + log p(y|t,z)] - beta KL(q(z|x,t,y) || p(z))``
        (one reparameterised draw of z per row, KL in closed form, ``beta`` warmed up
        from 0 to 1 over ``kl_warmup_epochs``).
Effect: ``tau(x) = E[ E[y | t=1, z] - E[y | t=0, z] ]`` over ``n_samples`` draws of
        ``t ~ q(t|x)``, ``y ~ q(y|x,t)``, ``z ~ q(z|x,t,y)``; each row's draws come
        from a hash of its ``x`` and a seed fixed at fit, so a row's effect depends on
        its ``x`` only, while distinct rows draw independently.
"""
import numbers

import numpy as np
import torch
from scipy.special import ndtri
from torch.distributions import kl_divergence

from ..._base import (BaseCausalEstimator, Interval, LayerWidths, Options,
                      PropensityMixin)
from ..._base._docstrings import fill_doc
from ..._base._scaling import _row_blocks, apply_scaling, column_scaling
from ..._warnings import warn_at_caller
from ...engine import (Callback, member_mean, predict_in_batches,
                      prediction_chunk_rows, spawn_generator)
from ...engine.random import draw_to_device
from ...exceptions import ProxyAdjustmentWarning
from ...inference._mixins import AverageEffectInferenceMixin, IntervalMixin
from ...nets import init_weights
from ...nets.mlp import ACTIVATIONS
from ...nets.vae import CEVAEModule

__all__ = ["CEVAE"]

_PROXY_TYPES = ("continuous", "binary")

# splitmix64 (Steele, Lea & Flood 2014): a counter-based generator in wrapping uint64
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix64(h):
    h = (h ^ (h >> np.uint64(30))) * _MIX1
    h = (h ^ (h >> np.uint64(27))) * _MIX2
    return h ^ (h >> np.uint64(31))


def _row_uniforms(X, seed, shape):
    """Uniforms in (0, 1) of shape ``(n, *shape)``: row ``i``'s are a hash of ``X[i]``
    and ``seed`` only, so they do not depend on the other rows.

    ``X`` is the standardised covariates, rounded to float32 before hashing, so that
    most float64 round-off of the standardisation leaves the draws as they are. Not
    all: a row whose value falls within round-off of a float32 rounding boundary gets
    new draws (measured: 1% of rows when every covariate is offset by 1e6, about half
    at 1e9). The fitted networks are unchanged then; only that row's Monte Carlo noise
    is redrawn."""
    rounded = np.ascontiguousarray(X, dtype=np.float32) + np.float32(0.0)  # -0 -> +0
    bits = rounded.view(np.uint32).astype(np.uint64)
    key = np.full(bits.shape[0], seed, dtype=np.uint64)
    for column in bits.T:
        key = _mix64((key ^ column) + _GOLDEN)
    counter = np.arange(1, int(np.prod(shape)) + 1, dtype=np.uint64) * _GOLDEN
    u = _mix64(key[:, None] + counter[None, :])
    uniform = ((u >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0 ** -53
    return uniform.reshape(bits.shape[0], *shape)


class _ProxyTypes:
    """``"auto"``, ``"continuous"``, ``"binary"`` or a sequence of the latter two."""

    def accepts(self, value):
        if isinstance(value, str):
            return value in ("auto",) + _PROXY_TYPES
        return (isinstance(value, (list, tuple, np.ndarray)) and len(value) > 0
                and all(isinstance(v, str) and v in _PROXY_TYPES for v in value))

    def __str__(self):
        return ("'auto', 'continuous', 'binary' or a sequence of 'continuous'/'binary' "
                "per column")


class _KLWarmUp(Callback):
    """Sets ``kl_warmup_epochs`` in training steps from the engine's steps per epoch
    (which depend on the split, e.g. members with their own validation rows run over
    every row)."""

    def __init__(self, estimator):
        self.estimator = estimator

    def on_train_begin(self, trainer):
        self.estimator._warmup_steps = self.estimator.kl_warmup_epochs * trainer.n_batches


@fill_doc
class CEVAE(AverageEffectInferenceMixin, IntervalMixin, PropensityMixin,
            BaseCausalEstimator):
    """Causal effect variational autoencoder: adjusts for a latent confounder ``z``
    inferred from proxy covariates.

    The covariates ``X`` are treated as noisy proxies of an unobserved confounder
    ``z``. A deep latent-variable model of ``(x, t, y, z)`` is fitted by maximising its
    evidence lower bound, and effects are read off the outcome model ``p(y | t, z)``
    averaged over the posterior of ``z``. Identification rests on the latent model
    being right: with a misspecified latent (e.g. a binary confounder fitted with a
    Gaussian ``z``) or too many latent dimensions the estimate need not be consistent
    (Rissanen & Marttinen 2021); see ``docs/cevae.md``.

    Parameters
    ----------
    latent_dim : int, default=20
        Dimension of ``z`` (the paper's 20).
    hidden_layers : tuple of int, default=(200, 200, 200)
        Hidden widths of every network. Networks with a per-arm split (``q(z|x,t,y)``,
        ``q(y|x,t)``) share a trunk of all but the last width and give each arm a head
        of the last width; the others use all widths.
    activation : {"elu", "relu", "tanh", "selu", "gelu"}, default="elu"
        Activation after every hidden layer (the paper's ELU).
    proxy_types : "auto", "continuous", "binary" or sequence of str, default="auto"
        Likelihood of each column of ``X`` in ``p(x | z)``: ``"auto"`` models columns
        holding only 0 and 1 as Bernoulli and all others as Gaussian; a single string
        applies to every column; a sequence gives one type per column. Gaussian
        columns are standardised inside the estimator.
    kl_warmup_epochs : int, default=0
        Epochs over which the weight of the KL term rises linearly from 0 to 1 (0: the
        plain ELBO from the start). The validation loss always uses the full ELBO.
    n_samples : int, default=100
        Posterior draws of ``(t, y, z)`` averaged per row at prediction. Each row's
        draws come from a hash of its own ``x`` and ``random_state``, so a row's effect
        does not depend on the rows passed with it and the draws' Monte Carlo error
        averages out over the rows in ``ate``; rows with identical ``x`` (e.g.
        all-binary proxies) share their draws, so it averages only over the distinct
        ``x``.
    n_members : int, default=1
        Independent CEVAEs trained as one batched computation (an ensemble): each has
        its own initial weights, validation loss, early stopping and best weights;
        effects are the members' mean (``effect(X, members=True)`` gives each
        member's). Cross-fitting in ``ate_inference`` trains its folds this way.
    bootstrap : bool, default=False
        Train each member on its own bootstrap resample of the training rows, drawn
        within each treatment arm (the basis of ``effect_interval`` and
        ``ate_interval``).
    member_validation : {"shared", "own"}, default="shared"
        ``"shared"``: all members hold out the same validation rows. ``"own"``: each
        member holds out its own stratified split, so the ensemble learns from every
        row (an epoch costs about ``1 / (1 - validation_fraction)`` times as much).
        One member is the same fit either way.
    weight_decay : float, default=1e-4
        L2 penalty on the weight matrices.
    batch_size : int, default=100
        Rows per gradient step (the paper's 100).
    patience : int or None, default=30
        Early-stopping patience in epochs on the validation loss; the best epoch's
        weights are restored. ``None`` trains for ``max_epochs``.
    %(training_parameters)s

    Attributes
    ----------
    module_ : causalnn.nets.vae.CEVAEModule
        The trained model and inference networks.
    continuous_columns_, binary_columns_ : ndarray of int
        Columns of ``X`` modelled as Gaussian and as Bernoulli.
    x_mean_, x_scale_ : ndarray of shape (n_continuous,)
        Standardisation of the Gaussian columns fed to the networks, taken after the
        base's feature scaling (``X_offset_``, ``X_scale_``, in the user's units), so
        they are about 0 and 1.
    sampling_seed_ : int
        Seed of the posterior draws at prediction, drawn from ``random_state`` at fit.
        Each row's draws are a hash of its (standardised) ``x`` and this seed, so a
        row's draws depend only on its ``x`` and this seed: the same on every call,
        whatever other rows are passed with it and in whatever order (its effect too,
        up to the round-off of products over another number of rows). Distinct rows
        draw independently, so the Monte Carlo noise of ``ate`` averages out over the
        rows.
    %(fitted_attributes)s

    See Also
    --------
    TARNet : adjusts for the observed covariates themselves.

    References
    ----------
    .. [1] C. Louizos, U. Shalit, J. Mooij, D. Sontag, R. Zemel, M. Welling. "Causal
       effect inference with deep latent-variable models". NeurIPS 2017.
    .. [2] S. Rissanen, P. Marttinen. "A critical look at the consistency of causal
       estimation with deep latent variable models". NeurIPS 2021.

    Examples
    --------
    >>> from causalnn import CEVAE
    >>> from causalnn.datasets import make_proxy_confounded
    >>> data = make_proxy_confounded(n=2000, random_state=0)
    >>> est = CEVAE(random_state=0).fit(data.X, data.y, treatment=data.treatment)
    >>> ate = est.ate(data.X)
    """

    _parameter_constraints = {
        **BaseCausalEstimator._parameter_constraints,
        "latent_dim": [Interval(numbers.Integral, 1, None)],
        "hidden_layers": [LayerWidths()],
        "activation": [Options(*ACTIVATIONS)],
        "proxy_types": [_ProxyTypes()],
        "kl_warmup_epochs": [Interval(numbers.Integral, 0, None)],
        "n_samples": [Interval(numbers.Integral, 1, None)],
        "n_members": [Interval(numbers.Integral, 1, None)],
        "bootstrap": [bool],
        "member_validation": [Options("shared", "own")],
    }
    _propensity_head = True  # q(t | x) serves ate_inference and the overlap checks

    def __init__(self, *, latent_dim=20, hidden_layers=(200, 200, 200), activation="elu",
                 proxy_types="auto", kl_warmup_epochs=0, n_samples=100, n_members=1,
                 bootstrap=False, member_validation="shared", learning_rate=1e-3,
                 weight_decay=1e-4, optimizer="adam", batch_size=100, max_epochs=300,
                 patience=30, validation_fraction=0.3, outcome="auto", treatment_col=None,
                 random_state=None, device="auto", verbose=0):
        self.latent_dim = latent_dim
        self.hidden_layers = hidden_layers
        self.activation = activation
        self.proxy_types = proxy_types
        self.kl_warmup_epochs = kl_warmup_epochs
        self.n_samples = n_samples
        self.n_members = n_members
        self.bootstrap = bootstrap
        self.member_validation = member_validation
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.outcome = outcome
        self.treatment_col = treatment_col
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # ---- fit ------------------------------------------------------------------------
    def _resolve_proxy_types(self, X):
        d = X.shape[1]
        if isinstance(self.proxy_types, str) and self.proxy_types != "auto":
            types = [self.proxy_types] * d
        elif isinstance(self.proxy_types, str):
            types = ["binary" if np.all(np.isin(X[:, j], (0.0, 1.0))) else "continuous"
                     for j in range(d)]
        else:
            types = list(self.proxy_types)
            if len(types) != d:
                raise ValueError(f"proxy_types has {len(types)} entries but X has {d} "
                                 f"columns; give one type per column.")
        types = np.asarray(types)
        binary = np.flatnonzero(types == "binary")
        bad = [int(j) for j in binary if not np.all(np.isin(X[:, j], (0.0, 1.0)))]
        if bad:
            raise ValueError(f"proxy_types marks columns {bad[:10]} as 'binary' but they "
                             f"hold values other than 0 and 1.")
        return np.flatnonzero(types == "continuous"), binary

    def _scale_X(self, X, dtype=np.float64):
        """``X`` with its continuous columns standardised, as ``dtype`` (float32: the
        rounded float64 values, which the engine would otherwise round from a float64
        copy). Block by block: the selected columns and their scaling are temporaries
        of a block, not of the table."""
        scaled = np.empty(X.shape, dtype=dtype)
        for start, block in _row_blocks(X):
            block = np.array(block, dtype=np.float64)
            block[:, self.continuous_columns_] = apply_scaling(
                block[:, self.continuous_columns_], self.x_mean_, self.x_scale_)
            scaled[start:start + len(block)] = block
        return scaled

    def _continuous_column_scaling(self, X):
        """``column_scaling`` of the continuous columns, without a copy of them."""
        return column_scaling(X, name="X", columns=self.continuous_columns_)

    def _fit(self, X, y, treatment, generator):
        self.continuous_columns_, self.binary_columns_ = self._resolve_proxy_types(X)
        self.x_mean_, self.x_scale_ = self._continuous_column_scaling(X)
        self.n_members_ = self.n_members
        module = CEVAEModule(
            self.n_features_in_, self.latent_dim, self.continuous_columns_.tolist(),
            self.binary_columns_.tolist(), self.hidden_layers,
            outcome=self.outcome_type_, activation=self.activation,
            n_members=self.n_members_)
        # Three streams derived from random_state before the weights are drawn: the
        # reparameterisation noise and the prediction draws come from CPU generators
        # (the same draws on CPU and GPU), and the validation split and batch order
        # from their own, so that fits of different architectures from one
        # random_state hold out the same rows and their validation losses compare.
        self._noise = spawn_generator(generator)
        self.sampling_seed_ = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        split_and_batches = spawn_generator(generator)
        self.module_ = init_weights(module, generator)
        # Every validation pass replays one stream of reparameterisation noise (common
        # random numbers): the held-out loss is then a fixed function of the weights,
        # and early stopping compares epochs rather than Monte-Carlo noise. Spawned
        # after the weights, so the split, weights and batch order are unchanged.
        self._validation_noise = spawn_generator(generator)
        self._validation_noise_start = self._validation_noise.get_state()
        self._validation_pass_begins = True
        self._warmup_steps = 0  # set from the engine's steps per epoch at train begin
        self._step = 0
        try:
            self._train_members(self.module_, {"X": self._scale_X(X, np.float32),
                                               "t": treatment, "y": y}, split_and_batches,
                                stratify=treatment)
        finally:
            del (self._noise, self._validation_noise, self._validation_noise_start,
                 self._validation_pass_begins, self._warmup_steps, self._step)
        if self.n_members_ == 1:  # one network: the epoch as a plain int
            self.best_epoch_ = int(np.asarray(self.best_epoch_).item())
        return self

    def ate_inference(self, X, y, *, treatment=None, target="ate", method="aipw", cv=5,
                      n_repeats=1, propensity_model=None, propensity_clip=0.01,
                      trim=None):
        """Average effect with a standard error (see
        :meth:`causalnn.TARNet.ate_inference`), with CEVAE's ``q(t | x)`` as the
        propensity and its posterior-averaged outcome means, cross-fitted.

        With ``method="aipw"`` or ``"tmle"`` the estimate adjusts for the covariates
        ``X``, not for the latent ``z``: the weights ``1 / e(x)`` of any propensity that
        is a function of the proxies make the correction term target the ``X``-adjusted
        contrast, so under hidden confounding it moves CEVAE's estimate back toward
        what TARNet on the proxies gives (measured on ``make_proxy_confounded``; see
        ``docs/cevae.md``). It is the right estimate when ``X`` contains the
        confounders; for latent-confounder adjustment report ``method="plugin"``
        (cross-fitted, without a standard error) or ``ate``. A
        :class:`~causalnn.exceptions.ProxyAdjustmentWarning` says so on every AIPW/TMLE
        call.

        Parameters
        ----------
        X, y, treatment, target, method, cv, n_repeats, propensity_model, \
propensity_clip, trim
            As in :meth:`causalnn.TARNet.ate_inference`.

        Returns
        -------
        result : causalnn.inference.AverageEffectResult
        """
        if method != "plugin":
            warn_at_caller(
                "CEVAE.ate_inference with method='aipw'/'tmle' weights by q(t | x), a "
                "function of the proxies X: the estimate adjusts for X, not for the "
                "latent z. Under hidden confounding use method='plugin' or ate().",
                ProxyAdjustmentWarning)
        return super().ate_inference(
            X, y, treatment=treatment, target=target, method=method, cv=cv,
            n_repeats=n_repeats, propensity_model=propensity_model,
            propensity_clip=propensity_clip, trim=trim)

    def _training_callbacks(self):
        return (_KLWarmUp(self),)

    def _standard_normal(self, like, training):
        """``N(0, 1)`` noise shaped as ``like``, drawn on the CPU and moved to
        ``like``'s device without a host sync: fresh draws in training, and in
        validation the same draws on every pass (the engine evaluates the same chunks
        in the same order)."""
        if training:
            self._validation_pass_begins = True
            generator = self._noise
        else:
            if self._validation_pass_begins:  # the first chunk of a validation pass
                self._validation_noise.set_state(self._validation_noise_start)
                self._validation_pass_begins = False
            generator = self._validation_noise
        return draw_to_device(torch.randn, like.shape, generator=generator,
                              device=like.device, dtype=like.dtype)

    def _compute_loss(self, module, batch):
        x, t, y = batch["X"], batch["t"], batch["y"]
        q_z = module.encode(x, t, y)  # batch shape (n_members, n, latent_dim)
        z = q_z.loc + q_z.scale * self._standard_normal(q_z.loc, module.training)

        def mean(per_row):  # (n_members, n) -> (n_members,), row weights applied
            return member_mean(per_row, batch)

        nll_x = {k: mean(-v) for k, v in module.p_x.log_prob(z, x).items()}
        nll_t = mean(-module.p_t(z).log_prob(t.unsqueeze(-1)).squeeze(-1))
        nll_y = mean(-module.p_y(z, t).log_prob(y.unsqueeze(-1)).squeeze(-1))
        kl = mean(kl_divergence(q_z, module.prior(z)).sum(-1))
        aux_t = mean(-module.auxiliary_t(x).log_prob(t.unsqueeze(-1)).squeeze(-1))
        aux_y = mean(-module.auxiliary_y(x, t).log_prob(y.unsqueeze(-1)).squeeze(-1))
        beta = 1.0
        if module.training:
            self._step += 1
            if self._warmup_steps:
                beta = min(1.0, self._step / self._warmup_steps)
        reconstruction = sum(nll_x.values()) + nll_t + nll_y
        member_loss = reconstruction + beta * kl + aux_t + aux_y
        # every member's terms are logged as the members' mean
        terms = {"elbo": -(reconstruction + kl),
                 **{f"nll_x_{k}": v for k, v in nll_x.items()},
                 "nll_t": nll_t, "nll_y": nll_y, "kl": kl, "aux_t": aux_t,
                 "aux_y": aux_y}
        return {"loss": member_loss.sum(), "member_loss": member_loss,
                **{k: v.mean() for k, v in terms.items()}}

    # ---- prediction -----------------------------------------------------------------
    def _module_dtype(self):
        return next(self.module_.parameters()).dtype

    def _posterior_outcomes(self, X):
        """Per member and row, ``E[y | t=a, z]`` for a = 0, 1 averaged over
        ``n_samples`` draws ``t ~ q(t|x)``, ``y ~ q(y|x,t)``, ``z ~ q(z|x,t,y)``: an
        (n_members, n, 2) float64 array (means on the training scale, or probabilities
        for a binary outcome).

        Each row's uniforms are a hash of its values and ``sampling_seed_``
        (:func:`_row_uniforms`): a row's draws depend on its ``x`` alone, whatever
        other rows are passed with it, while distinct rows draw independently, so the
        Monte Carlo error of ``ate`` still averages out over the rows.
        """
        module, device, draws = self.module_, self.device_, self.n_samples
        members = self.n_members_
        per_row = (members, draws, 2 + module.latent_dim)  # t, y, then z's columns
        dtype = self._module_dtype()
        # every row goes through the networks once per draw, with the members' widest
        # activations or its own columns (and y, for q(z | x, t, y)) as the widest
        rows = prediction_chunk_rows(
            device, draws * max(members * self._widest_layer(), self.n_features_in_ + 1))
        out = []
        module.eval()
        with torch.no_grad():
            for start in range(0, X.shape[0], rows):
                # scaled chunk by chunk: the values of scaling every row at once
                chunk = self._scale_X(X[start:start + rows])
                n = chunk.shape[0]
                u = _row_uniforms(chunk, self.sampling_seed_, per_row)  # (n, M, S, C)
                u = u.transpose(1, 2, 0, 3).reshape(members, draws * n, per_row[-1])
                normal = torch.as_tensor(ndtri(u), dtype=dtype).to(device)
                u = torch.as_tensor(u, dtype=dtype).to(device)
                x_rows = torch.as_tensor(chunk, dtype=dtype).to(device)
                x = x_rows.repeat(draws, 1)  # draw-major: row i of draw d is d * n + i
                # q(t | x) and q(y | x, t) depend on the row and its arm only: evaluated
                # once per row and arm, then given to every draw (repeating the rows
                # through these networks took 40% of the prediction's time)
                p_t = module.auxiliary_t(x_rows).probs.repeat(1, draws, 1)
                t = (u[..., :1] < p_t).float().squeeze(-1)
                q_y = module.q_y.all_arms(module.q_y_trunk(x_rows))

                def each_draws_arm(name):
                    stacked = torch.stack(
                        [getattr(arm, name).repeat(1, draws, 1) for arm in q_y], dim=-1)
                    return torch.gather(stacked, -1, t.long()[..., None, None])[..., 0]
                if self.outcome_type_ == "binary":
                    y = (u[..., 1:2] < each_draws_arm("probs")).float()
                else:
                    y = each_draws_arm("loc") + each_draws_arm("scale") * normal[..., 1:2]
                q_z = module.encode(x, t, y.squeeze(-1))
                z = q_z.loc + q_z.scale * normal[..., 2:]
                arms = torch.cat([arm.mean for arm in module.p_y.all_arms(z)], dim=-1)
                out.append(arms.double().reshape(members, draws, n, 2).mean(1).cpu())
        return torch.cat(out, dim=1).numpy()

    def _predict_outcome(self, X, *treatments):
        arms = self._posterior_outcomes(X)  # one set of draws serves every level
        if self.outcome_type_ == "binary":
            p = np.clip(arms, 1e-12, 1.0 - 1e-12)
            arms = np.log(p) - np.log1p(-p)  # the base maps the logit back to p
        return [np.where(t == 1, arms[..., 1], arms[..., 0]) for t in treatments]

    def _widest_layer(self):
        """The widest hidden layer of the networks (a prediction chunk's activations)."""
        return max(tuple(self.hidden_layers) + (1,))

    def _raw_propensity(self, X_scaled):
        """``q(t = 1 | x)`` of every member, ``(n_members, n)``."""
        dtype = self._module_dtype()
        x = torch.as_tensor(self._scale_X(
            X_scaled, np.float32 if dtype == torch.float32 else np.float64), dtype=dtype)
        self.module_.eval()
        rows = prediction_chunk_rows(
            self.device_, max(self.n_members_ * self._widest_layer(), self.n_features_in_))
        return predict_in_batches(
            lambda b: self.module_.auxiliary_t(b).probs.squeeze(-1), [x],
            device=self.device_, batch_size=rows, row_dim=1).astype(np.float64)

    def _predict_propensity(self, X):
        """``q(t = 1 | x)``, the auxiliary treatment model (the members' mean)."""
        return self._raw_propensity(X).mean(axis=0)
