"""Metrics and scikit-learn scorers for causal-effect estimators.

Two kinds of evaluation are provided:

- metrics that need the true effects, only available on (semi-)synthetic
  data: :func:`pehe` (root of the precision in estimating heterogeneous
  effects, Hill, 2011) and :func:`ate_error`;
- scorers usable as ``scoring=`` in :class:`~sklearn.model_selection.GridSearchCV`,
  :func:`~sklearn.model_selection.cross_validate`, ... : the *factual*
  scorers (:data:`factual_r2_scorer`, :data:`factual_mse_scorer`) only need
  observed data, :data:`pehe_scorer` needs the true effect passed as
  metadata, and :data:`causal_validation_scorer` (instrumental-variable
  estimators) needs the instruments passed as metadata.

References
----------
.. [1] J. L. Hill, "Bayesian nonparametric modeling for causal inference",
   Journal of Computational and Graphical Statistics, 20(1):217-240, 2011.
.. [2] U. Shalit, F. D. Johansson and D. Sontag, "Estimating individual
   treatment effect: generalization bounds and algorithms", ICML, 2017.
.. [3] J. Hartford, G. Lewis, K. Leyton-Brown and M. Taddy, "Deep IV: A
   flexible approach for counterfactual prediction", ICML, 2017.
"""

import copy

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.metrics import get_scorer as _sklearn_get_scorer
from sklearn.metrics import r2_score
from sklearn.utils.metadata_routing import MetadataRequest

from .._base._validation import check_same_index, check_same_rows

__all__ = [
    "pehe",
    "ate_error",
    "factual_r2_scorer",
    "factual_mse_scorer",
    "pehe_scorer",
    "causal_validation_scorer",
    "get_scorer",
    "get_scorer_names",
]


# --------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------


def _check_effect(values, name, *, allow_scalar=False):
    """Convert ``values`` to a finite float array, 1-d (or 0-d if allowed)."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`{name}` must be numeric, got {values!r}.") from exc
    if arr.ndim == 0:
        if not allow_scalar:
            raise ValueError(f"`{name}` must be a 1-d array, got a scalar.")
    elif arr.ndim != 1:
        raise ValueError(
            f"`{name}` must be 1-d, got an array of shape {arr.shape}."
        )
    elif arr.shape[0] == 0:
        raise ValueError(f"`{name}` must not be empty.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    return arr


def pehe(true_effect, estimated_effect):
    """Root of the precision in estimating heterogeneous effects (sqrt PEHE).

    .. math::

        \\sqrt{\\epsilon_{PEHE}} = \\sqrt{\\frac{1}{n} \\sum_{i=1}^n
        (\\tau(x_i) - \\hat\\tau(x_i))^2}

    Hill (2011) defines the PEHE as the mean squared error of the estimated
    conditional effects; following Shalit et al. (2017) the square root is
    returned, so the value is on the scale of the outcome.

    Parameters
    ----------
    true_effect : array-like of shape (n_samples,)
        True conditional effects, e.g. ``mu1 - mu0`` of a simulation.
    estimated_effect : array-like of shape (n_samples,)
        Estimated conditional effects, e.g. ``estimator.predict(X)``.

    Returns
    -------
    float
        ``sqrt(mean((true_effect - estimated_effect) ** 2))``; lower is
        better.

    Raises
    ------
    ValueError
        If an argument is not 1-d, not finite, empty, or if their lengths
        differ; or if both are pandas Series whose indexes differ (the rows
        are paired by position).

    References
    ----------
    .. [1] J. L. Hill, "Bayesian nonparametric modeling for causal
       inference", Journal of Computational and Graphical Statistics,
       20(1):217-240, 2011.
    .. [2] U. Shalit, F. D. Johansson and D. Sontag, "Estimating individual
       treatment effect: generalization bounds and algorithms", ICML, 2017.

    Examples
    --------
    >>> from causalnn.metrics import pehe
    >>> pehe([1.0, 2.0, 3.0], [1.0, 2.0, 6.0])
    1.7320508075688772
    """
    # rows are paired by position: two Series must list them in one order
    check_same_rows([(true_effect, "true_effect"),
                     (estimated_effect, "estimated_effect")], None)
    tau = _check_effect(true_effect, "true_effect")
    tau_hat = _check_effect(estimated_effect, "estimated_effect")
    if tau.shape[0] != tau_hat.shape[0]:
        raise ValueError(
            "`estimated_effect` must have the same length as `true_effect`, "
            f"got {tau_hat.shape[0]} and {tau.shape[0]}."
        )
    return float(np.sqrt(np.mean((tau - tau_hat) ** 2)))


def ate_error(true_effect, estimated_effect):
    """Absolute error on the average treatment effect.

    .. math::

        \\epsilon_{ATE} = \\left| \\frac{1}{n}\\sum_i \\tau(x_i)
        - \\frac{1}{m}\\sum_j \\hat\\tau(x_j) \\right|

    as reported by Shalit et al. (2017) and Shi et al. (2019).

    Parameters
    ----------
    true_effect : float or array-like of shape (n_samples,)
        True average effect, or true conditional effects (then averaged).
    estimated_effect : float or array-like of shape (n_samples,)
        Estimated average effect, or estimated conditional effects (then
        averaged).

    Returns
    -------
    float
        ``abs(mean(true_effect) - mean(estimated_effect))``; lower is better.

    Raises
    ------
    ValueError
        If an argument is not a scalar or a 1-d array, is empty or not
        finite, or if both are arrays of different lengths.

    References
    ----------
    .. [1] U. Shalit, F. D. Johansson and D. Sontag, "Estimating individual
       treatment effect: generalization bounds and algorithms", ICML, 2017.
    .. [2] C. Shi, D. M. Blei and V. Veitch, "Adapting neural networks for the
       estimation of treatment effects", NeurIPS, 2019.

    Examples
    --------
    >>> from causalnn.metrics import ate_error
    >>> ate_error([1.0, 2.0, 3.0], 2.5)
    0.5
    """
    tau = _check_effect(true_effect, "true_effect", allow_scalar=True)
    tau_hat = _check_effect(estimated_effect, "estimated_effect", allow_scalar=True)
    if tau.ndim == 1 and tau_hat.ndim == 1 and tau.shape[0] != tau_hat.shape[0]:
        raise ValueError(
            "`estimated_effect` must have the same length as `true_effect`, "
            f"got {tau_hat.shape[0]} and {tau.shape[0]}."
        )
    return float(abs(np.mean(tau) - np.mean(tau_hat)))


def _mean_squared_error(y_true, y_pred):
    return float(np.mean((y_true - y_pred) ** 2))


def _factual_prediction(estimator, X, treatment, owner):
    """The factual prediction the estimator's own ``score`` compares with ``y``.

    causalnn's estimators provide it as ``_factual_outcome(X, treatment)`` (for most,
    ``predict_outcome(X, treatment)``; the Deconfounder's ``predict_outcome`` is the
    interventional mean, ``f`` averaged over neighbouring rows' substitute
    confounders, while its ``score`` uses each unit's own); another estimator is asked
    for ``predict_outcome``.
    """
    factual = getattr(estimator, "_factual_outcome", None)
    if factual is None:
        if not hasattr(estimator, "predict_outcome"):
            raise TypeError(
                f"{owner} needs an estimator with a `predict_outcome` method, "
                f"got {type(estimator).__name__}."
            )
        factual = estimator.predict_outcome
    return np.asarray(factual(X, treatment), dtype=np.float64)


# --------------------------------------------------------------------------
# Scorers
# --------------------------------------------------------------------------


class _CausalScorer:
    """Base of the causal scorers: a callable with metadata routing.

    Scikit-learn routes metadata (``treatment``, ``true_effect``) to a scorer
    when ``sklearn.set_config(enable_metadata_routing=True)`` is set and the
    scorer's :meth:`get_metadata_routing` requests it (SLEP006).

    Parameters
    ----------
    name : str
        Registry name (see :func:`get_scorer`).
    score_func : callable
        ``score_func(y_true, y_pred) -> float``.
    sign : {1, -1}
        Multiplies the score so that higher is better.
    """

    # metadata this scorer can consume -> default request
    _metadata = {}

    def __init__(self, name, score_func, sign):
        self.name = name
        self._score_func = score_func
        self._sign = sign
        self._request_aliases = dict(self._metadata)

    def __repr__(self):
        return f"causalnn.metrics.get_scorer({self.name!r})"

    def get_metadata_routing(self):
        """Metadata requested by the scorer (its ``score`` method).

        Returns
        -------
        routing : :class:`~sklearn.utils.metadata_routing.MetadataRequest`
            The requests, under ``routing.score``.
        """
        request = MetadataRequest(owner=repr(self))
        for param, alias in self._request_aliases.items():
            request.score.add_request(param=param, alias=alias)
        return request

    def set_score_request(self, **kwargs):
        """Change which metadata the scorer requests (in place).

        Parameters
        ----------
        **kwargs : {True, False, None, str}
            ``param=alias`` as for scikit-learn consumers: ``True`` to
            request, ``False`` not to, ``None`` to raise if given, or a str to
            receive the metadata passed under that name.

        Returns
        -------
        self : object
            The scorer. Module-level scorers are shared: use
            :func:`get_scorer` for a private copy before changing them.
        """
        for param, alias in kwargs.items():
            if param not in self._metadata:
                raise ValueError(
                    f"{self!r} does not consume {param!r}; it can consume "
                    f"{sorted(self._metadata)}."
                )
            # validates the alias the same way scikit-learn does
            MetadataRequest(owner=repr(self)).score.add_request(
                param=param, alias=alias
            )
        self._request_aliases.update(kwargs)
        return self

    def _accept_sample_weight(self):
        # Queried by scikit-learn's search estimators and multimetric scorers
        # when ``sample_weight`` is given without metadata routing.
        return False

    def _rows_and_last_step(self, estimator, X, y_true, metadata, name,
                            column_param, what, example):
        """Check the metadata and return ``(estimator, X, metadata[name])``.

        The rows of ``y_true`` and of the metadata ``name`` are checked against
        ``X``'s before a Pipeline's transformers drop its index. Then the
        wrappers are unwrapped, outermost first, as far as they go: a fitted
        search (``GridSearchCV``, ``RandomizedSearchCV``, ...; nested
        cross-validation scores it) is replaced by its refitted
        ``best_estimator_``, a Pipeline by its last step and ``X`` by its
        transform (neither has ``predict_outcome`` or
        ``causal_validation_loss``). Without the metadata, the estimator must
        read it from its ``column_param``.
        """
        self._check_metadata(metadata)
        value = metadata.get(name)
        check_same_rows([(y_true, "y_true"), (value, name)], X, value, name)
        while True:
            if isinstance(estimator, Pipeline):
                X = estimator[:-1].transform(X)
                estimator = estimator[-1]
            elif hasattr(estimator, "best_estimator_"):
                # a search's own predict and score go to best_estimator_ too
                estimator = estimator.best_estimator_
            elif hasattr(estimator, "best_params_"):
                raise TypeError(
                    f"{self!r} cannot score a {type(estimator).__name__} fitted "
                    "with refit=False: it has no best_estimator_. Fit the search "
                    "with refit=True, or score a model fitted with its "
                    "best_params_.")
            else:
                break
        if value is None and getattr(estimator, column_param, None) is None:
            raise ValueError(
                f"{self!r} needs {what}: set `{column_param}` on the estimator, "
                "or enable metadata routing "
                "(sklearn.set_config(enable_metadata_routing=True)) and pass "
                f"`{name}` as metadata, e.g. cross_validate(..., params={example})."
            )
        return estimator, X, value

    def _check_metadata(self, metadata):
        unexpected = set(metadata) - set(self._metadata)
        if unexpected:
            raise TypeError(
                f"{self!r} got unexpected metadata {sorted(unexpected)}; it "
                f"accepts {sorted(self._metadata)}."
            )


class _FactualScorer(_CausalScorer):
    """Scores predicted factual outcomes ``mu_t(x)`` against observed ``y``."""

    _metadata = {"treatment": True}

    def __call__(self, estimator, X, y_true, **metadata):
        """Score the estimator's factual predictions on ``(X, y_true)``.

        The prediction is the one the estimator's own ``score`` uses: each
        unit's fitted outcome at its observed treatment,
        ``predict_outcome(X, treatment)``, or for the Deconfounder the outcome
        model at each unit's observed causes and own substitute confounder.

        Parameters
        ----------
        estimator : object
            Fitted estimator with ``predict_outcome(X, treatment)``, a
            Pipeline ending in one, or a fitted search (e.g. ``GridSearchCV``)
            over either, scored by its ``best_estimator_``.
        X : array-like or DataFrame of shape (n_samples, n_features)
            Covariates (holding the treatment column when the estimator has
            ``treatment_col`` set).
        y_true : array-like of shape (n_samples,)
            Observed outcomes. A pandas Series must carry ``X``'s index (that
            of a DataFrame ``treatment`` when ``X`` is not a DataFrame).
        **metadata : dict
            ``treatment``: array-like of shape (n_samples,), the observed
            treatments (the Deconfounder's: the (n_samples, n_causes) cause
            matrix). Optional when the estimator's ``treatment_col`` is set;
            routed by scikit-learn when metadata routing is enabled.

        Returns
        -------
        float
            The score (higher is better).

        Raises
        ------
        ValueError
            If the treatment is missing, if a pandas ``y_true`` or
            ``treatment`` has an index other than ``X``'s, or if the lengths
            differ.
        TypeError
            If the estimator has no ``predict_outcome``, or is a search
            fitted with ``refit=False``.
        """
        estimator, X, treatment = self._rows_and_last_step(
            estimator, X, y_true, metadata, "treatment", "treatment_col",
            "the observed treatment", "{'treatment': t}"
        )
        y_pred = _factual_prediction(estimator, X, treatment, repr(self))
        y_true = np.asarray(y_true, dtype=np.float64).reshape(-1)
        y_pred = y_pred.reshape(-1)
        if y_pred.shape != y_true.shape:
            raise ValueError(
                f"{self!r}: `predict_outcome` returned {y_pred.shape[0]} values "
                f"for {y_true.shape[0]} outcomes."
            )
        return self._sign * float(self._score_func(y_true, y_pred))


class _PEHEScorer(_CausalScorer):
    """Scores predicted effects against known true effects (negated sqrt PEHE)."""

    _metadata = {"true_effect": True}

    def __call__(self, estimator, X, y_true=None, **metadata):
        """Negated root PEHE of ``estimator.predict(X)``.

        Parameters
        ----------
        estimator : object
            Fitted estimator whose ``predict(X)`` returns conditional effects.
        X : array-like or DataFrame of shape (n_samples, n_features)
            Covariates.
        y_true : array-like of shape (n_samples,), default=None
            Ignored (observed outcomes), present for API compatibility.
        **metadata : dict
            ``true_effect``: array-like of shape (n_samples,), the true
            conditional effects; required; a pandas Series must carry
            ``X``'s index. Routed by scikit-learn when metadata routing is
            enabled.

        Returns
        -------
        float
            ``-pehe(true_effect, estimator.predict(X))``.

        Raises
        ------
        ValueError
            If ``true_effect`` is missing, or is a pandas Series whose index
            is not ``X``'s.
        """
        self._check_metadata(metadata)
        true_effect = metadata.get("true_effect")
        if true_effect is None:
            raise ValueError(
                f"{self!r} needs the true effects: enable metadata routing "
                "(sklearn.set_config(enable_metadata_routing=True)) and pass "
                "`true_effect` as metadata, e.g. "
                "cross_validate(..., params={'true_effect': tau})."
            )
        check_same_index(true_effect, X, "true_effect")
        tau_hat = np.asarray(estimator.predict(X), dtype=np.float64)
        if tau_hat.ndim == 2 and tau_hat.shape[1] == 1:
            tau_hat = tau_hat[:, 0]
        return self._sign * self._score_func(true_effect, tau_hat)


def _causal_validation_loss(estimator, X, y_true, instrument):
    """The estimator's own ``causal_validation_loss(X, y, instrument)``."""
    method = getattr(estimator, "causal_validation_loss", None)
    if method is None:
        raise TypeError(
            "causal_validation_scorer needs an instrumental-variable estimator "
            "with a `causal_validation_loss` method (e.g. DeepIV), got "
            f"{type(estimator).__name__}."
        )
    return method(X, y_true, instrument)


class _CausalValidationScorer(_CausalScorer):
    """Scores an IV estimator by its held-out causal validation loss, negated.

    ``score_func(estimator, X, y_true, instrument)`` returns the loss.
    """

    _metadata = {"instrument": True}

    def __repr__(self):
        return "causalnn.metrics.causal_validation_scorer"

    def __call__(self, estimator, X, y_true, **metadata):
        """Negated ``estimator.causal_validation_loss(X, y_true, instrument)``.

        Parameters
        ----------
        estimator : object
            Fitted estimator with ``causal_validation_loss(X, y, instrument)``
            (e.g. :class:`~causalnn.DeepIV`), a Pipeline ending in one, or a
            fitted search over either, scored by its ``best_estimator_``.
        X : array-like or DataFrame of shape (n_samples, n_features)
            Covariates (holding the instruments when the estimator has
            ``instrument_cols`` set).
        y_true : array-like of shape (n_samples,)
            Observed outcomes. A pandas Series must carry ``X``'s index.
        **metadata : dict
            ``instrument``: array-like of shape (n_samples,) or
            (n_samples, q), the instruments of these rows. Optional when the
            estimator's ``instrument_cols`` is set; routed by scikit-learn
            when metadata routing is enabled.

        Returns
        -------
        float
            ``-causal_validation_loss`` (higher is better), in squared units
            of ``y``.

        Raises
        ------
        ValueError
            If the instruments are missing, if a pandas ``y_true`` or
            ``instrument`` has an index other than ``X``'s, or if the lengths
            differ.
        TypeError
            If the estimator has no ``causal_validation_loss``, or is a
            search fitted with ``refit=False``.
        """
        estimator, X, instrument = self._rows_and_last_step(
            estimator, X, y_true, metadata, "instrument", "instrument_cols",
            "the instruments", "{'treatment': t, 'instrument': z}"
        )
        return self._sign * float(self._score_func(estimator, X, y_true, instrument))


factual_r2_scorer = _FactualScorer("factual_r2", r2_score, 1)
factual_r2_scorer.__doc__ = """R^2 of the predicted factual outcomes (higher is better).

Computes ``r2_score(y, y_hat)``, the estimator's default ``score``, with
``y_hat`` the factual prediction that ``score`` uses:
``estimator.predict_outcome(X, treatment)``, or for the Deconfounder each
unit's outcome at its observed causes and its own substitute confounder
(``predict_outcome(X, A, observed_causes=A)``). The
treatment is taken from the ``treatment`` metadata (requested by default;
routed by scikit-learn when metadata routing is enabled) or, when it is not
given, read by the estimator from its ``treatment_col``. Pandas ``y`` or
``treatment`` must carry ``X``'s index.
"""

factual_mse_scorer = _FactualScorer("neg_factual_mse", _mean_squared_error, -1)
factual_mse_scorer.__doc__ = """Negated MSE of the predicted factual outcomes (higher is better).

Computes ``-mean((y - y_hat) ** 2)``, with the factual prediction ``y_hat``
and the treatment obtained as for :data:`factual_r2_scorer`.
"""

pehe_scorer = _PEHEScorer("neg_pehe", pehe, -1)
pehe_scorer.__doc__ = """Negated root PEHE of the predicted effects (higher is better).

Computes ``-pehe(true_effect, estimator.predict(X))``; ``true_effect`` is
metadata (requested by default), e.g. with metadata routing enabled::

    cross_validate(est, X, y, scoring=pehe_scorer,
                   params={"treatment": t, "true_effect": tau})
"""

causal_validation_scorer = _CausalValidationScorer(
    "neg_causal_validation_loss", _causal_validation_loss, -1
)
causal_validation_scorer.__doc__ = """Negated causal validation loss of an IV estimator (higher is better).

Computes ``-estimator.causal_validation_loss(X, y, instrument)``: Hartford et
al.'s (2017, Sec. 3) held-out second-stage loss
``mean_i (y_i - E_{t ~ F(.|x_i, z_i)} h(t, x_i))^2``, which uses observed data
only and, unlike the factual R^2 of ``score``, is minimised by the structural
function rather than by the confounded regression ``E[y | t, x]``. The
instruments of the scored rows are metadata (``instrument``, requested by
default) or, when not given, read from the estimator's ``instrument_cols``.
With metadata routing enabled::

    GridSearchCV(DeepIV(), grid, scoring=causal_validation_scorer).fit(
        X, y, treatment=t, instrument=z)

For a private copy to change with ``set_score_request``, use
``copy.deepcopy(causal_validation_scorer)``.
"""

_SCORERS = {
    scorer.name: scorer
    for scorer in (factual_r2_scorer, factual_mse_scorer, pehe_scorer,
                   causal_validation_scorer)
}


def get_scorer_names():
    """Names of the causal scorers available through :func:`get_scorer`.

    Returns
    -------
    list of str
        ``["factual_r2", "neg_causal_validation_loss", "neg_factual_mse",
        "neg_pehe"]``.
    """
    return sorted(_SCORERS)


def get_scorer(scoring):
    """Get a scorer from its name.

    Parameters
    ----------
    scoring : str or callable
        One of ``"factual_r2"``, ``"neg_factual_mse"``, ``"neg_pehe"``,
        ``"neg_causal_validation_loss"`` (instrumental-variable estimators), or
        any name known to :func:`sklearn.metrics.get_scorer` (scored on
        ``estimator.predict``, i.e. the effects). A callable is returned
        unchanged.

    Returns
    -------
    scorer : callable
        A fresh copy of the scorer, safe to modify with
        ``set_score_request``.

    Raises
    ------
    ValueError
        If ``scoring`` is an unknown name.

    Examples
    --------
    >>> from causalnn.metrics import get_scorer
    >>> get_scorer("neg_pehe")
    causalnn.metrics.get_scorer('neg_pehe')
    """
    if isinstance(scoring, str):
        if scoring in _SCORERS:
            return copy.deepcopy(_SCORERS[scoring])
        try:
            return _sklearn_get_scorer(scoring)
        except ValueError:
            raise ValueError(
                f"{scoring!r} is not a valid scorer name: use one of "
                f"{get_scorer_names()} or a name of "
                "sklearn.metrics.get_scorer_names()."
            ) from None
    if callable(scoring):
        return scoring
    raise ValueError(
        f"`scoring` must be a str or a callable, got {type(scoring).__name__}."
    )
