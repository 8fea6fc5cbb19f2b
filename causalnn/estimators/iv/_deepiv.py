"""DeepIV: instrumental-variable regression with two neural stages.

Hartford, Lewis, Leyton-Brown & Taddy (2017), "Deep IV: A flexible approach for
counterfactual prediction", ICML.

Model: ``y = h(t, x) + e`` with ``E[e | x, z] = 0`` but ``E[e | x, t] != 0``.
First stage: a mixture density network for ``F(t | x, z)`` (a softmax classifier for a
discrete treatment), fitted by maximum likelihood.
Second stage: ``h`` minimises ``sum_i (y_i - E_{t ~ F(.|x_i, z_i)} h(t, x_i))^2``, the
expectation by Monte-Carlo draws from the fitted first stage (exact for a discrete one).
Effect: ``h(T1, x) - h(T0, x)``; ``marginal_effect`` is ``dh/dt`` by autograd.
Model selection: the second-stage loss on held-out rows (``causal_validation_loss``),
the paper's causal validation.
"""
import numbers

import numpy as np
import pandas as pd
import torch
from sklearn.utils.validation import check_is_fitted

from ..._base import BaseCausalEstimator, Interval, LayerWidths, Options
from ..._base._scaling import apply_scaling, column_scaling
from ..._base._validation import (as_pandas_frame, check_features, check_matrix,
                                  check_same_index, check_same_rows, check_scalar_or_vector,
                                  check_varies,
                                  check_vector, column_list, split_named_columns)
from ..._warnings import warn_at_caller
from ...engine import (make_generator, predict_in_batches, prediction_chunk_rows,
                      spawn_generator)
from ...exceptions import ExtrapolationWarning, WeakInstrumentWarning
from ...nets import MLP, dropout_masks_from, init_weights
from ...nets.distributions import CategoricalNetwork, MixtureDensityNetwork, sample
from ...nets.mlp import ACTIVATIONS

__all__ = ["DeepIV"]

# modules compute in float64, so predictions and effects carry no float32 round-off
DTYPE = torch.float64
# Monte-Carlo draws per row for the held-out second-stage loss, which drives early
# stopping: with one draw its noise ended training epochs too early
VALIDATION_DRAWS = 20


def authors_dropout_rate(n_samples):
    """The dropout rate of Hartford et al.'s released code for ``n_samples`` training
    rows: ``min(1000 / (1000 + n), 0.5)``."""
    return min(1000.0 / (1000.0 + n_samples), 0.5)


def _stacked_r(n_rows, rows, block_rows):
    """The ``R`` of a QR decomposition of the ``(n_rows, c)`` matrix whose rows
    ``rows(slice)`` returns block by block: each block is stacked under the ``R`` so far
    and decomposed again (TSQR), so neither the matrix nor ``Q`` is ever held whole."""
    r = None
    for start in range(0, n_rows, block_rows):
        block = rows(slice(start, start + block_rows))
        r = np.linalg.qr(block if r is None else np.vstack([r, block]), mode="r")
    return r


def _partial_f(target, exogenous, instrument, block_rows=4096):
    """Partial F statistic and partial R^2 of ``instrument`` in the linear regression of
    each column of ``target`` on ``[1, exogenous, instrument]`` (first-stage strength).

    The design is read in blocks of rows, never built whole: with
    ``[design, target] = Q R``, a regression on the first columns of the design has the
    residual sum of squares of the same regression on the rows of ``R`` (``Q`` has
    orthonormal columns), so both fits are least squares on ``R``, with the rank cut-off
    ``lstsq`` would apply to the full design (``eps * max(n, columns)`` relative to the
    largest singular value, which ``R`` shares with the design).
    """
    n, k, q = len(target), target.shape[1], instrument.shape[1]
    r = _stacked_r(n, lambda rows: np.column_stack(
        [np.ones(len(target[rows])), exogenous[rows], instrument[rows], target[rows]]),
        block_rows)
    design, target_r = r[:, :-k], r[:, -k:]

    def rss_and_rank(columns):
        rcond = np.finfo(np.float64).eps * max(n, columns)
        coef, _, rank, _ = np.linalg.lstsq(design[:, :columns], target_r, rcond=rcond)
        return ((target_r - design[:, :columns] @ coef) ** 2).sum(axis=0), rank

    full = design.shape[1]
    (rss_r, rank_r), (rss_f, rank_f) = rss_and_rank(full - q), rss_and_rank(full)
    if n <= rank_f:
        # as many independent design columns as rows: the full regression interpolates
        # the treatment, leaving no residual to measure the instruments against (its
        # F statistic would be round-off over round-off, e.g. 1e28); neither is defined
        return np.full(k, np.nan), np.full(k, np.nan)
    q, dof = max(rank_f - rank_r, 1), n - rank_f
    partial_r2 = np.where(rss_r > 0, 1.0 - rss_f / np.where(rss_r > 0, rss_r, 1.0), 0.0)
    f_stat = ((rss_r - rss_f) / q) / np.maximum(rss_f / dof, np.finfo(float).tiny)
    return f_stat, partial_r2


def _share_of_rows(flags):
    """``"k of n rows (p%)"``: the count as well, so that 1 row of 300 does not read
    as 0%."""
    k, n = int(np.count_nonzero(flags)), len(flags)
    share = f"{k / n:.0%}" if k * 100 >= n else "<1%"
    return f"{k} of {n} rows ({share})"


class DeepIV(BaseCausalEstimator):
    """Deep instrumental-variable regression (DeepIV).

    Fits the structural function ``h(t, x)`` when the treatment ``t`` and the outcome
    share unobserved causes, using instruments ``z`` that move ``t`` but reach ``y`` only
    through it. Stage one learns the treatment's conditional distribution
    ``F(t | x, z)``; stage two fits ``h`` so that its average over ``F`` matches ``y``.

    Parameters
    ----------
    n_components : int, default=10
        Gaussian components of the first-stage mixture density network.
    treatment_type : {"continuous", "discrete"}, default="continuous"
        A continuous treatment may be a vector (``(n, k)``); a discrete one is a single
        column of class labels, modelled by a softmax first stage.
    first_stage_layers : tuple of int, default=(128, 64, 32)
        Hidden widths of the first-stage network (the paper's architecture).
    outcome_layers : tuple of int, default=(128, 64, 32)
        Hidden widths of the outcome network ``h``.
    activation : {"elu", "relu", "tanh", "selu", "gelu"}, default="relu"
    dropout : float in [0, 1) or "auto", default=0.0
        Dropout rate after every hidden layer of both networks, in training steps only
        (never in the held-out losses that drive early stopping, in the first stage's
        draws for the second stage, or at prediction). ``"auto"`` is the authors'
        released code's rate ``min(1000 / (1000 + n), 0.5)`` for the ``n`` rows passed
        to ``fit``. The default is 0: the paper's criterion did not prefer ``"auto"``
        on the demand simulation (see "Differences from the authors' released code"
        below).
    n_treatment_samples : int, default=1
        Monte-Carlo draws from the first stage per row and step for the expectation in
        the second-stage loss (unused for a discrete treatment: its expectation is exact).
    unbiased_gradient : bool, default=True
        Use two independent sets of draws ``A``, ``B`` and the loss
        ``(y - hbar_A)(y - hbar_B)``, whose value and gradient are unbiased for
        ``(y - E h)^2`` (the paper's unbiased gradient). ``False`` uses
        ``(y - hbar)^2`` with one set, biased upward by ``var(h)/n_treatment_samples``.
    instrument_cols : str, int, list or None, default=None
        DataFrame columns of ``X`` that hold the instruments, for sklearn tools that pass
        only ``(X, y)``; they are not used as covariates.
    learning_rate : float, default=1e-3
    weight_decay : float, default=1e-3
        L2 penalty on the weight matrices of both stages. 1e-3 gave a lower held-out
        second-stage loss than the paper's 1e-4 (and 3e-3) on demand simulations that
        are not in the benchmark (``benchmarks/deepiv_tune.py``).
    optimizer : {"adam", "adamw", "sgd"}, default="adam"
    batch_size : int, default=100
    max_epochs : int, default=300
        Upper bound on the passes over the training rows, per stage. With a patience
        of 20 the stages of two diagnostic demand fits ran 68-99 epochs; 300 leaves it
        to the patience, not the cap, to end training.
    patience : int or None, default=20
        Early stopping on the held-out loss of each stage (first-stage negative
        log-likelihood, second-stage loss), as the paper's validation procedure. The
        second-stage loss moves by about as much from epoch to epoch through SGD noise
        as it improves: with a patience of 5 it stopped some fits after 10 epochs, and
        on the demand benchmark (n = 10000, rho 0.5 and 0.9, 3 seeds each) the
        counterfactual MSE was 0.186 and 0.187 against 0.109 and 0.105 with 20, at
        2-3x the fit time (``benchmarks/results/deepiv_demand.md``).
    validation_fraction : float, default=0.2
        Rows held out for early stopping in each stage (each stage its own rows, so
        every row trains at least one stage). They are drawn before the initial
        weights, so one ``random_state`` holds out the same rows whatever the
        networks' sizes.
    treatment_col : str or None, default=None
        DataFrame column of ``X`` holding a one-dimensional treatment.
    random_state : int, RandomState or None, default=None
        Seeds weights, splits, batch order, the Monte-Carlo draws and the dropout
        masks. The masks come from a stream of their own, so one ``random_state``
        holds out the same rows and draws the same initial weights whatever the
        dropout rate; it lives on the fit's device, so with dropout a GPU fit does
        not repeat a CPU fit's masks.
    device : str or torch.device, default="auto"
    verbose : int, default=0

    Attributes
    ----------
    first_stage_module_ : MixtureDensityNetwork or CategoricalNetwork
        The fitted treatment model ``F(t | x, z)``.
    module_ : torch.nn.Module
        The fitted outcome network ``h``.
    dropout_ : float
        The dropout rate used (``dropout`` resolved for the number of rows).
    first_stage_history_ : list of dict
        Per-epoch first-stage losses (negative log-likelihood per row).
    history_, best_epoch_, n_iter_ : list, int, int
        Second-stage history, best epoch and epochs run.
    first_stage_strength_ : float
        Partial R^2 of the instruments in a linear regression of the treatment on
        ``[x, z]``: the smallest over the columns of a vector treatment, the largest
        over the class indicators of a discrete one. A linear screen: it can miss an
        instrument that moves the treatment only non-linearly.
    first_stage_f_statistic_ : float
        The matching partial F statistic; below 10 a ``WeakInstrumentWarning`` is raised
        (the Staiger-Stock rule of thumb). Both are NaN, with that warning, when the
        rows are no more than the regression's independent columns (no residual is
        left to measure the instruments against).
    treatment_type_ : str
        The treatment type fitted (``treatment_type`` at fit); prediction uses it, so a
        later ``set_params(treatment_type=...)`` takes effect at the next ``fit``.
    treatment_classes_ : ndarray
        Levels of a discrete treatment.
    n_treatment_features_ : int
        Columns of the treatment (1 for a discrete one).
    treatment_names_ : ndarray of str
        Column names of a continuous treatment passed to ``fit`` as a DataFrame (absent
        otherwise). A DataFrame of treatment levels at prediction must then carry
        exactly these columns; they are matched by name, in any order.
    n_instruments_ : int
    instrument_names_ : ndarray of str
        Column names of the instruments when ``fit`` got them as a DataFrame (or from
        ``instrument_cols``; absent otherwise). ``first_stage_log_likelihood`` matches a
        DataFrame of instruments to them by name, in any order.
    n_features_in_, feature_names_in_ : int, ndarray
    y_mean_, y_scale_ : float
        Standardisation of ``y``.
    x_mean_, x_scale_, z_mean_, z_scale_ : ndarray
        Standardisation of the covariates and the instruments fed to the networks (a
        constant column gets scale 1). The covariates' are taken after the base's
        feature scaling (``X_offset_``, ``X_scale_``, in the user's units), so they are
        about 0 and 1 for the non-binary columns.
    t_mean_, t_scale_ : ndarray of shape (k,)
        Standardisation of a continuous treatment.
    treatment_range_ : ndarray of shape (2, k)
        The smallest and largest level of each column of a continuous treatment in
        fit. A query at a level outside it (``effect``, ``predict``, ``ate``,
        ``predict_outcome``, ``marginal_effect``, ``score``) warns with an
        :class:`~causalnn.exceptions.ExtrapolationWarning`: ``h`` is extrapolated
        there. ``predict(X)`` and ``effect(X)`` compare the levels 0 and 1, as
        EconML's do, which lie outside the range of many treatments (prices, doses):
        pass ``T0`` and ``T1``.
    device_ : torch.device

    Notes
    -----
    Treatment levels at prediction (``treatment``, ``T0``, ``T1``, ``T``) of a
    continuous treatment with ``k`` columns: a scalar (every column and row), an
    ``(n_samples, k)`` array or DataFrame (per row; for ``k = 1`` also ``(n_samples,)``),
    or, for ``k > 1``, a 1-d array of length ``k``: one treatment vector for every row,
    whatever ``n_samples`` (also when it equals ``k``). DataFrames are matched to
    ``treatment_names_`` by column name. A pandas ``instrument`` or level whose index
    differs from a DataFrame ``X``'s is refused, as the treatment is in ``fit``.

    To choose hyperparameters, use :meth:`causal_validation_loss` (the paper's causal
    validation; as a scorer :data:`causalnn.metrics.causal_validation_scorer`), not
    ``score``: the factual R^2 ranks the confounded regression ``E[y | t, x]`` above
    the structural function.

    Differences from the authors' released code: it applies dropout at the rate
    ``min(1000 / (1000 + n), 0.5)`` after every hidden layer of both networks
    (``dropout="auto"`` here), which this implementation leaves off by default: with
    early stopping on held-out rows, the causal validation loss on held-out rows of
    the demand simulation (n = 1000, 5000, 10000; rho = 0.5, 0.9; 3 seeds each) was
    lower with "auto" in 7 of 18 paired fits: within 0.015 of no dropout at n = 5000
    and 10000 (rates 0.17 and 0.09), 0.11-0.13 higher at n = 1000 (rate 0.5), where
    the test-grid error rose from 0.32 to 0.45 (``docs/deepiv.md``). Its L2 penalty
    is 1e-4 in the first stage (1e-3 here, as in its outcome network).
    :func:`causalnn.datasets.demand_test_grid` is this library's fixed grid, not the
    authors' evaluation, a price sweep over randomly drawn covariates.

    References
    ----------
    .. [1] J. Hartford, G. Lewis, K. Leyton-Brown, M. Taddy. "Deep IV: A flexible
       approach for counterfactual prediction". ICML 2017.

    Examples
    --------
    >>> from causalnn import DeepIV
    >>> from causalnn.datasets import make_demand
    >>> data = make_demand(1000, rho=0.9, random_state=0)
    >>> est = DeepIV(random_state=0).fit(data.X, data.y, treatment=data.treatment,
    ...                                  instrument=data.instrument)
    >>> slope = est.marginal_effect(data.X, T=data.treatment)
    """

    __metadata_request__fit = {"treatment": True, "instrument": True}

    _parameter_constraints = {
        **{k: v for k, v in BaseCausalEstimator._parameter_constraints.items()
           if k != "outcome"},
        "n_components": [Interval(numbers.Integral, 1, None)],
        "treatment_type": [Options("continuous", "discrete")],
        "first_stage_layers": [LayerWidths()],
        "outcome_layers": [LayerWidths()],
        "activation": [Options(*ACTIVATIONS)],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left"), Options("auto")],
        "n_treatment_samples": [Interval(numbers.Integral, 1, None)],
        "unbiased_gradient": [bool],
        "instrument_cols": [str, numbers.Integral, list, tuple, None],
    }

    def __init__(self, *, n_components=10, treatment_type="continuous",
                 first_stage_layers=(128, 64, 32), outcome_layers=(128, 64, 32),
                 activation="relu", dropout=0.0, n_treatment_samples=1,
                 unbiased_gradient=True, instrument_cols=None, learning_rate=1e-3,
                 weight_decay=1e-3, optimizer="adam", batch_size=100, max_epochs=300,
                 patience=20, validation_fraction=0.2, treatment_col=None,
                 random_state=None, device="auto", verbose=0):
        self.n_components = n_components
        self.treatment_type = treatment_type
        self.first_stage_layers = first_stage_layers
        self.outcome_layers = outcome_layers
        self.activation = activation
        self.dropout = dropout
        self.n_treatment_samples = n_treatment_samples
        self.unbiased_gradient = unbiased_gradient
        self.instrument_cols = instrument_cols
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.treatment_col = treatment_col
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # ---- fit ------------------------------------------------------------------------
    def fit(self, X, y, *, treatment=None, instrument=None):
        """Fit both stages.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Covariates (with ``instrument_cols``/``treatment_col``: a DataFrame that also
            holds those columns).
        y : array-like of shape (n_samples,)
        treatment : array-like of shape (n_samples,) or (n_samples, k)
            Continuous (scalar or vector) treatment, or class labels with
            ``treatment_type="discrete"``.
        instrument : array-like of shape (n_samples,) or (n_samples, q)
            Instruments; required unless ``instrument_cols`` is set. Routed per fold by
            ``GridSearchCV``/``cross_validate`` under sklearn metadata routing.

        Returns
        -------
        self : DeepIV
        """
        # against X's index, or each other's when X is a numpy array
        check_same_rows([(y, "y"), (treatment, "treatment"), (instrument, "instrument")], X)
        X, instrument = split_named_columns(X, instrument, self.instrument_cols,
                                            name="instrument", param="instrument_cols")
        # scratch for _fit, which the base calls after checking X, y and the treatment
        self._instrument = instrument
        try:
            return super().fit(X, y, treatment=treatment)
        finally:
            del self._instrument
            self.__dict__.pop("_treatment_names", None)

    def _resolve_outcome(self, y):
        return "continuous"  # squared-error second stage; y is standardised

    def _validate_treatment(self, treatment, n_samples):
        owner = type(self).__name__
        if self.treatment_type == "discrete":
            treatment = check_vector(treatment, name="treatment", n_samples=n_samples)
            classes = np.unique(treatment)
            if len(classes) < 2:
                raise ValueError(f"treatment has a single level {classes.tolist()}; "
                                 f"{owner} needs at least two treatment levels.")
            return treatment
        # the columns of a vector treatment are matched by name at prediction, as X's
        if isinstance(treatment, pd.DataFrame):
            # kept aside until _fit: the base forgets the earlier fit after validation
            _, self._treatment_names = check_features(treatment, name="treatment",
                                                      owner=owner)
        treatment = check_matrix(treatment, name="treatment", n_samples=n_samples)
        check_varies(treatment, name="treatment")
        return treatment

    def _check_instrument(self, instrument, n_samples):
        if instrument is None:
            raise ValueError(
                "instrument is required: pass fit(X, y, treatment=t, instrument=z), or "
                "set instrument_cols to the DataFrame columns of X that hold it. (Inside "
                "cross_validate/GridSearchCV, enable metadata routing with "
                "sklearn.set_config(enable_metadata_routing=True) and pass "
                "params={'treatment': t, 'instrument': z}.)")
        if hasattr(self, "instrument_names_"):  # from an earlier fit
            del self.instrument_names_
        # the columns of several instruments are matched by name afterwards, as X's
        if isinstance(instrument, pd.DataFrame):
            _, self.instrument_names_ = check_features(instrument, name="instrument",
                                                       owner=type(self).__name__)
        instrument = check_matrix(instrument, name="instrument", n_samples=n_samples,
                                  against="X (and treatment)")
        check_varies(instrument, name="instrument")
        return instrument

    def _fit(self, X, y, treatment, generator):
        # what prediction reads: a later set_params(treatment_type=...) takes effect
        # at the next fit, not on this fit's networks
        self.treatment_type_ = self.treatment_type
        if getattr(self, "_treatment_names", None) is not None:
            self.treatment_names_ = self._treatment_names
        Z = self._check_instrument(self._instrument, X.shape[0])
        self.n_instruments_ = Z.shape[1]
        self.x_mean_, self.x_scale_ = column_scaling(X, name="X")
        self.z_mean_, self.z_scale_ = column_scaling(Z, name="instrument")
        # X is the base's scaled copy: standardised in place, as at prediction
        X = apply_scaling(X, self.x_mean_, self.x_scale_, out=X)
        Zs = apply_scaling(Z, self.z_mean_, self.z_scale_, name="instrument")
        # [x, z] built once in the float32 the engine trains on (what it would round
        # the float64 values to): both stages share it; the second stage's x is a view
        context = np.empty((X.shape[0], X.shape[1] + Z.shape[1]), dtype=np.float32)
        Xs = context[:, :X.shape[1]]
        Xs[...] = X
        context[:, X.shape[1]:] = Zs
        discrete = self.treatment_type_ == "discrete"
        if discrete:
            self.treatment_classes_, codes = np.unique(treatment, return_inverse=True)
            self.n_treatment_features_ = 1
            T = codes.astype(np.float64)
            target = np.eye(len(self.treatment_classes_))[codes][:, 1:]
        else:
            self.n_treatment_features_ = treatment.shape[1]
            self.t_mean_, self.t_scale_ = column_scaling(treatment, name="treatment")
            self.treatment_range_ = np.stack([treatment.min(axis=0),
                                              treatment.max(axis=0)])
            T = apply_scaling(treatment, self.t_mean_, self.t_scale_, name="treatment")
            target = T
        self._report_strength(target, X, Zs)
        self.dropout_ = (authors_dropout_rate(X.shape[0]) if self.dropout == "auto"
                         else float(self.dropout))

        # Each stage's validation split and batch order come from its own stream,
        # spawned before any weights: one random_state holds out the same rows
        # whatever the networks' sizes. The stages hold out different rows, so every
        # row trains at least one stage (the same rows in both stages left a fifth of
        # the data unused and raised the demand benchmark's error on 5 of 6 fits).
        first_stage_rows = spawn_generator(generator)
        second_stage_rows = spawn_generator(generator)

        # stage 1: F(t | x, z) by maximum likelihood, early-stopped on held-out rows
        first = self._first_stage_network(context.shape[1])
        self.first_stage_module_ = init_weights(first, generator, scale=1.0).to(DTYPE)
        with dropout_masks_from(self.first_stage_module_, self._mask_stream(generator, 1)):
            self._train(self.first_stage_module_, {"context": context, "t": T},
                        first_stage_rows, stratify=None, loss_fn=self._first_stage_loss,
                        stage="first stage")
        # frozen, and without dropout when it draws treatments for stage 2 (as the
        # authors' sampler, use_dropout=False); the engine leaves it in eval mode too
        self.first_stage_module_.requires_grad_(False).eval()
        self.first_stage_history_ = self.history_

        # stage 2: h against draws from the fitted (frozen) first stage
        n_out = len(self.treatment_classes_) if discrete else 1
        n_in = Xs.shape[1] + (0 if discrete else self.n_treatment_features_)
        self.module_ = init_weights(
            MLP(n_in, self.outcome_layers, out_features=n_out, activation=self.activation,
                dropout=self.dropout_),
            generator, scale=1.0).to(DTYPE)
        # Monte-Carlo draws from a CPU generator (moved to the device), so that a GPU
        # fit sees the same draws as a CPU fit
        draws = torch.Generator()
        draws.manual_seed(int(torch.randint(2 ** 62, (1,), generator=generator)))
        # Every validation pass reuses one set of draws (common random numbers): the
        # held-out loss is then a fixed function of the weights, and early stopping
        # compares epochs rather than Monte-Carlo noise.
        validation_draws = torch.Generator()
        validation_draws.manual_seed(int(torch.randint(2 ** 62, (1,),
                                                       generator=generator)))
        validation_start = validation_draws.get_state()
        pass_begins = [True]

        def second_stage_loss(module, batch):
            if module.training:
                pass_begins[0] = True
                return self._second_stage_loss(module, batch, draws)
            if pass_begins[0]:  # the first chunk of a validation pass
                validation_draws.set_state(validation_start)
                pass_begins[0] = False
            return self._second_stage_loss(module, batch, validation_draws)

        with dropout_masks_from(self.module_, self._mask_stream(generator, 2)):
            self._train(self.module_, {"X": Xs, "context": context, "y": y},
                        second_stage_rows, stratify=None, loss_fn=second_stage_loss,
                        stage="second stage")
        return self

    def _first_stage_network(self, n_context):
        """The first-stage network ``F(t | x, z)``, with ``dropout_`` after every
        hidden layer."""
        if self.treatment_type_ == "discrete":
            return CategoricalNetwork(n_context, len(self.treatment_classes_),
                                      self.first_stage_layers, self.activation,
                                      dropout=self.dropout_)
        return MixtureDensityNetwork(n_context, self.n_treatment_features_,
                                     self.n_components, self.first_stage_layers,
                                     self.activation, dropout=self.dropout_)

    def _mask_stream(self, generator, stage):
        """The generator of one stage's dropout masks, on the fit's device (masks are
        drawn where the activations are: no copy per step); ``None`` without dropout.

        Seeded from the seed of the fit's ``generator`` and the stage through a
        ``SeedSequence``, it draws nothing from ``generator``: one ``random_state``
        then gives the same splits, initial weights and Monte-Carlo draws at every
        dropout rate (rates compare on equal terms), and ``dropout=0`` fits are
        exactly those of an estimator without dropout.
        """
        if self.dropout_ == 0:
            return None
        seed = np.random.SeedSequence([generator.initial_seed(), stage]).generate_state(
            1, dtype=np.uint64)[0]
        return torch.Generator(device=self.device_).manual_seed(int(seed))

    def _report_strength(self, target, Xs, Zs):
        f_stat, partial_r2 = _partial_f(target, Xs, Zs)
        # every column of a vector treatment needs the instruments (the weakest counts);
        # a discrete one's class indicators may respond non-monotonically (the strongest)
        pick = np.max if self.treatment_type_ == "discrete" else np.min
        self.first_stage_f_statistic_ = float(pick(f_stat))
        self.first_stage_strength_ = float(pick(partial_r2))
        if np.isnan(self.first_stage_f_statistic_):
            warn_at_caller(
                f"The instrument's strength cannot be assessed: the {len(target)} rows "
                f"are no more than the {Xs.shape[1] + Zs.shape[1] + 1} columns of the "
                f"linear first-stage check (an intercept, X and the instrument), which "
                f"then fits the treatment exactly. first_stage_f_statistic_ and "
                f"first_stage_strength_ are NaN; DeepIV's estimate of h on so few rows "
                f"is unreliable.", WeakInstrumentWarning)
        elif self.first_stage_f_statistic_ < 10:
            warn_at_caller(
                f"The instrument is weak: its first-stage partial F statistic is "
                f"{self.first_stage_f_statistic_:.2f} (< 10; partial R^2 "
                f"{self.first_stage_strength_:.4f}) in a linear regression of the "
                f"treatment on X and the instrument. DeepIV's estimate of h may be "
                f"unreliable.", WeakInstrumentWarning)

    # ---- the two losses -------------------------------------------------------------
    def _first_stage_loss(self, module, batch):
        """Negative log-likelihood of the observed treatment under ``F(t | x, z)``."""
        distribution = module(batch["context"].to(DTYPE))
        discrete = self.treatment_type_ == "discrete"
        t = batch["t"].long() if discrete else batch["t"].to(DTYPE)
        return {"loss": -distribution.log_prob(t).mean()}

    def _second_stage_loss(self, module, batch, generator):
        """``(y - E_{t~F} h(t, x))^2`` with the expectation by Monte-Carlo draws."""
        x, y = batch["X"].to(DTYPE), batch["y"].to(DTYPE)
        distribution = self.first_stage_module_(batch["context"].to(DTYPE))
        if self.treatment_type_ == "discrete":  # the expectation is a finite sum
            fitted = (distribution.probs * module(x)).sum(-1)
            return {"loss": ((y - fitted) ** 2).mean()}
        S = self.n_treatment_samples
        if not module.training:  # held-out loss: more draws steady early stopping
            S = max(S, VALIDATION_DRAWS)
        n_sets = 2 if self.unbiased_gradient else 1
        h = self._outcome_at_draws(module, distribution, x, n_sets * S, generator)
        fitted = h.view(n_sets, S, -1).mean(dim=1)                       # (sets, b)
        residual = y - fitted
        return {"loss": (residual[0] * residual[-1]).mean()}

    @staticmethod
    def _outcome_at_draws(module, distribution, x, n_draws, generator):
        """``h(t_s, x)`` at ``n_draws`` treatments ``t_s ~ F(. | x, z)`` per row, shape
        ``(n_draws, b)``, the draws from ``generator``."""
        t = sample(distribution, n_draws, generator)                     # (S, b, k)
        return module(torch.cat([t, x.expand(n_draws, -1, -1)], dim=-1))[..., 0]

    # ---- prediction -----------------------------------------------------------------
    def _validate_X(self, X):
        X = as_pandas_frame(X)  # a polars frame has no drop(columns=...)
        if self.instrument_cols is not None and hasattr(X, "columns"):
            X = X.drop(columns=[c for c in column_list(self.instrument_cols)
                                if c in X.columns])
        return super()._validate_X(X)

    def _levels(self, value, name, n, *, check_range=True):
        """Treatment levels for prediction, standardised: (n, k) floats, or class
        indices (n,) for a discrete treatment. ``check_range``: warn at continuous
        levels outside ``treatment_range_`` (queries of ``h``; not the first stage's
        likelihood of observed treatments).

        A continuous level is a scalar (every column, every row), an ``(n, k)`` array
        (one row of levels per row of ``X``) or, for a vector treatment (``k > 1``), a
        1-d array of length ``k``: one treatment vector for every row, whatever ``n``
        (a 1-d array cannot hold ``k > 1`` levels per row, so this reading is never
        ambiguous, also when ``n == k``). DataFrames and a Series of length ``k`` are
        matched to the fit's treatment columns by name.
        """
        if self.treatment_type_ == "discrete":
            levels = check_scalar_or_vector(value, name=name, n_samples=n)
            index = np.searchsorted(self.treatment_classes_, levels)
            index = np.clip(index, 0, len(self.treatment_classes_) - 1)
            unknown = levels != self.treatment_classes_[index]
            if unknown.any():
                raise ValueError(
                    f"{name} holds levels {np.unique(levels[unknown])[:10].tolist()} not "
                    f"seen in fit; the treatment levels are "
                    f"{self.treatment_classes_.tolist()}.")
            return index
        k = self.n_treatment_features_
        value = as_pandas_frame(value)  # another library's frame: matched by name too
        names = getattr(self, "treatment_names_", None)
        if (isinstance(value, np.ndarray) and value.ndim == 0
                and value.dtype.kind in "iuf"):
            value = value.item()  # a 0-d array is a scalar level, as for the other estimators
        if isinstance(value, numbers.Number) and not isinstance(value, bool):
            value = np.full((n, k), float(value))
        elif names is not None and (isinstance(value, pd.DataFrame)
                                    or (k > 1 and np.ndim(value) == 2)):
            # a DataFrame matched by name; an array of several columns taken in the
            # fit's order, with the warning X gets (k = 1 leaves no order to mistake)
            value, _ = check_features(value, name=name, feature_names=names,
                                      n_features=k, owner=type(self).__name__)
        elif k > 1 and np.ndim(value) == 1:
            if isinstance(value, pd.Series) and names is not None:
                value = self._by_treatment_name(value, name)
            elif names is not None:
                warn_at_caller(
                    f"{name} is a vector without the treatment's column names, but "
                    f"{type(self).__name__} was fitted with them; its entries are taken "
                    f"in the order seen in fit {list(names)}")
            if len(value) != k:
                raise ValueError(
                    f"{name} is a 1-d array of length {len(value)}; with a treatment of "
                    f"k={k} columns pass one treatment vector of length {k} (applied to "
                    f"every row), a scalar, or an array of shape (n_samples={n}, {k}).")
            value = np.tile(check_matrix(value, name=name, n_samples=k).T, (n, 1))
        levels = check_matrix(value, name=name, n_samples=n)
        if levels.shape[1] != k:
            raise ValueError(f"{name} has {levels.shape[1]} columns but the treatment "
                             f"had {k} in fit.")
        if check_range:
            self._warn_outside_range(levels, name)
        return apply_scaling(levels, self.t_mean_, self.t_scale_, name=name)

    def _warn_outside_range(self, levels, name):
        """Warn when treatment levels lie outside those seen in fit (an estimator
        pickled before ``treatment_range_`` existed has no range to check)."""
        bounds = getattr(self, "treatment_range_", None)
        if bounds is None or not levels.size:
            return
        # a level rounded to float32 (a float32 copy of the training treatment) may
        # land one float32 rounding beyond the extremes: not an extrapolation
        slack = np.finfo(np.float32).eps * np.maximum(np.abs(bounds[0]),
                                                      np.abs(bounds[1]))
        outside = (levels < bounds[0] - slack) | (levels > bounds[1] + slack)
        columns = np.flatnonzero(outside.any(axis=0))
        if not len(columns):
            return
        names = getattr(self, "treatment_names_", None)
        where = "; ".join(
            f"{'column ' + str(j) if names is None else repr(str(names[j]))}: "
            f"[{bounds[0, j]:.4g}, {bounds[1, j]:.4g}]" for j in columns[:5])
        warn_at_caller(
            f"{name} holds treatment levels outside the range seen in fit ({where}) in "
            f"{_share_of_rows(outside.any(axis=1))}: the structural function h is "
            f"extrapolated there, where no training row was.", ExtrapolationWarning)

    def _check_level_index(self, level, X, name):
        """A Series labelled by the treatment's column names is one treatment vector
        for every row, not a value per row: it is matched by name, not by X's index."""
        names = getattr(self, "treatment_names_", None)
        if (isinstance(level, pd.Series) and names is not None and len(names) > 1
                and set(map(str, level.index)) == set(names)):
            return
        check_same_index(level, X, name)

    def _by_treatment_name(self, vector, name):
        """A Series holding one treatment vector, in the fit's column order: labelled by
        the treatment's column names (any order), or by its default 0..k-1 index
        (positional)."""
        labels = [str(label) for label in vector.index]
        names = list(self.treatment_names_)
        if set(labels) == set(names) and len(labels) == len(names):
            return vector.set_axis(labels).reindex(names).to_numpy()
        if isinstance(vector.index, pd.RangeIndex) and vector.index.start == 0:
            return vector.to_numpy()
        raise ValueError(
            f"{name} is a Series whose labels {labels[:10]} are not the treatment's "
            f"columns {names} seen in fit: label one treatment vector by those names, or "
            f"pass a NumPy array in their order.")

    def _scale_features(self, X):
        """The base's feature scaling, then every column standardised (``x_mean_``,
        ``x_scale_``; absent in fit until they are estimated): ``X`` on the scale the
        networks were fitted on. The base's scaled copy is standardised in place, the
        same operations as a second pass, without a second copy of the table."""
        scaled = super()._scale_features(X)
        if getattr(self, "x_mean_", None) is None:
            return scaled
        # never the caller's own array (the base returns it unscaled when it has no
        # scaling), only the base's new one
        return apply_scaling(scaled, self.x_mean_, self.x_scale_,
                             out=None if scaled is X else scaled)

    def _outcome_chunk_rows(self):
        """Rows per prediction chunk of the outcome network ``h``: its widest layer or
        its input, whichever is wider (float64: twice the bytes of float32)."""
        inputs = self.n_features_in_ + (0 if self.treatment_type_ == "discrete"
                                        else self.n_treatment_features_)
        widest = max(tuple(self.outcome_layers) + (inputs,))
        return prediction_chunk_rows(self.device_, 2 * widest)

    def _outcome_network(self, X, levels):
        Xs = torch.as_tensor(X, dtype=DTYPE)  # standardised by _validate_X
        if self.treatment_type_ == "discrete":
            index = torch.as_tensor(levels, dtype=torch.long)
            return predict_in_batches(
                lambda x, i: self.module_(x).gather(1, i[:, None])[:, 0],
                [Xs, index], device=self.device_, batch_size=self._outcome_chunk_rows())
        t = torch.as_tensor(levels, dtype=DTYPE)
        return predict_in_batches(lambda x, t: self.module_(torch.cat([t, x], -1))[:, 0],
                                  [Xs, t], device=self.device_,
                                  batch_size=self._outcome_chunk_rows())

    def _predict_outcome(self, X, *treatments):
        return [self._outcome_network(X, levels) for levels in treatments]

    def marginal_effect(self, X, *, T):
        """Marginal effect ``dh/dt`` at treatment ``T``, by automatic differentiation.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        T : scalar or array-like of shape (n_samples,) or (n_samples, k)
            Keyword-only: EconML's ``marginal_effect(T, X)`` takes the two the other
            way round, and with as many treatment columns as covariates a call in its
            order would otherwise return the gradient at the wrong point, silently.

        Returns
        -------
        grad : ndarray of shape (n_samples,) or (n_samples, k)
            In units of ``y`` per unit of treatment; (n,) for a one-dimensional one.
        """
        check_is_fitted(self, "n_features_in_")
        if self.treatment_type_ == "discrete":
            raise ValueError("marginal_effect needs a continuous treatment; for a discrete "
                             "one use effect(X, T0, T1).")
        X = as_pandas_frame(X)
        self._check_level_index(T, X, "T")
        X = self._validate_X(X)
        levels = self._levels(T, "T", X.shape[0])
        Xs = torch.as_tensor(X, dtype=DTYPE)  # standardised by _validate_X

        def gradient(x, t):
            # autograd whatever the caller's mode (no_grad or inference_mode)
            with torch.inference_mode(False), torch.enable_grad():
                t = t.clone().requires_grad_(True)
                h = self.module_(torch.cat([t, x], -1)).sum()
                return torch.autograd.grad(h, t)[0]

        grad = predict_in_batches(gradient, [Xs, torch.as_tensor(levels, dtype=DTYPE)],
                                  device=self.device_, batch_size=self._outcome_chunk_rows())
        grad = grad * self.y_scale_ / self.t_scale_
        return grad[:, 0] if grad.shape[1] == 1 else grad

    def first_stage_log_likelihood(self, X, treatment, instrument=None):
        """Mean log-likelihood of ``treatment`` under the fitted first stage, in nats per
        row on the original scale of a continuous treatment.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Covariates (with ``instrument_cols``: a DataFrame that may hold the
            instruments, used when ``instrument`` is None).
        treatment : array-like of shape (n_samples,) or (n_samples, k)
        instrument : array-like or DataFrame of shape (n_samples,) or (n_samples, q)
            A DataFrame is matched to ``instrument_names_`` by column name.

        Returns
        -------
        log_likelihood : float
        """
        check_same_rows([(treatment, "treatment"), (instrument, "instrument")], X)
        X, context = self._first_stage_context(
            X, instrument, call="first_stage_log_likelihood(X, treatment, instrument=z)")
        n = X.shape[0]
        levels = self._levels(treatment, "treatment", n, check_range=False)
        t = torch.as_tensor(levels, dtype=torch.long if self.treatment_type_ == "discrete"
                            else DTYPE)
        logp = predict_in_batches(
            lambda c, t: self.first_stage_module_(c).log_prob(t),
            [torch.as_tensor(context, dtype=DTYPE), t], device=self.device_)
        if self.treatment_type_ != "discrete":
            logp = logp - np.log(self.t_scale_).sum()  # change of variables to raw t
        return float(np.mean(logp))

    def causal_validation_loss(self, X, y, instrument=None, *, n_draws=100,
                               random_state=0):
        """Held-out second-stage loss of Hartford et al. (2017, Sec. 3): the paper's
        causal validation criterion (lower is better).

        ``mean_i (y_i - E_{t ~ F(.|x_i, z_i)} h(t, x_i))^2`` with the fitted first stage
        ``F`` and outcome network ``h``. It uses observed data only (no treatment, no
        true effect), and with the true ``F`` its population minimiser over ``h`` is the
        structural function: ``E[y | x, z] = E_F h`` holds for it alone (when the
        instruments identify ``h``). The factual R^2 of ``score`` is minimised instead
        by the regression ``E[y | t, x]``, which under confounding is not ``h``, and it
        ranks a confounded fit above the structural function. Compute it on rows not
        used in ``fit``, and use it to choose hyperparameters (scorer:
        :data:`causalnn.metrics.causal_validation_scorer`).

        For a continuous treatment ``E_F h`` is a Monte-Carlo mean over ``n_draws``
        draws ``t_s ~ F(.|x_i, z_i)`` per row, and each row's squared residual is
        corrected by the draws' variance of ``h`` over ``n_draws`` (its bias), so the
        loss is unbiased for the one with the exact expectation. A discrete treatment's
        expectation is the exact sum over its levels.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Covariates (with ``instrument_cols``: a DataFrame that may hold the
            instruments, used when ``instrument`` is None).
        y : array-like of shape (n_samples,)
            Observed outcomes.
        instrument : array-like or DataFrame of shape (n_samples,) or (n_samples, q)
            The instruments of these rows; required unless ``instrument_cols`` is set.
            A DataFrame is matched to ``instrument_names_`` by column name.
        n_draws : int, default=100
            Monte-Carlo draws per row from the first stage (at least 2; unused for a
            discrete treatment).
        random_state : int, RandomState or None, default=0
            Seeds the draws. It is not the estimator's ``random_state``: with the
            default, the loss is a fixed function of the fitted model and the rows,
            and models compared on the same rows see the same random numbers.

        Returns
        -------
        loss : float
            In squared units of ``y``; lower is better.

        See Also
        --------
        causalnn.metrics.causal_validation_scorer : This loss, negated, as a scorer.

        References
        ----------
        .. [1] J. Hartford, G. Lewis, K. Leyton-Brown, M. Taddy. "Deep IV: A flexible
           approach for counterfactual prediction". ICML 2017, Section 3 ("causal
           validation").

        Examples
        --------
        >>> from causalnn import DeepIV
        >>> from causalnn.datasets import make_demand
        >>> train = make_demand(1000, rho=0.9, random_state=0)
        >>> test = make_demand(1000, rho=0.9, random_state=1)
        >>> est = DeepIV(max_epochs=5, random_state=0).fit(
        ...     train.X, train.y, treatment=train.treatment, instrument=train.instrument)
        >>> loss = est.causal_validation_loss(test.X, test.y, test.instrument)
        """
        if (not isinstance(n_draws, numbers.Integral) or isinstance(n_draws, bool)
                or n_draws < 2):
            raise ValueError(f"n_draws must be an integer >= 2 (the draws' variance of h "
                             f"corrects the loss's bias); got {n_draws!r}.")
        check_is_fitted(self, "n_features_in_")
        check_same_rows([(y, "y"), (instrument, "instrument")], X)
        X, context = self._first_stage_context(
            X, instrument, call="causal_validation_loss(X, y, instrument=z)")
        y = check_vector(y, name="y", n_samples=X.shape[0])
        y_std = (y - self.y_mean_) / self.y_scale_
        n_features = X.shape[1]
        # draws from a CPU generator, moved to the device: GPU and CPU agree
        generator = make_generator(random_state)

        def squared_residuals(c, y):
            x = c[:, :n_features]  # the context is [x, z], both standardised
            distribution = self.first_stage_module_(c)
            if self.treatment_type_ == "discrete":  # the expectation is a finite sum
                return (y - (distribution.probs * self.module_(x)).sum(-1)) ** 2
            h = self._outcome_at_draws(self.module_, distribution, x, n_draws, generator)
            # E (y - hbar)^2 = (y - E h)^2 + var(h) / S: remove the Monte-Carlo bias
            return (y - h.mean(0)) ** 2 - h.var(0) / n_draws

        losses = predict_in_batches(
            squared_residuals, [torch.as_tensor(a, dtype=DTYPE) for a in (context, y_std)],
            device=self.device_, batch_size=max(1, 2 ** 16 // n_draws))
        return float(self.y_scale_ ** 2 * np.mean(losses))

    def _first_stage_context(self, X, instrument, call):
        """Validated covariates and the first stage's input ``[x, z]``, standardised as
        in ``fit``; the instruments come from ``instrument`` or ``instrument_cols``."""
        check_same_index(instrument, X, "instrument")
        X, instrument = as_pandas_frame(X), as_pandas_frame(instrument)
        if instrument is None and self.instrument_cols is not None:
            X, instrument = split_named_columns(X, None, self.instrument_cols,
                                                name="instrument",
                                                param="instrument_cols")
        X = self._validate_X(X)
        n = X.shape[0]
        if instrument is None:
            raise ValueError(f"instrument is required: pass {call}, the instruments of "
                             f"these rows, or set instrument_cols to the DataFrame "
                             f"columns of X that hold them.")
        names = getattr(self, "instrument_names_", None)
        if names is not None and (isinstance(instrument, pd.DataFrame) or (
                self.n_instruments_ > 1 and np.ndim(instrument) == 2)):
            # as the treatment levels: by name, or in the fit's order with a warning
            instrument, _ = check_features(instrument, name="instrument",
                                           feature_names=names,
                                           n_features=self.n_instruments_,
                                           owner=type(self).__name__)
        Z = check_matrix(instrument, name="instrument", n_samples=n)
        if Z.shape[1] != self.n_instruments_:
            raise ValueError(f"instrument has {Z.shape[1]} columns but had "
                             f"{self.n_instruments_} in fit.")
        context = np.column_stack(  # X standardised by _validate_X
            [X, apply_scaling(Z, self.z_mean_, self.z_scale_, name="instrument")])
        return X, context
