"""The deconfounder: effects of many causes adjusted for a substitute confounder.

Wang & Blei (2019), "The Blessings of Multiple Causes", JASA 114(528):1574-1596.

Model:  a factor model ``p(z) prod_j p(a_j | z)`` of the m causes (PPCA, Bernoulli or
        Poisson matrix factorisation, or a VAE), checked by the held-out predictive
        check; then an outcome model ``E[Y | a, z_hat, x]`` with the substitute
        confounder ``z_hat = E[Z | a]``.
Effect: ``E[Y | do(A = t)] = E_{z_hat, x}[ f(t, z_hat, x) ]``: intervene on the causes
        and average over the empirical joint distribution of the substitute confounder
        and the covariates; per cause, ``E[Y | do(A_j = 1)] - E[Y | do(A_j = 0)]`` with
        the other causes as observed. Per row, ``E[Y | do(A = t), x]`` averages ``f``
        over ``z_hat`` given ``x`` (the row's own ``z_hat`` when its causes are known).
"""
import numbers

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.utils.validation import check_is_fitted

from ..._base import BaseCausalEstimator, Interval, LayerWidths, Options, validate_params
from ..._base._estimator import factual_r2
from ..._base._scaling import apply_scaling, column_scaling, standardize_outcome
from ..._base._validation import (check_cause_matrix, check_features, check_same_rows,
                                  check_vector)
from ..._warnings import warn_at_caller
from ...engine import predict_in_batches, spawn_generator
from ...nets import MLP, init_weights
from ...nets.mlp import ACTIVATIONS
from ._factor_models import extreme_fraction, fit_factor_model, predictive_check

__all__ = ["Deconfounder", "PredictiveCheckWarning"]

FACTOR_MODELS = ("auto", "ppca", "bernoulli", "poisson", "deep")
# ridge penalties searched by leave-one-out (generalised) cross-validation
_ALPHAS = np.logspace(-3, 3, 13)
# rows of (z_hat, x) over which interventions are averaged
_N_REFERENCE = 500
# reference rows whose z_hat are averaged over in a per-row effect without covariates
_N_REFERENCE_EFFECT = 100
# reference rows nearest in x whose z_hat stand for p(z_hat | x) with covariates: 50 of
# 500 (a 10% window) missed 3% of E[z_hat x] in the audit's check, 100 missed 11%
_N_NEIGHBOURS = 50
# query rows per block of covariate distances (bounds memory at _CHUNK * _N_REFERENCE)
_CHUNK = 2048
# named in the error for an input the neural outcome model cannot take
_OUTCOME_INPUTS = "the outcome model's inputs (causes, substitute confounder, X)"


class PredictiveCheckWarning(UserWarning):
    """The factor model failed the held-out predictive check."""


def _design(*blocks):
    return np.hstack([b for b in blocks if b is not None and b.shape[1]])


def _one_row_for_all(levels):
    """Whether ``levels`` is one cause vector broadcast to every row (``_levels``)."""
    return levels.shape[0] <= 1 or levels.strides[0] == 0


class Deconfounder(BaseCausalEstimator):
    """Effects of many causes, adjusting for a substitute confounder (Wang & Blei 2019).

    ``fit(X, y, treatment=A)`` takes the causes as an ``(n_samples, n_causes)`` matrix
    ``A`` (binary, counts or real) and optional covariates ``X`` (``None`` for none, or
    an ``(n_samples, 0)`` array: the same fit, in a form that ``cross_validate`` and
    ``GridSearchCV`` can split). It fits a factor model to ``A``, runs the held-out
    predictive check, infers the substitute confounder ``Z_hat = E[Z | A]``, and fits
    an outcome model of ``y`` on ``A``, ``Z_hat`` and ``X``; the naive model of the
    same form without ``Z_hat`` is fitted too, so that both sets of effects can be
    compared.

    Parameters
    ----------
    factor_model : {"auto", "ppca", "bernoulli", "poisson", "deep"}, default="auto"
        Factor model of the causes: probabilistic PCA by maximum likelihood (closed
        form from scikit-learn's ``PCA``; EM for missing values in the check),
        logistic (Bernoulli) or log-linear (Poisson) matrix factorisation with
        ``N(0, I)`` priors, or a VAE (``"deep"``) whose likelihood follows the causes'
        type. ``"auto"`` picks Bernoulli for binary causes, Poisson for counts and PPCA
        otherwise.
    n_factors : int, default=5
        Dimension ``k`` of the substitute confounder; must be smaller than the number of
        causes. Choose it with the predictive check.
    outcome_model : {"linear", "neural"}, default="linear"
        ``"linear"``: ``y = a beta + z_hat gamma + x delta``; the cause coefficients
        ``coef_`` are the effects. ``"neural"``: an MLP of ``(a, z_hat, x)`` trained by
        the shared engine.
    alpha : float or "auto", default="auto"
        Ridge penalty of the linear outcome model on the cause coefficients only
        (``z_hat`` and ``x`` are not penalised): ``alpha * sum_j (s_j beta_j)^2`` with
        ``s_j`` the standard deviation of cause ``j`` in the training data, i.e. the
        penalty on the coefficients of the standardised causes, so that its meaning
        does not depend on the causes' units. ``"auto"`` picks it by leave-one-out
        cross-validation over ``10^-3 .. 10^3``. ``z_hat`` is close to a function of
        ``a``, so some cause directions are barely identified; the penalty keeps them
        from inflating.
    predictive_check : bool, default=True
        Run the held-out predictive check (a second factor-model fit).
    holdout_fraction : float, default=0.2
        Fraction of the entries of ``A`` held out by the check.
    n_replicates : int, default=100
        Replicated held-out data sets drawn by the check.
    check_threshold : float, default=0.1
        A check score below it (Wang & Blei use 0.1), or more than twice the expected
        share of units with extreme held-out p-values, raises a
        :class:`PredictiveCheckWarning`.
    check_pvalue : {"mid", "strict"}, default="mid"
        The unit p-value of the check. ``"strict"`` is Wang & Blei's
        ``P(t(a_rep) < t(a_held))``; ``"mid"`` counts ties one half (the mid-p value of
        Lancaster 1961, the standard correction for a discrete statistic). With binary
        or count causes ties are frequent, and the strict score of even the true model
        sits near 0.40 instead of 0.5; the two agree for real-valued causes.
    factor_layers : tuple of int, default=(64,)
        Hidden widths of the deep factor model's encoder and decoder.
    factor_learning_rate : float, default=0.02
        Adam step size for the matrix factorisations and the deep factor model.
    factor_max_epochs : int, default=300
        Training epochs of the factor model (full batch for matrix factorisation).
    outcome_layers : tuple of int, default=(64, 64)
        Hidden widths of the neural outcome model.
    activation : {"elu", "relu", "tanh", "selu", "gelu"}, default="elu"
    learning_rate : float, default=1e-3
        Step size for the neural outcome model.
    weight_decay : float, default=1e-4
    optimizer : {"adam", "adamw", "sgd"}, default="adam"
    batch_size : int, default=128
        Rows per step of the deep factor model and the neural outcome model.
    max_epochs : int, default=200
        Upper bound on the neural outcome model's epochs.
    patience : int or None, default=20
        Early-stopping patience of the neural outcome model.
    validation_fraction : float, default=0.2
        Held-out rows for the neural outcome model's early stopping.
    random_state : int, RandomState or None, default=None
        Seeds the factor model, the held-out mask, the replicates and the networks.
        The check, the final factor model and the outcome models draw from separate
        streams, so the check's settings (``predictive_check``, ``n_replicates``,
        ``holdout_fraction``) do not change the fitted effects. Torch's global random
        stream is left as it was.
    device : str or torch.device, default="auto"
    verbose : int, default=0

    Attributes
    ----------
    factor_model_ : object
        The fitted factor model (``transform`` gives ``E[Z | A]``).
    factor_model_kind_ : str
        The factor model used (``"auto"`` resolved).
    outcome_model_ : str
        The outcome model fitted (``outcome_model`` at fit); prediction uses it, so a
        later ``set_params(outcome_model=...)`` takes effect at the next ``fit``.
    confounder_mean_, confounder_scale_ : ndarray of shape (n_factors,)
        Mean and standard deviation of ``Z_hat`` over the training rows (scale 1 for a
        constant factor); the outcome models see
        ``(Z_hat - confounder_mean_) / confounder_scale_``.
    predictive_check_ : float or None
        The check's score: the mean over units of
        ``P(t(a_rep) < t(a_held))`` (ties counted one half with ``check_pvalue="mid"``),
        with ``t`` the expected held-out log-likelihood under the posterior of the
        factors. Near 0.5 for a good model; below 0.1 fails.
    predictive_check_extremes_ : float or None
        Share of units whose held-out p-value is below 0.05 or above 0.95 (about 0.1
        for a well-specified model; many more when factors are missing).
    predictive_check_pvalues_ : ndarray of shape (n_samples,) or None
        The per-unit p-values (NaN for units without held-out entries).
    coef_, naive_coef_ : ndarray of shape (n_causes,)
        Cause coefficients of the linear outcome model with and without ``Z_hat``
        (``outcome_model="linear"``).
    alpha_, naive_alpha_ : float
        The ridge penalties used (``outcome_model="linear"``).
    outcome_module_, naive_module_ : torch.nn.Module
        The neural outcome models with and without ``Z_hat``
        (``outcome_model="neural"``).
    n_causes_ : int
    cause_names_ : ndarray of str
        Column names of ``A`` when it was a DataFrame.
    n_features_in_ : int
        Number of covariates (0 when ``X`` is None or has no columns).
    feature_names_in_ : ndarray of str
    history_, best_epoch_, n_iter_ :
        Training record of the neural outcome model.
    device_ : torch.device

    See Also
    --------
    causalnn.datasets.make_multi_cause : simulated causes with a latent confounder.

    References
    ----------
    .. [1] Y. Wang and D. M. Blei. "The Blessings of Multiple Causes". Journal of the
       American Statistical Association, 114(528):1574-1596, 2019.
    .. [2] Y. Wang, D. Liang, L. Charlin and D. M. Blei. "Causal Inference for
       Recommender Systems". RecSys 2020 ("The Deconfounded Recommender").

    Examples
    --------
    >>> from causalnn import Deconfounder
    >>> from causalnn.datasets import make_multi_cause
    >>> data = make_multi_cause(n_samples=500, n_causes=20, n_factors=2, random_state=0)
    >>> est = Deconfounder(n_factors=2, n_replicates=20, random_state=0).fit(
    ...     None, data.y, treatment=data.treatment)
    >>> est.cause_effects().shape
    (20,)
    """

    _parameter_constraints = {
        **{k: BaseCausalEstimator._parameter_constraints[k]
           for k in ("learning_rate", "weight_decay", "optimizer", "batch_size",
                     "max_epochs", "patience", "validation_fraction", "random_state",
                     "device", "verbose")},
        "factor_model": [Options(*FACTOR_MODELS)],
        "n_factors": [Interval(numbers.Integral, 1, None)],
        "outcome_model": [Options("linear", "neural")],
        "alpha": [Options("auto"), Interval(numbers.Real, 0, None, closed="left")],
        "predictive_check": [bool],
        "holdout_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "n_replicates": [Interval(numbers.Integral, 1, None)],
        "check_threshold": [Interval(numbers.Real, 0, 1)],
        "check_pvalue": [Options("mid", "strict")],
        "factor_layers": [LayerWidths()],
        "factor_learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "factor_max_epochs": [Interval(numbers.Integral, 1, None)],
        "outcome_layers": [LayerWidths()],
        "activation": [Options(*ACTIVATIONS)],
    }

    def __init__(self, *, factor_model="auto", n_factors=5, outcome_model="linear",
                 alpha="auto", predictive_check=True, holdout_fraction=0.2,
                 n_replicates=100, check_threshold=0.1, check_pvalue="mid",
                 factor_layers=(64,), factor_learning_rate=0.02, factor_max_epochs=300,
                 outcome_layers=(64, 64), activation="elu", learning_rate=1e-3,
                 weight_decay=1e-4, optimizer="adam", batch_size=128, max_epochs=200,
                 patience=20, validation_fraction=0.2, random_state=None, device="auto",
                 verbose=0):
        self.factor_model = factor_model
        self.n_factors = n_factors
        self.outcome_model = outcome_model
        self.alpha = alpha
        self.predictive_check = predictive_check
        self.holdout_fraction = holdout_fraction
        self.n_replicates = n_replicates
        self.check_threshold = check_threshold
        self.check_pvalue = check_pvalue
        self.factor_layers = factor_layers
        self.factor_learning_rate = factor_learning_rate
        self.factor_max_epochs = factor_max_epochs
        self.outcome_layers = outcome_layers
        self.activation = activation
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # ---- fit ------------------------------------------------------------------------
    def fit(self, X, y, *, treatment=None):
        """Fit the factor model, run its check, and fit the outcome models.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or None
            Observed covariates (not causes); ``None`` when there are none, or
            equivalently ``np.empty((n_samples, 0))``, which scikit-learn's
            cross-validation tools can split by rows as they cannot split ``None``.
        y : array-like of shape (n_samples,)
            Outcomes.
        treatment : array-like or DataFrame of shape (n_samples, n_causes)
            The causes ``A``. Rows are matched by position: pandas ``y``, ``treatment``
            and ``X`` must carry the same index (else a ValueError).

        Returns
        -------
        self : object
        """
        owner = type(self).__name__
        validate_params(self.get_params(deep=False), self._parameter_constraints, owner)
        check_same_rows([(y, "y"), (treatment, "treatment")], X, treatment, "treatment")
        n_rows = None
        if X is not None:
            # an (n, 0) X: no covariates, in the form cross-validation tools can split
            X, names = check_features(X, name="X", allow_no_columns=True)
            n_rows = X.shape[0]
        y = check_vector(y, name="y", n_samples=n_rows, warn_column=True)
        A, cause_names = check_cause_matrix(treatment, n_samples=len(y), owner=owner,
                                            fit=True)
        n, m = A.shape
        if n < 3:
            raise ValueError(f"treatment has {n} rows; {owner} needs at least 3.")
        if self.n_factors >= n:
            raise ValueError(
                f"n_factors={self.n_factors} must be smaller than the number of rows of "
                f"treatment ({n}): a factor model cannot have more factors than units.")
        if self.n_factors >= m:
            raise ValueError(
                f"n_factors={self.n_factors} must be smaller than the number of causes "
                f"(treatment has {m} columns): the substitute confounder needs more "
                f"causes than factors to be estimable.")
        if X is None:
            X, names = np.empty((n, 0)), None
        # the outcome models standardise X with the designs they build; refuse columns
        # float64 cannot standardise here, where the error can name X's own columns
        column_scaling(X, name="X")
        kind, likelihood = self._resolve_factor_model(A)
        # the base's guards: a failed refit leaves the estimator unfitted (not half old,
        # half new), the device is checked, torch's global random stream is left alone
        with self._forget_fit_on_failure():
            self._forget_fit()  # inputs valid: nothing of an earlier fit survives
            self.n_causes_ = m
            self.n_features_in_ = X.shape[1]
            for attr, value in (("cause_names_", cause_names),
                                ("feature_names_in_", names)):
                if value is not None:
                    setattr(self, attr, value)
                elif hasattr(self, attr):
                    delattr(self, attr)
            self.factor_model_kind_, self._likelihood = kind, likelihood
            # prediction follows the fitted model, whatever set_params changes later
            self.outcome_model_ = self.outcome_model
            self._seeded_fit(X, y, A)
        return self

    def _fit(self, X, y, treatment, generator):
        """Factor model and its check, substitute confounder, outcome models."""
        A, n = treatment, treatment.shape[0]
        # one stream per step, spawned before any is drawn from: the check's settings
        # (on or off, n_replicates, holdout_fraction) leave the factor model, the
        # reference rows and the outcome models as they are
        check_stream, factor_stream, outcome_stream = (spawn_generator(generator)
                                                       for _ in range(3))
        self._run_predictive_check(A, check_stream)
        self.factor_model_ = self._fit_factors(A, np.ones_like(A, dtype=bool),
                                               factor_stream)
        Z = self.factor_model_.transform(A)
        self.confounder_mean_, self.confounder_scale_ = column_scaling(
            Z, name="the substitute confounder")
        Z = (Z - self.confounder_mean_) / self.confounder_scale_
        reference = torch.randperm(n, generator=outcome_stream)[:_N_REFERENCE].numpy()
        self._reference = (A[reference], Z[reference], X[reference])
        if self.outcome_model_ == "linear":
            self._fit_linear(A, Z, X, y)
        else:
            self._fit_neural(A, Z, X, y, outcome_stream)
        return self

    def _resolve_factor_model(self, A):
        binary = bool(np.all(np.isin(A, (0.0, 1.0))))
        counts = bool(np.all(A >= 0) and np.all(A == np.round(A)))
        kind = self.factor_model
        if kind == "auto":
            kind = "bernoulli" if binary else "poisson" if counts else "ppca"
        if kind == "bernoulli" and not binary:
            raise ValueError("factor_model='bernoulli' needs binary causes (0/1) in "
                             "treatment; use 'poisson' for counts or 'ppca'.")
        if kind == "poisson" and not counts:
            raise ValueError("factor_model='poisson' needs non-negative integer causes "
                             "(counts) in treatment; use 'ppca' for real-valued causes.")
        likelihood = ("gaussian" if kind == "ppca" else kind if kind != "deep"
                      else "bernoulli" if binary else "poisson" if counts else "gaussian")
        return kind, likelihood

    def _fit_factors(self, A, observed, generator):
        trainer_kwargs = dict(
            optimizer="adam", learning_rate=self.factor_learning_rate, weight_decay=0.0,
            batch_size=self.batch_size, max_epochs=self.factor_max_epochs,
            validation_fraction=0.0, patience=None, device=self.device_,
            verbose=self.verbose)
        return fit_factor_model(
            self.factor_model_kind_, self._likelihood, self.n_factors, A, observed,
            hidden=self.factor_layers, trainer_kwargs=trainer_kwargs, generator=generator,
            random_state=0)

    def _run_predictive_check(self, A, generator):
        """Wang & Blei's check: refit with entries held out, compare with replicates."""
        if not self.predictive_check:
            self.predictive_check_ = None
            self.predictive_check_extremes_ = None
            self.predictive_check_pvalues_ = None
            return
        held_out = (torch.rand(A.shape, generator=generator, dtype=torch.float64)
                    < self.holdout_fraction).numpy()
        model = self._fit_factors(A, ~held_out, generator)
        score, pvalues = predictive_check(model, A, held_out, n_replicates=self.n_replicates,
                                          generator=generator, pvalue=self.check_pvalue)
        self.predictive_check_ = score
        self.predictive_check_pvalues_ = pvalues
        self.predictive_check_extremes_ = extreme_fraction(pvalues, level=0.1)
        if score < self.check_threshold or self.predictive_check_extremes_ > 0.2:
            warn_at_caller(
                f"The {self.factor_model_kind_} factor model with n_factors="
                f"{self.n_factors} fails the held-out predictive check (score "
                f"{score:.3f}, threshold {self.check_threshold}; "
                f"{self.predictive_check_extremes_:.0%} of units with an extreme "
                f"p-value, about 10% expected). The substitute "
                f"confounder may not capture the causes' dependence: try another "
                f"n_factors or factor_model.", PredictiveCheckWarning)

    # ---- outcome models -------------------------------------------------------------
    def _fit_linear(self, A, Z, X, y):
        self.coef_, self.alpha_, self._linear = self._ridge_on_causes(A, _design(Z, X), y)
        self.naive_coef_, self.naive_alpha_, self._naive_linear = self._ridge_on_causes(
            A, X, y)

    def _ridge_on_causes(self, A, C, y):
        """``y = b0 + a beta + c gamma`` with a ridge penalty on ``beta`` only: partial
        ``c`` out of ``a`` and ``y`` (Frisch-Waugh-Lovell), ridge on the residuals,
        then least squares for ``gamma``. The penalty acts on the coefficients of the
        causes divided by their standard deviations, so that rescaling a cause rescales
        its coefficient and nothing else (a fixed grid of penalties on raw causes in
        small units would sit far below the useful range). ``c`` is standardised before
        the least squares, whose rank cut-off and round-off are relative to the largest
        column: covariates in units 1e10 apart would otherwise lose the small ones and
        change the adjustment; ``gamma`` is mapped back to the covariates' units."""
        a_mean, y_mean = A.mean(0), y.mean()
        Ac, yc = A - a_mean, y - y_mean
        a_scale = Ac.std(0)  # > 0: fit refuses constant causes
        # the residual causes are computed in place, in one array of A's size beside Ac
        # (the same operations as Ac - Cs @ coef, then / a_scale); without covariates
        # they are Ac itself, which nothing reads afterwards
        if C.shape[1]:
            c_mean, c_scale = column_scaling(C)
            Cs = (C - c_mean) / c_scale
            Ar = Cs @ np.linalg.lstsq(Cs, Ac, rcond=None)[0]
            np.subtract(Ac, Ar, out=Ar)
            yr = yc - Cs @ np.linalg.lstsq(Cs, yc, rcond=None)[0]
        else:
            c_mean, c_scale, Cs, Ar, yr = np.zeros(0), np.ones(0), C, Ac, yc
        Ar /= a_scale
        if self.alpha == "auto":
            ridge = RidgeCV(alphas=_ALPHAS, fit_intercept=False).fit(Ar, yr)
            alpha = float(ridge.alpha_)
        else:
            ridge = Ridge(alpha=self.alpha, fit_intercept=False).fit(Ar, yr)
            alpha = float(self.alpha)
        del Ar
        beta = np.asarray(ridge.coef_, dtype=np.float64) / a_scale
        gamma = (np.linalg.lstsq(Cs, yc - Ac @ beta, rcond=None)[0] / c_scale
                 if C.shape[1] else np.zeros(0))
        intercept = float(y_mean - a_mean @ beta - c_mean @ gamma)
        return beta, alpha, (intercept, gamma)

    def _fit_neural(self, A, Z, X, y, generator):
        # the offset-exact standardisation every estimator uses (y near 1e9 keeps its
        # digits; a constant y gets scale 1)
        ys, self.y_mean_, self.y_scale_ = standardize_outcome(y)
        self._input_mean, self._input_scale = {}, {}
        modules = {}
        # naive first, so history_ describes the deconfounded model
        for key, inputs in (("naive", _design(A, X)), ("adjusted", _design(A, Z, X))):
            # relative to each column (an absolute floor on the std would squash
            # covariates in small units), constant columns centred with scale 1
            mean, scale = column_scaling(inputs)
            self._input_mean[key], self._input_scale[key] = mean, scale
            module = init_weights(MLP(inputs.shape[1], self.outcome_layers, out_features=1,
                                      activation=self.activation), generator)
            scaled = apply_scaling(inputs, mean, scale, name=_OUTCOME_INPUTS)
            modules[key] = self._train(module, {"inputs": scaled, "y": ys},
                                       generator, stratify=None,
                                       stage=f"{key} outcome model")
        self.naive_module_, self.outcome_module_ = modules["naive"], modules["adjusted"]

    def _compute_loss(self, module, batch):
        return {"loss": (module(batch["inputs"]).squeeze(1) - batch["y"]).pow(2).mean()}

    def _outcome(self, A, Z, X, naive=False, offset=0.0):
        """The fitted ``E[Y | a, z_hat, x]`` (float64, units of y) less ``offset``: the
        difference of two outcomes taken with ``offset=y_mean_`` keeps the digits a
        large outcome offset would round away."""
        if self.outcome_model_ == "linear":
            beta, (intercept, gamma) = ((self.naive_coef_, self._naive_linear) if naive
                                        else (self.coef_, self._linear))
            return ((intercept - offset) + A @ beta
                    + _design(None if naive else Z, X) @ gamma)
        key = "naive" if naive else "adjusted"
        module = self.naive_module_ if naive else self.outcome_module_
        inputs = apply_scaling(_design(A, None if naive else Z, X), self._input_mean[key],
                               self._input_scale[key], name=_OUTCOME_INPUTS)
        out = predict_in_batches(lambda v: module(v).squeeze(1),
                                 [torch.as_tensor(inputs, dtype=torch.float32)],
                                 device=self.device_)
        return out.astype(np.float64) * self.y_scale_ + (self.y_mean_ - offset)

    # ---- substitute confounder and effects ------------------------------------------
    def _validate_causes(self, A, call="score(X, y, treatment=A)"):
        check_is_fitted(self, "n_causes_")
        return check_cause_matrix(A, n_causes=self.n_causes_, call=call,
                                  cause_names=getattr(self, "cause_names_", None),
                                  owner=type(self).__name__)[0]

    def _validate_X(self, X, n=None):
        check_is_fitted(self, "n_causes_")
        if X is None:
            if self.n_features_in_:
                raise ValueError(f"X is None but {type(self).__name__} was fitted with "
                                 f"{self.n_features_in_} covariates.")
            return None
        return check_features(X, name="X", n_features=self.n_features_in_,
                              feature_names=getattr(self, "feature_names_in_", None),
                              owner=type(self).__name__, allow_no_columns=True)[0]

    def substitute_confounder(self, A):
        """The substitute confounder ``Z_hat = E[Z | A]`` under the fitted factor model.

        Parameters
        ----------
        A : array-like or DataFrame of shape (n_samples, n_causes)

        Returns
        -------
        Z_hat : ndarray of shape (n_samples, n_factors)
        """
        # first: unfitted raises NotFittedError
        A = self._validate_causes(A, call="substitute_confounder(A)")
        return self.factor_model_.transform(A)

    def cause_effects(self, naive=False):
        """Per-cause effects ``E[Y | do(A_j = 1)] - E[Y | do(A_j = 0)]``.

        The expectation runs over the empirical joint distribution of the other causes,
        the substitute confounder and the covariates (up to 500 training rows). For the
        linear outcome model it is the coefficient ``coef_[j]``.

        Parameters
        ----------
        naive : bool, default=False
            Effects under the naive outcome model (no substitute confounder).

        Returns
        -------
        effects : ndarray of shape (n_causes,)
        """
        check_is_fitted(self, "n_causes_")
        if self.outcome_model_ == "linear":
            return (self.naive_coef_ if naive else self.coef_).copy()
        A, Z, X = self._reference
        effects = np.empty(self.n_causes_)
        for j in range(self.n_causes_):  # one cause at a time: O(r * m) memory
            on, off = A.copy(), A.copy()
            on[:, j], off[:, j] = 1.0, 0.0
            effects[j] = np.mean(self._outcome(on, Z, X, naive, self.y_mean_)
                                 - self._outcome(off, Z, X, naive, self.y_mean_))
        return effects

    def _levels(self, value, name, n):
        """Cause vectors for ``effect``: a scalar, an (n_causes,) vector or an
        (n, n_causes) matrix, broadcast to (n, n_causes). A scalar or a vector is one
        row for all: a read-only broadcast view, not n copies of it."""
        if value is None:
            raise ValueError(f"{name} is required: pass a number (every cause set to it), "
                             f"a vector of {self.n_causes_} cause levels or an "
                             f"(n_samples, {self.n_causes_}) matrix.")
        if isinstance(value, np.ndarray) and value.ndim == 0:
            value = value.item()
        if isinstance(value, (numbers.Number, np.generic)) or np.ndim(value) == 0:
            if isinstance(value, (numbers.Number, np.number, np.bool_)) and not \
                    isinstance(value, (complex, np.complexfloating)):
                if not np.isfinite(float(value)):
                    raise ValueError(f"{name} must be finite; got {value!r}.")
                # every cause set to one number: no column order to match, no names
                return np.broadcast_to(float(value), (n, self.n_causes_))
            else:
                raise TypeError(f"{name} must be a number, a vector of {self.n_causes_} "
                                f"cause levels or an (n_samples, {self.n_causes_}) "
                                f"matrix; got {value!r}.")
        if isinstance(value, pd.Series):
            value = self._align_cause_vector(value, name)
        if not hasattr(value, "columns") and np.ndim(value) == 1:
            if np.shape(value)[0] != self.n_causes_:
                raise ValueError(f"{name} has {np.shape(value)[0]} entries; expected one "
                                 f"per cause ({self.n_causes_}).")
            vector = self._cause_matrix(np.asarray(value)[None], name)
            return np.broadcast_to(vector, (n, self.n_causes_))
        levels = self._cause_matrix(value, name)
        if levels.shape[0] != n:
            raise ValueError(f"{name} has {levels.shape[0]} rows but X has {n}.")
        return levels

    def _align_cause_vector(self, vector, name):
        """A cause vector given as a Series, in the causes' order: by label when the
        causes were named at fit (a DataFrame reorders its columns the same way)."""
        names = getattr(self, "cause_names_", None)
        labels = [str(label) for label in vector.index]
        if names is None:
            if vector.index.equals(pd.RangeIndex(len(vector))):
                return vector.to_numpy()
            raise ValueError(
                f"{name} is a pandas Series with labels {labels[:5]}..., but the causes had "
                f"no names at fit (treatment was not a DataFrame), so the labels cannot "
                f"be matched; pass {name}.to_numpy() in the causes' column order.")
        unknown = [c for c in labels if c not in set(names)]
        missing = [c for c in names if c not in set(labels)]
        if unknown or missing or len(set(labels)) != len(labels):
            raise ValueError(
                f"{name} is a pandas Series whose labels differ from the cause names seen "
                f"in fit: unknown labels {unknown[:10]}, missing causes {missing[:10]}"
                f"{', duplicate labels' if len(set(labels)) != len(labels) else ''}.")
        return pd.Series(vector.to_numpy(), index=labels)[list(names)].to_numpy()

    def _cause_matrix(self, value, name):
        """Validate an (n, n_causes) matrix of cause levels named ``name``."""
        return check_features(value, name=name, n_features=self.n_causes_,
                              feature_names=getattr(self, "cause_names_", None),
                              owner=type(self).__name__)[0]

    def _n_rows(self, X, **levels):
        """Rows of the query: those of X, else of the 2-d cause matrices (which must
        agree), else 1."""
        if X is not None:
            return X.shape[0]
        rows = {name: np.shape(v)[0] for name, v in levels.items()
                if v is not None and not isinstance(v, (str, bytes)) and np.ndim(v) == 2}
        if len(set(rows.values())) > 1:
            shown = " but ".join(f"{name} has {r} rows" for name, r in rows.items())
            raise ValueError(f"{shown}: with X=None the cause matrices must have the "
                             f"same number of rows.")
        return next(iter(rows.values()), 1)

    def _check_query_rows(self, X, **frames):
        """The pandas row check for ``effect``/``predict_outcome``: every 2-d DataFrame
        argument against X (or, with X None, against the first of them)."""
        frames = {name: v for name, v in frames.items() if isinstance(v, pd.DataFrame)}
        if frames:
            reference_name = next(iter(frames))
            check_same_rows([(v, name) for name, v in frames.items()], X,
                             frames[reference_name], reference_name)

    def _standardized_confounder(self, A):
        return (self.factor_model_.transform(A) - self.confounder_mean_) / \
            self.confounder_scale_

    def _confounder_rows(self, X, causes, n):
        """Per query row, the substitute-confounder values to average ``f`` over.

        Returns ``(Z, index)``: ``Z`` (r, k) and ``index`` (n, s) rows of ``Z`` for each
        query row. With the units' observed causes, each unit's own ``z_hat = E[Z | a]``
        (s = 1). Otherwise ``p(z_hat | x)`` is represented by the ``z_hat`` of the
        reference rows nearest to ``x`` (standardised covariates; s = 50 of up to 500
        training rows), and with no covariates by the first 100 reference rows.
        """
        if causes is not None:
            return self._standardized_confounder(causes), np.arange(n)[:, None]
        _, Z, X_ref = self._reference
        if X is None or not X.shape[1]:
            s = min(_N_REFERENCE_EFFECT, len(Z))
            return Z, np.broadcast_to(np.arange(s), (n, s))
        s = min(_N_NEIGHBOURS, len(Z))
        x_mean, x_scale = column_scaling(X_ref)
        reference = (X_ref - x_mean) / x_scale
        index = np.empty((n, s), dtype=np.intp)
        for start in range(0, n, _CHUNK):
            query = (X[start:start + _CHUNK] - x_mean) / x_scale
            distance = ((query[:, None, :] - reference[None]) ** 2).sum(2)
            index[start:start + _CHUNK] = np.argsort(distance, axis=1, kind="stable")[:, :s]
        return Z, index

    def _predict_outcome(self, X, *treatments, causes=None, offset=0.0):
        """``E[Y | do(A = t), x]`` per row, less ``offset``: ``f`` averaged over the
        substitute confounder's values for that row (see ``_confounder_rows``)."""
        n = len(treatments[0])
        Z, index = self._confounder_rows(X, causes, n)
        s = index.shape[1]
        x = np.empty((n, 0)) if X is None else X
        # query rows in blocks: each row is expanded to its s confounder values, so
        # the design of all rows at once would hold n * s rows
        step = max(1, _CHUNK * 8 // s)
        out = [np.empty(n) for _ in treatments]
        for start in range(0, n, step):
            rows = slice(start, start + step)
            z = Z[index[rows].ravel()]
            xs = np.repeat(x[rows], s, 0)
            for o, t in zip(out, treatments):
                o[rows] = self._outcome(np.repeat(t[rows], s, 0), z, xs,
                                        offset=offset).reshape(-1, s).mean(1)
        return out

    def _observed_causes(self, observed_causes, n):
        if observed_causes is None:
            return None
        causes = self._cause_matrix(observed_causes, "observed_causes")
        if causes.shape[0] != n:
            raise ValueError(f"observed_causes has {causes.shape[0]} rows but X has {n}.")
        return causes

    def predict_outcome(self, X=None, treatment=None, *, observed_causes=None):
        """Interventional mean ``E[Y | do(A = treatment), x]`` per row.

        The fitted ``f(t, z_hat, x)`` is averaged over the substitute confounder given
        what is known of the row: with ``observed_causes``, the unit's own
        ``z_hat = E[Z | a]`` (so the result conditions on ``x`` and ``z_hat``);
        without, ``p(z_hat | x)`` as represented by the 50 of 500 training reference
        rows nearest in (standardised) ``x``, or the marginal of ``z_hat`` over those
        reference rows when there are no covariates. The nearest-neighbour average
        stands for ``E[Y | do(A = t), x]`` only as far as 50 neighbours resolve
        ``x``; pass ``observed_causes`` for units whose causes are known.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or None
        treatment : array-like of shape (n_samples, n_causes) or (n_causes,)
            The cause levels set by the intervention (a Series is matched to the
            causes by name).
        observed_causes : array-like of shape (n_samples, n_causes), default=None
            The units' observed causes, to condition on their substitute confounder.

        Returns
        -------
        mu : ndarray of shape (n_samples,)
        """
        check_is_fitted(self, "n_causes_")
        self._check_query_rows(X, observed_causes=observed_causes, treatment=treatment)
        X = self._validate_X(X)
        n = self._n_rows(X, observed_causes=observed_causes, treatment=treatment)
        causes = self._observed_causes(observed_causes, n)
        return self._predict_outcome(X, self._levels(treatment, "treatment", n),
                                     causes=causes)[0]

    def effect(self, X=None, T0=0, T1=1, *, observed_causes=None, members=False):
        """Effect of setting the whole cause vector to ``T1`` instead of ``T0``.

        ``E[Y | do(A = T1), x] - E[Y | do(A = T0), x]`` per row, averaged over the
        substitute confounder as in :meth:`predict_outcome`: given the unit's own
        ``z_hat`` when ``observed_causes`` are passed, else over ``p(z_hat | x)``
        estimated from the training rows nearest in ``x`` (over the marginal of
        ``z_hat`` without covariates). The mean over the training units with their
        observed causes is the joint average ``E_{z_hat, x}`` that
        :meth:`cause_effects` takes. For the linear outcome model the average cancels
        and the effect is ``(T1 - T0) @ coef_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or None
        T0, T1 : scalar, array-like of shape (n_causes,) or (n_samples, n_causes)
            Base and target cause vectors; a scalar sets every cause to it. A pandas
            Series is matched to the causes by name.
        observed_causes : array-like of shape (n_samples, n_causes), default=None
            The units' observed causes, to condition on their substitute confounder.
        members : bool, default=False
            As for the other estimators: ``True`` returns a ``(1, n_samples)`` array
            (the Deconfounder has one outcome model, so one member).

        Returns
        -------
        tau : ndarray of shape (n_samples,), or (1, n_samples) with ``members``
        """
        if members:
            return self.effect(X, T0, T1, observed_causes=observed_causes)[None, :]
        check_is_fitted(self, "n_causes_")
        self._check_query_rows(X, observed_causes=observed_causes, T0=T0, T1=T1)
        X = self._validate_X(X)
        n = self._n_rows(X, observed_causes=observed_causes, T0=T0, T1=T1)
        causes = self._observed_causes(observed_causes, n)
        t0, t1 = self._levels(T0, "T0", n), self._levels(T1, "T1", n)
        if self.outcome_model_ == "linear":  # the average over z_hat cancels
            if _one_row_for_all(t0) and _one_row_for_all(t1):  # one effect for every row
                return np.repeat((t1[:1] - t0[:1]) @ self.coef_, n)
            return (t1 - t0) @ self.coef_
        mu0, mu1 = self._predict_outcome(X, t0, t1, causes=causes, offset=self.y_mean_)
        return mu1 - mu0

    def ate(self, X=None, T0=0, T1=1, *, observed_causes=None):
        """Average effect over the rows of ``X``: the mean of :meth:`effect`.

        With the units' ``observed_causes`` it is the average over their joint
        ``(z_hat, x)``, ``E_{z_hat, x}[f(T1, z_hat, x) - f(T0, z_hat, x)]``.

        Parameters
        ----------
        X, T0, T1, observed_causes
            As in :meth:`effect`.

        Returns
        -------
        ate : float
        """
        return float(np.mean(self.effect(X, T0=T0, T1=T1,
                                         observed_causes=observed_causes)))

    def predict(self, X=None):
        """``effect(X)``: every cause on versus every cause off (what a Pipeline yields).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or None
            The covariates (``None`` when fitted without any).

        Returns
        -------
        tau : ndarray of shape (n_samples,)
        """
        return self.effect(X)

    def _factual_outcome(self, X, treatment):
        """Each unit's fitted ``E[Y | a_i, z_hat(a_i), x_i]``: the outcome model at the
        unit's observed causes and its own substitute confounder.

        This is the factual prediction that :meth:`score` and the factual scorers of
        :mod:`causalnn.metrics` compare with ``y``. :meth:`predict_outcome` without
        ``observed_causes`` is an interventional mean instead (``f`` averaged over the
        ``z_hat`` of neighbouring training rows), not the fit to the observed data.
        """
        check_is_fitted(self, "n_causes_")
        check_same_rows([(treatment, "treatment")], X, treatment, "treatment")
        X = self._validate_X(X)
        A = self._validate_causes(treatment)
        if X is not None and X.shape[0] != A.shape[0]:
            raise ValueError(f"treatment has {A.shape[0]} rows but X has {X.shape[0]}: "
                             f"the lengths must match.")
        return self._outcome(A, self._standardized_confounder(A), X)

    def score(self, X, y, treatment=None, sample_weight=None):
        """R^2 of the fitted ``E[Y | a, z_hat(a), x]`` against ``y``.

        Each unit is predicted at its observed causes ``treatment`` and its own
        substitute confounder ``z_hat(a)``; ``causalnn.metrics.factual_r2_scorer``
        gives the same value.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or None
        y : array-like of shape (n_samples,)
        treatment : array-like or DataFrame of shape (n_samples, n_causes)
            The units' observed causes.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        score : float
        """
        check_is_fitted(self, "n_causes_")
        check_same_rows([(y, "y"), (treatment, "treatment"),
                         (sample_weight, "sample_weight")], X, treatment, "treatment")
        return factual_r2(y, self._factual_outcome(X, treatment), sample_weight)
