"""Counterfactual regression: TARNet and CFR.

Shalit, Johansson & Sontag (2017), "Estimating individual treatment effect:
generalization bounds and algorithms", ICML.

Model: a shared representation ``Phi(x)`` and one outcome head ``h_t(Phi)`` per arm.
Loss:  ``sum_i w_i L(y_i, h_{t_i}(Phi(x_i))) + alpha * IPM({Phi(x_i)}_{t_i=0}, {Phi(x_i)}_{t_i=1})``
       with weights ``w_i = t_i / (2u) + (1 - t_i) / (2(1 - u))``, ``u = P(t=1)``, which
       give both arms the same total weight. TARNet is the case ``alpha = 0``.
Effect: ``tau(x) = h_1(Phi(x)) - h_0(Phi(x))``.
"""
import numbers

import numpy as np

from ..._base import Interval, Options
from ..._base._docstrings import fill_doc
from ...engine import float32_term, member_mean, spawn_generator
from ...losses import IPMS, outcome_loss
from ...losses.subbatch import balanced_subbatch
from ...inference._mixins import AverageEffectInferenceMixin, IntervalMixin
from ._common import RepresentationEstimator

__all__ = ["CFRNet", "TARNet"]


@fill_doc
class CFRNet(AverageEffectInferenceMixin, IntervalMixin, RepresentationEstimator):
    """Counterfactual regression network with an IPM balancing penalty (CFR).

    Parameters
    ----------
    alpha : float, default=0.1
        Weight of the IPM penalty (the paper's ``alpha``). Its useful range depends on the
        IPM's scale: on IHDP the validation loss chose 0.1 for ``"wasserstein"`` (1.0
        collapsed the representation), 0.01 for ``"mmd_rbf"`` and 0.01 for
        ``"mmd_linear"`` (``benchmarks/results/tune_issue6.md``).
    ipm : {"wasserstein", "mmd_rbf", "mmd_linear"}, default="wasserstein"
        Distance between the arms' representation distributions: Wasserstein-1 by
        Sinkhorn iterations (CFR-Wass), squared MMD with a Gaussian kernel, or squared
        MMD with a linear kernel (CFR-MMD); both MMDs are unbiased batch estimates
        (:mod:`causalnn.losses.ipm`). Wasserstein with ``alpha=0.1`` had the lowest
        validation loss of the nine IPM/alpha pairs tried on IHDP, hence the default.
    normalize_representation : bool, default=True
        Project ``Phi(x)`` onto the unit sphere (the paper's "rep. normalization"), so
        the penalty cannot be reduced by shrinking the representation.
    reweight_sample : bool, default=True
        Use the treatment-balance weights ``w_i`` in the factual loss.
    ipm_batch_size : int, default=1024
        Batches larger than this compute the (pairwise, O(batch^2)) IPM on a balanced
        sub-batch of this many rows (:mod:`causalnn.losses.subbatch`); the factual
        loss always uses the whole batch.
    %(representation_parameters)s
    %(member_parameters)s
    head_layers : tuple of int, default=(100, 100, 100)
        Hidden widths of each outcome head (the paper's three layers of 100).
    weight_decay : float, default=1e-4
        L2 penalty on the weight matrices (not the biases).
    weight_decay_scope : {"all", "heads"}, default="all"
        Which weight matrices ``weight_decay`` penalises: every one, or only those of
        the outcome heads (as the papers do). On IHDP the validation loss of TARNet
        was the same to four digits either way (``benchmarks/results/tune_issue6.md``).
    batch_size : int, default=64
        Rows per gradient step.
    patience : int or None, default=30
        Early-stopping patience in epochs on the validation loss; the best epoch's
        weights are restored. ``None`` trains for ``max_epochs``.
    %(training_parameters)s

    Attributes
    ----------
    module_ : torch.nn.ModuleDict
        The trained network under ``"net"`` (a :class:`causalnn.nets.RepresentationNet`).
    %(fitted_attributes)s
    treated_fraction_ : float
        ``u``, the fraction of treated training rows.

    See Also
    --------
    TARNet : the same model without the IPM penalty.
    Dragonnet : a propensity head and targeted regularisation instead of an IPM.

    References
    ----------
    .. [1] U. Shalit, F. D. Johansson, D. Sontag. "Estimating individual treatment
       effect: generalization bounds and algorithms". ICML 2017.

    Examples
    --------
    >>> from causalnn import CFRNet
    >>> from causalnn.datasets import load_ihdp
    >>> data = load_ihdp(1)
    >>> est = CFRNet(ipm="wasserstein", alpha=0.1, random_state=0).fit(
    ...     data.X, data.y, treatment=data.treatment)
    >>> tau = est.effect(data.X)
    """

    _parameter_constraints = {
        **RepresentationEstimator._parameter_constraints,
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "ipm": [Options(*IPMS)],
        "normalize_representation": [bool],
        "reweight_sample": [bool],
        "weight_decay_scope": [Options("all", "heads")],
        "ipm_batch_size": [Interval(numbers.Integral, 2, None)],
    }

    def __init__(self, *, alpha=0.1, ipm="wasserstein", normalize_representation=True,
                 reweight_sample=True, ipm_batch_size=1024, n_members=1, bootstrap=False,
                 member_validation="shared",
                 representation_layers=(200, 200, 200),
                 head_layers=(100, 100, 100), activation="elu", learning_rate=1e-3,
                 weight_decay=1e-4, weight_decay_scope="all", optimizer="adam",
                 batch_size=64, max_epochs=300,
                 patience=30, validation_fraction=0.3, scale_features=True,
                 precision="float32", compile=False, outcome="auto", treatment_col=None,
                 random_state=None, device="auto", verbose=0):
        self.alpha = alpha
        self.ipm = ipm
        self.normalize_representation = normalize_representation
        self.reweight_sample = reweight_sample
        self.ipm_batch_size = ipm_batch_size
        self.n_members = n_members
        self.bootstrap = bootstrap
        self.member_validation = member_validation
        self.scale_features = scale_features
        self.precision = precision
        self.compile = compile
        self.representation_layers = representation_layers
        self.head_layers = head_layers
        self.activation = activation
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.weight_decay_scope = weight_decay_scope
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

    @property
    def _normalize_representation(self):
        return self.normalize_representation

    def _balance_penalty(self):
        """``(alpha, ipm function)``; TARNet has none."""
        return self.alpha, IPMS[self.ipm]

    def _fit(self, X, y, treatment, generator):
        self.treated_fraction_ = float(treatment.mean())
        u = self.treated_fraction_
        if self.reweight_sample:
            weight = treatment / (2 * u) + (1 - treatment) / (2 * (1 - u))
        else:
            weight = np.ones_like(treatment)
        split_and_batches = spawn_generator(generator)  # before the weights
        self.module_ = self._build_module(generator)
        self._train_members(self.module_, {"X": X, "y": y, "t": treatment, "w": weight},
                            split_and_batches, stratify=treatment)
        return self

    def _compute_loss(self, module, batch):
        out = module["net"](batch["X"])  # every output has a leading member axis
        t = batch["t"]
        eta = self._factual(out.outcome, t)
        factual = member_mean(
            batch["w"] * outcome_loss(eta, batch["y"].expand_as(eta), self.outcome_type_), batch)
        alpha, ipm = self._balance_penalty()
        if alpha == 0:
            return {"loss": factual.sum(), "member_loss": factual}
        # each member's IPM over the rows it trains on (its own split, cross-fitting
        # fold or bootstrap resample), as its factual loss
        phi, t_ipm, weight = balanced_subbatch(
            out.representation, t, self.ipm_batch_size, batch.get("member_weight"))
        # in float32 under bfloat16 autocast too: the MMDs are small differences of
        # kernel means, of the size of bfloat16's round-off
        imbalance = float32_term(self._per_member, ipm, phi, t_ipm, weight)
        member_loss = factual + alpha * imbalance
        # per member: the history logs their mean and each member's own value
        return {"loss": member_loss.sum(), "member_loss": member_loss,
                "factual": factual, "ipm": imbalance}


@fill_doc
class TARNet(CFRNet):
    """Treatment-agnostic representation network: CFR without the balancing penalty.

    Same model, loss, parameters and defaults as :class:`CFRNet` with ``alpha = 0`` (so
    without ``alpha`` and ``ipm``). The unit-sphere representation stays on by default:
    on IHDP it lowered the validation loss of TARNet too
    (``benchmarks/results/tune_defaults.md``).

    Parameters
    ----------
    normalize_representation : bool, default=True
        Project ``Phi(x)`` onto the unit sphere.
    reweight_sample : bool, default=True
        Use the treatment-balance weights in the factual loss.
    %(representation_parameters)s
    %(member_parameters)s
    head_layers : tuple of int, default=(100, 100, 100)
        Hidden widths of each outcome head.
    weight_decay : float, default=1e-4
        L2 penalty on the weight matrices (not the biases).
    weight_decay_scope : {"all", "heads"}, default="all"
        Which weight matrices ``weight_decay`` penalises: every one, or only those of
        the outcome heads (as the papers do). On IHDP the validation loss of TARNet
        was the same to four digits either way (``benchmarks/results/tune_issue6.md``).
    batch_size : int, default=64
        Rows per gradient step.
    patience : int or None, default=30
        Early-stopping patience in epochs; ``None`` trains for ``max_epochs``.
    %(training_parameters)s

    Attributes
    ----------
    module_ : torch.nn.ModuleDict
        The trained network under ``"net"``.
    %(fitted_attributes)s
    treated_fraction_ : float
        The fraction of treated training rows.

    See Also
    --------
    CFRNet : the same model with an IPM balancing penalty.

    References
    ----------
    .. [1] U. Shalit, F. D. Johansson, D. Sontag. "Estimating individual treatment
       effect: generalization bounds and algorithms". ICML 2017.

    Examples
    --------
    >>> from causalnn import TARNet
    >>> from causalnn.datasets import load_ihdp
    >>> data = load_ihdp(1)
    >>> est = TARNet(random_state=0).fit(data.X, data.y, treatment=data.treatment)
    >>> ate = est.ate(data.X)
    """

    _parameter_constraints = {
        k: v for k, v in CFRNet._parameter_constraints.items()
        if k not in ("alpha", "ipm", "ipm_batch_size")}

    def __init__(self, *, normalize_representation=True, reweight_sample=True,
                 n_members=1, bootstrap=False,
                 member_validation="shared",
                 representation_layers=(200, 200, 200), head_layers=(100, 100, 100),
                 activation="elu", learning_rate=1e-3, weight_decay=1e-4,
                 weight_decay_scope="all", optimizer="adam",
                 batch_size=64, max_epochs=300, patience=30, validation_fraction=0.3,
                 scale_features=True, precision="float32", compile=False, outcome="auto",
                 treatment_col=None, random_state=None, device="auto", verbose=0):
        self.normalize_representation = normalize_representation
        self.reweight_sample = reweight_sample
        self.n_members = n_members
        self.bootstrap = bootstrap
        self.member_validation = member_validation
        self.scale_features = scale_features
        self.precision = precision
        self.compile = compile
        self.representation_layers = representation_layers
        self.head_layers = head_layers
        self.activation = activation
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.weight_decay_scope = weight_decay_scope
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

    def _balance_penalty(self):
        return 0.0, None
