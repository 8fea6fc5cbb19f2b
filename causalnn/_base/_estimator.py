"""The estimator interface every causalnn estimator shares.

:class:`BaseCausalEstimator` does the sklearn bookkeeping once: parameter validation,
input checks, the treatment as an argument or a DataFrame column, outcome type and
scaling, device and seed resolution, and the effect API named as in EconML
(``effect(X, T0, T1)``, ``ate``). A subclass implements ``_fit`` (build modules and train
them with :class:`causalnn.engine.Trainer`) and ``_predict_outcome``.
"""
import contextlib
import copy
import numbers
from abc import ABCMeta, abstractmethod

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils.validation import check_is_fitted

from ..nets.members import deferred_default_init
from ..engine import Trainer, loadable_device, make_generator, resolve_device, to_tensor
from ._param_validation import RANDOM_STATE, Interval, Options, validate_params
from ._scaling import all_rows, apply_scaling, column_scaling, standardize_outcome
from ._validation import (as_pandas_frame, check_binary, check_device_type,
                          check_features, check_same_index, check_same_rows,
                          check_scalar_or_vector,
                          check_vector, require_treatment, split_treatment_column)

__all__ = ["BaseCausalEstimator", "PropensityMixin"]


def _is_outcome_head_weight(name, param):
    """A weight matrix of an outcome head (``weight_decay_scope="heads"``); a module-level
    function, not a lambda, so that whatever holds it still pickles."""
    return param.ndim >= 2 and name.startswith("net.heads.")



def factual_r2(y, mu, sample_weight=None):
    """R^2 of the fitted factual outcomes ``mu`` against ``y``: every estimator's
    ``score``. ``y`` and ``sample_weight`` are checked as data (finite, one value per
    row; the weights non-negative with a positive sum), naming the argument."""
    y = check_vector(y, name="y", n_samples=len(mu))
    if sample_weight is not None:
        sample_weight = check_vector(sample_weight, name="sample_weight",
                                     n_samples=len(mu))
        if np.any(sample_weight < 0) or not np.any(sample_weight > 0):
            raise ValueError("sample_weight must be non-negative with a positive sum; "
                             f"got values from {sample_weight.min()!r} to "
                             f"{sample_weight.max()!r}.")
    return float(r2_score(y, mu, sample_weight=sample_weight))


class BaseCausalEstimator(RegressorMixin, BaseEstimator, metaclass=ABCMeta):
    """Base class of causalnn estimators (not for direct use).

    ``fit(X, y, treatment=t)`` follows sklearn's ``(X, y)`` order so that ``Pipeline``,
    ``cross_validate`` and ``GridSearchCV`` accept it. ``treatment`` is requested as
    metadata by ``fit`` and ``score`` by default, so with
    ``sklearn.set_config(enable_metadata_routing=True)`` it is split per fold like ``X``.
    """

    # sklearn metadata routing: fit and score ask for the treatment without set_*_request
    __metadata_request__fit = {"treatment": True}
    __metadata_request__score = {"treatment": True}

    _parameter_constraints = {
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
        "optimizer": [Options("adam", "adamw", "sgd")],
        "batch_size": [Interval(numbers.Integral, 1, None)],
        "max_epochs": [Interval(numbers.Integral, 1, None)],
        "patience": [Interval(numbers.Integral, 1, None), None],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
        "outcome": [Options("auto", "continuous", "binary")],
        "treatment_col": [str, numbers.Integral, None],
        "random_state": RANDOM_STATE,
        "device": [str, torch.device],
        "verbose": [Interval(numbers.Integral, 0, None), bool],
    }

    # ---- what a subclass provides -------------------------------------------------
    @abstractmethod
    def _fit(self, X, y, treatment, generator):
        """Build and train the model on validated arrays; ``y`` is on the training scale."""

    @abstractmethod
    def _predict_outcome(self, X, *treatments):
        """Linear predictor of E[Y | x, t] on the training scale for each treatment
        array in ``treatments``: a list of (n,) arrays (one forward pass can serve all)."""

    def _validate_treatment(self, treatment, n_samples):
        """Fit-time treatment check, a hook: a binary (n,) vector by default; estimators
        with continuous, vector or discrete treatments override it."""
        treatment = check_vector(treatment, name="treatment", n_samples=n_samples)
        return self._check_treatment(treatment)

    def _check_treatment(self, treatment):
        """Validate the fit-time treatment; binary by default."""
        check_binary(treatment, name="treatment", owner=type(self).__name__)
        counts = np.bincount(treatment.astype(int), minlength=2)
        needed = 2 if self.validation_fraction > 0 else 1
        for arm, count in enumerate(counts):
            if count < needed:
                raise ValueError(
                    f"treatment arm {arm} has {count} rows; {type(self).__name__} needs "
                    f"at least {needed} rows in each arm (one to train the arm's outcome "
                    f"head, one for the validation split).")
        return treatment

    def _check_treatment_levels(self, treatment, name):
        """Validate treatment levels asked for at predict time."""
        check_binary(treatment, name=name, owner=type(self).__name__)

    # ---- fit ------------------------------------------------------------------------
    def fit(self, X, y, *, treatment=None):
        """Fit the estimator.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Covariates. With ``treatment_col`` set, a DataFrame holding the treatment in
            that column. A polars (or other) DataFrame is taken as its pandas
            conversion: its column names are recorded and matched as pandas' are.
        y : array-like of shape (n_samples,)
            Observed (factual) outcomes.
        treatment : array-like of shape (n_samples,), default=None
            Treatment received; required unless ``treatment_col`` is set.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        validate_params(self.get_params(deep=False), self._parameter_constraints,
                        type(self).__name__)
        X = as_pandas_frame(X)  # once, for every check below
        columns = getattr(X, "columns", None)
        X, treatment = split_treatment_column(X, treatment, self.treatment_col,
                                              required=False)
        X_given = X
        X, names = check_features(X, name="X", keep_float32=True)
        n = X.shape[0]
        if n < 2:
            raise ValueError(f"X has n_samples={n}; {type(self).__name__} needs at least "
                             f"2 rows (one per treatment arm).")
        check_same_index(y, X_given, "y")
        y_given = y
        y = check_vector(y, name="y", n_samples=n, warn_column=True)
        # after X and y, so their errors come first
        require_treatment(treatment, self.treatment_col, columns)
        # against X's index; for a numpy X, y's and the treatment's against each other
        check_same_rows([(y_given, "y"), (treatment, "treatment")], X_given)
        # converted after the index check, which an index-less (polars) frame skips
        treatment = self._validate_treatment(as_pandas_frame(treatment), n)
        # every input is valid: a refit starts from nothing, so that no fitted attribute
        # of the earlier fit (an overlap_share_, a coef_ of another outcome model)
        # survives beside the new ones (an input error leaves the earlier fit as it is)
        self._forget_fit()

        with self._forget_fit_on_failure():
            self.n_features_in_ = X.shape[1]
            X = self._fit_feature_scaling(X)
            if names is not None:
                self.feature_names_in_ = names
            elif hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
            self.outcome_type_ = self._resolve_outcome(y)
            if self.outcome_type_ == "continuous":
                # train on a standardised outcome; effects are reported in the user's units
                y_train, self.y_mean_, self.y_scale_ = standardize_outcome(y)
            else:
                y_train, self.y_mean_, self.y_scale_ = y, 0.0, 1.0
            self._seeded_fit(X, y_train, treatment)
        return self

    @contextlib.contextmanager
    def _forget_fit_on_failure(self):
        """Wrap the part of ``fit`` that sets fitted attributes: on any failure the
        estimator is left unfitted. Half of a new fit beside half of an old one would
        predict with mismatched scalings; unfitted, the estimator says so instead."""
        try:
            yield
        except BaseException:
            self._forget_fit()
            raise

    def _seeded_fit(self, X, y, treatment):
        """Resolve and check ``device_``, then run ``_fit`` with the generator of
        ``random_state``, without reading or advancing torch's global random stream:
        the layers are built without their default initialisation (a global draw),
        since ``init_weights`` draws every weight from ours. No ``fork_rng``: its
        restore is process-wide and rewound the stream under the caller's other
        threads. Every ``fit`` (the base's and any override) ends here."""
        self.device_ = resolve_device(self.device)
        check_device_type(self.device_, type(self).__name__)
        generator = make_generator(self.random_state)
        # training needs autograd whatever the caller's mode: a fit called under
        # torch.no_grad() or torch.inference_mode() would fail in its first backward
        # (both thread-local). The networks are built in float32 by explicit dtypes
        # (causalnn.nets.members.fit_dtype), not by switching torch's default dtype:
        # that setting is process-wide, and switching it changed what the caller's
        # other threads computed for the whole fit
        with deferred_default_init(), \
                torch.inference_mode(False), torch.enable_grad():
            self._fit(X, y, treatment, generator)

    def _forget_fit(self):
        """Remove every fitted attribute (public names ending in ``_``)."""
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, name)

    def _resolve_outcome(self, y):
        binary_values = np.all(np.isin(np.unique(y), (0.0, 1.0)))
        if self.outcome == "binary":
            if not binary_values:
                raise ValueError(
                    "outcome='binary' needs y in {0, 1}; got values "
                    f"{np.unique(y)[:10].tolist()}.")
            return "binary"
        if self.outcome == "auto" and binary_values and len(np.unique(y)) == 2:
            return "binary"
        return "continuous"

    def _train(self, module, data, generator, *, stratify, loss_fn=None, n_members=None,
               bootstrap=False, member_data=None, stage=None):
        """Run the shared engine; record ``history_``, ``best_epoch_`` and ``n_iter_``.

        ``loss_fn(module, batch) -> dict`` defaults to ``self._compute_loss``; estimators
        trained in stages pass each stage's loss. ``n_members``, ``bootstrap`` and
        ``member_data`` train a member module (see :mod:`causalnn.engine.trainer`);
        ``best_epoch_`` is then one epoch per member. ``stage`` names the training run
        in warnings beside the estimator (estimators trained in stages).
        """
        # float32 arrays (the scaled features) are shared, not copied
        tensors = {k: to_tensor(v, torch.float32) for k, v in data.items()}
        trainer = Trainer(
            loss_fn=self._compute_loss if loss_fn is None else loss_fn,
            optimizer=self.optimizer,
            learning_rate=self.learning_rate, weight_decay=self.weight_decay,
            batch_size=self.batch_size, max_epochs=self.max_epochs,
            validation_fraction=self.validation_fraction, patience=self.patience,
            device=self.device_, generator=generator, verbose=self.verbose,
            weight_decay_filter=self._weight_decay_filter(),
            n_members=n_members, bootstrap=bootstrap,
            member_validation=getattr(self, "member_validation", "shared"),
            precision=getattr(self, "precision", "float32"),
            compile=getattr(self, "compile", False),
            compact_members=self._compact_members,
            callbacks=self._training_callbacks(),
            row_weights=self._needs_row_weights,
            name=type(self).__name__ + (f", {stage}" if stage else ""))
        member_data = {k: to_tensor(v, torch.float32)
                       for k, v in (member_data or {}).items()}
        self.history_ = trainer.fit(module, tensors, stratify=stratify,
                                    member_data=member_data)
        self.best_epoch_ = trainer.early_stopping.best_epoch
        self.n_iter_ = len(self.history_)
        return module

    #: Whether members that have stopped may leave the batched computation
    #: (``Trainer(compact_members=True)``): only where the loss draws no random numbers
    #: shaped by the member count, so that the members still training compute exactly
    #: what they would have.
    _compact_members = False

    #: Whether a training callback reads the trainer's ``train_row_weight`` /
    #: ``valid_row_weight`` (two ``(n_members, n)`` matrices, kept only when needed).
    _needs_row_weights = False

    def _training_callbacks(self):
        """Engine callbacks of every training run of this estimator (none by default)."""
        return ()

    def _train_members(self, module, data, generator, *, stratify):
        """Train a member module with the estimator's ``n_members_`` and ``bootstrap``:
        the ensemble fit. The hook that ``ate_inference``'s cross-fitting (and
        ``fit_many``) override; they call this one for a plain fit."""
        return self._train(module, data, generator, stratify=stratify,
                           n_members=self.n_members_,
                           bootstrap=getattr(self, "bootstrap", False))

    def _weight_decay_filter(self):
        """``weight_decay_scope="heads"``: decay only the weight matrices of the outcome
        heads (``net.heads``), as Shalit et al. (2017) and Shi et al. (2019) do; else
        ``None``, the engine's rule (every weight matrix)."""
        if getattr(self, "weight_decay_scope", "all") != "heads":
            return None
        return _is_outcome_head_weight

    # ---- prediction -----------------------------------------------------------------
    def _validate_X(self, X):
        check_is_fitted(self, "n_features_in_")
        X = as_pandas_frame(X)
        if (self.treatment_col is not None and hasattr(X, "columns")
                and self.treatment_col in X.columns):
            X = X.drop(columns=[self.treatment_col])
        X, _ = check_features(X, name="X", keep_float32=True,
                              n_features=self.n_features_in_,
                              feature_names=getattr(self, "feature_names_in_", None),
                              owner=type(self).__name__)
        return self._scale_features(X)

    # ---- feature scaling ------------------------------------------------------------
    #: Estimators expose ``scale_features`` in ``__init__`` to let users turn it off; one
    #: that does not still scales (the class default).
    scale_features = True
    #: the dtype ``_scale_features`` returns: float64, unless the networks take the
    #: scaled features as they are (RepresentationEstimator: float32)
    _scaled_features_dtype = np.float64

    def _fit_feature_scaling(self, X):
        """Standardise the non-binary columns of ``X`` (``X_offset_``, ``X_scale_``).

        The networks' small-weight initialisation assumes unit-scale inputs, while users
        pass raw columns (ages, incomes in dollars). 0/1 columns are left as they are:
        standardising them too nearly doubled TARNet's out-of-sample sqrt(PEHE) on IHDP
        (issue 12). Effects are unaffected in meaning: only the network's input changes.
        """
        if not self.scale_features:
            self.X_offset_ = np.zeros(X.shape[1])
            self.X_scale_ = np.ones(X.shape[1])
            return self._scale_features(X)  # the same float32 range check as predict's
        binary = all_rows(X, lambda block: (block == 0) | (block == 1))
        offset, scale = column_scaling(X, name="X")
        # 0/1 columns pass through; a constant column is centred on its value (scale 1)
        self.X_offset_ = np.where(binary, 0.0, offset)
        self.X_scale_ = np.where(binary, 1.0, scale)
        return self._scale_features(X)

    def _scale_features(self, X):
        offset = getattr(self, "X_offset_", None)
        if offset is None:
            return X
        return apply_scaling(X, offset, self.X_scale_, dtype=self._scaled_features_dtype)

    def _to_outcome_scale(self, eta, offset=0.0):
        """Linear predictor (training scale) to the units of ``y``, in float64, less
        ``offset`` (continuous outcomes): with an ``offset`` near ``y_mean_`` the
        difference of two such predictions keeps the digits a large outcome offset
        would round away."""
        # one float64 array, computed in place (the same operations in the same order)
        mu = np.array(eta, dtype=np.float64)
        if self.outcome_type_ == "binary":
            np.negative(mu, out=mu)
            np.exp(mu, out=mu)
            mu += 1.0
            return np.divide(1.0, mu, out=mu)
        mu *= self.y_scale_
        mu += self.y_mean_ - offset
        return mu

    def _effect_from_eta(self, eta0, eta1):
        """``mu(T1) - mu(T0)`` in the units of ``y``, in float64. For a continuous
        outcome ``y_scale * (eta1 - eta0)``: the mean ``y_mean`` is never added, so a
        large outcome offset cannot round the effect away."""
        if self.outcome_type_ == "binary":
            tau = self._to_outcome_scale(eta1)
            tau -= self._to_outcome_scale(eta0)
            return tau
        # in one float64 array: float32 predictions are widened exactly, element by
        # element, instead of as two float64 copies and their difference
        tau = np.array(eta1, dtype=np.float64)
        np.subtract(tau, eta0, out=tau, dtype=np.float64)
        tau *= self.y_scale_
        return tau

    def _check_level_index(self, level, X, name):
        """Refuse a pandas level of one value per row whose index is not ``X``'s."""
        check_same_index(level, X, name)

    def _levels(self, value, name, n):
        levels = check_scalar_or_vector(value, name=name, n_samples=n)
        self._check_treatment_levels(levels, name)
        return levels

    def predict_outcome(self, X, treatment=None):
        """Predicted potential outcome ``mu_t(x) = E[Y(t) | x]``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        treatment : scalar or array-like of shape (n_samples,), default=None
            Treatment level per row; may come from ``treatment_col``.

        Returns
        -------
        mu : ndarray of shape (n_samples,)
            In the units of ``y`` (a probability for a binary outcome).
        """
        check_is_fitted(self, "n_features_in_")
        X = as_pandas_frame(X)
        X, treatment = split_treatment_column(X, treatment, self.treatment_col,
                                              call="predict_outcome(X, treatment=t)")
        self._check_level_index(treatment, X, "treatment")
        X = self._validate_X(X)
        t = self._levels(as_pandas_frame(treatment), "treatment", X.shape[0])
        # an ensemble's outcome is its members' mean on the outcome scale
        mu = self._to_outcome_scale(self._predict_outcome(X, t)[0])
        return mu.mean(axis=0) if mu.ndim == 2 else mu

    def effect(self, X, T0=0, T1=1, *, members=False):
        """Conditional average treatment effect ``E[Y(T1) - Y(T0) | x]``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        T0, T1 : scalar or array-like of shape (n_samples,), default=0 and 1
            Base and target treatment levels.
        members : bool, default=False
            Return each ensemble member's effects instead of their mean (an estimator
            without members has one).

        Returns
        -------
        tau : ndarray of shape (n_samples,), or (n_members, n_samples) with ``members``
            Effects in the units of ``y`` (probability scale for a binary outcome).
        """
        X = as_pandas_frame(X)  # once, for the index checks and the features
        for level, name in ((T0, "T0"), (T1, "T1")):
            self._check_level_index(level, X, name)
        X = self._validate_X(X)
        n = X.shape[0]
        # another library's frame of levels (a vector treatment) is matched by name
        t0, t1 = (self._levels(as_pandas_frame(T), name, n)
                  for T, name in ((T0, "T0"), (T1, "T1")))
        eta0, eta1 = self._predict_outcome(X, t0, t1)
        tau = np.atleast_2d(self._effect_from_eta(eta0, eta1))
        return tau if members else tau.mean(axis=0)

    def predict(self, X):
        """The CATE ``effect(X)``: what a Pipeline's ``predict`` yields.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)

        Returns
        -------
        tau : ndarray of shape (n_samples,)
        """
        return self.effect(X)

    def ate(self, X, T0=0, T1=1):
        """Average treatment effect over the rows of ``X``: the mean of ``effect``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        T0, T1 : scalar or array-like of shape (n_samples,), default=0 and 1
            Base and target treatment levels, as in :meth:`effect`.

        Returns
        -------
        ate : float
        """
        return float(np.mean(self.effect(X, T0=T0, T1=T1)))

    def score(self, X, y, treatment=None, sample_weight=None):
        """R^2 of the predicted factual outcome ``mu_{t_i}(x_i)`` against ``y``.

        Higher is better. Observed outcomes are all a model can be scored on without
        knowing the true effects (see :mod:`causalnn.metrics` for PEHE on simulations).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        treatment : array-like of shape (n_samples,), default=None
            Required unless ``treatment_col`` is set.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        score : float
        """
        X = as_pandas_frame(X)
        check_same_rows([(y, "y"), (treatment, "treatment"),
                         (sample_weight, "sample_weight")], X)
        split_treatment_column(X, treatment, self.treatment_col,
                               call="score(X, y, treatment=t)")  # the error to give
        mu = self._factual_outcome(X, treatment)
        return factual_r2(y, mu, sample_weight)

    def _factual_outcome(self, X, treatment):
        """Each row's fitted outcome at its observed treatment: what ``score`` and the
        factual scorers of :mod:`causalnn.metrics` compare with ``y``. Estimators whose
        ``predict_outcome`` is not that (the Deconfounder's averages over other rows'
        substitute confounders) override it."""
        return self.predict_outcome(X, treatment)

    # ---- pickling across devices ----------------------------------------------------
    def __getstate__(self):
        # a copy: on Python >= 3.11 object.__getstate__ returns the live __dict__, and
        # writing the CPU copies into it would move the pickled estimator's own modules
        state = dict(super().__getstate__())
        # modules and tensors travel on the CPU so a GPU fit unpickles without CUDA
        for key, value in list(state.items()):
            if isinstance(value, torch.nn.Module) and any(
                    t.device.type != "cpu"
                    for t in list(value.parameters()) + list(value.buffers())):
                state[key] = copy.deepcopy(value).to("cpu")
            elif isinstance(value, torch.Tensor) and value.device.type != "cpu":
                state[key] = value.detach().cpu()
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        device = getattr(self, "device_", None)
        if device is not None:
            # the fit's GPU, if this machine has it; else the CPU
            self.device_ = loadable_device(device)
            for key, value in list(vars(self).items()):
                if isinstance(value, torch.nn.Module):
                    value.to(self.device_)
                elif isinstance(value, torch.Tensor):
                    setattr(self, key, value.to(self.device_))


class PropensityMixin:
    """Adds ``predict_propensity`` for estimators with a propensity model."""

    def predict_propensity(self, X):
        """Estimated propensity ``P(T=1 | x)``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)

        Returns
        -------
        propensity : ndarray of shape (n_samples,)
        """
        return self._predict_propensity(self._validate_X(X))
