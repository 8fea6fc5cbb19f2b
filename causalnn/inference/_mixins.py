"""Mixins that give the binary-treatment estimators inference on average effects.

:class:`AverageEffectInferenceMixin` adds ``ate_inference`` (AIPW, TMLE or plug-in
ATE/ATT/ATC with cross-fitted nuisances) and ``overlap_summary``;
:class:`IntervalMixin` adds ``effect_interval`` and ``ate_interval`` from the members of
an ensemble (bootstrap members with ``bootstrap=True``): a normal interval corrected
for few members (default) or a percentile one.
"""
import numbers

import numpy as np
from scipy import stats
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import RepeatedStratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .._base._validation import (_is_frame, check_binary, check_features,
                                 check_same_index, check_same_rows, check_vector,
                                 require_treatment,
                                 split_treatment_column)
from .._warnings import warn_at_caller
from ..exceptions import NotFittedError
from ._average import (METHODS, TARGETS, _check_alpha, aggregate_repeats,
                       check_clip_and_trim, estimate_average_effect)
from ._overlap import OVERLAP_BOUNDS, check_overlap, overlap_summary

__all__ = ["AverageEffectInferenceMixin", "IntervalMixin"]


INTERVAL_METHODS = ("normal", "percentile")


def check_interval_options(alpha, method):
    """Refuse a bad ``alpha`` or ``method`` of the member intervals, naming it."""
    _check_alpha(alpha)
    if not (isinstance(method, str) and method in INTERVAL_METHODS):
        raise ValueError(f"method must be one of {INTERVAL_METHODS}; got {method!r}.")


def member_interval(members, *, alpha, method):
    """Two-sided ``1 - alpha`` interval from ensemble members' estimates.

    Parameters
    ----------
    members : array-like of shape (n_members,) or (n_members, n_samples)
        One estimate per member (along the first axis): average effects, or each
        row's effect.
    alpha : float in (0, 1)
    method : {"normal", "percentile"}
        See :meth:`IntervalMixin.effect_interval`.

    Returns
    -------
    lower, upper : ndarray of shape ``members.shape[1:]``

    Warns
    -----
    UserWarning
        ``method="percentile"`` with ``(n_members + 1) * alpha / 2 < 1``: the
        interval then lies inside the members' range and cannot reach ``1 - alpha``.
    """
    check_interval_options(alpha, method)
    members = np.asarray(members, dtype=np.float64)
    if members.ndim not in (1, 2) or members.shape[0] < 2:
        raise ValueError(f"members must have shape (n_members,) or (n_members, "
                         f"n_samples) with n_members >= 2; got shape {members.shape}.")
    if not np.all(np.isfinite(members)):
        raise ValueError("members must be finite; got NaN or inf.")
    n_members = members.shape[0]
    if method == "normal":
        # the ensemble's estimate is the members' mean, itself one more draw around the
        # full-data estimate: the spread of (mean - truth) is sd * sqrt(1 + 1/B); sd
        # estimated from B members, hence Student's t with B - 1 degrees of freedom
        centre = members.mean(axis=0)
        half_width = (stats.t.ppf(1 - alpha / 2, n_members - 1)
                      * members.std(axis=0, ddof=1) * np.sqrt(1 + 1 / n_members))
        return centre - half_width, centre + half_width
    if (n_members + 1) * alpha / 2 < 1:
        # by exchangeability of the truth's deviation with B ideal bootstrap
        # deviations, the members' range holds it with probability (B - 1) / (B + 1)
        reachable = (n_members - 1) / (n_members + 1)
        needed = int(np.ceil(2 / alpha - 1 - 1e-9))
        warn_at_caller(
            f"a percentile interval from n_members={n_members} members at "
            f"alpha={alpha:g} lies inside the members' range, which holds the truth "
            f"with probability at most (B - 1) / (B + 1) = {100 * reachable:.1f}% for "
            f"B ideal bootstrap replicates, not the nominal {100 * (1 - alpha):g}%; "
            f"use method='normal', or many more members: n_members >= {needed} "
            f"keeps the tails inside the members' range, and near-nominal "
            f"coverage takes several hundred.")
    return (np.quantile(members, alpha / 2, axis=0),
            np.quantile(members, 1 - alpha / 2, axis=0))


class IntervalMixin:
    """``effect_interval`` and ``ate_interval`` from the ensemble's members.

    With ``bootstrap=True`` each member is fitted to its own bootstrap resample, so the
    members' spread estimates the sampling spread of one fit (Efron & Tibshirani 1993).
    Without it the members differ only in their initial weights and batch order, and
    the interval shows that spread only. Either way it describes the estimator's
    variability around what it estimates, not its bias (a regularised network's
    smoothing, for instance).

    ``method="normal"`` (the default) is the normal interval with the bootstrap
    standard error (Efron & Tibshirani 1993) around the members' mean, the ensemble's
    own estimate, corrected for few members:
    ``mean +- t_{B-1, 1-alpha/2} * sd * sqrt(1 + 1/B)`` with ``sd`` the members'
    standard deviation (``ddof=1``) and ``B = n_members``.
    The members' mean is not the full-data estimate but one more draw around it, with
    variance ``sd^2 / B`` on top of the estimate's own ``sd^2``, hence
    ``sqrt(1 + 1/B)``; ``sd`` is estimated from ``B`` values, hence Student's ``t``.
    When the members' estimates are normal around an unbiased full-data estimate it
    covers exactly ``1 - alpha`` for every ``B >= 2`` (a prediction interval for one
    more draw; wide for ``B`` of 2 or 3, where ``t`` is 12.7 or 4.3 at 95%). It
    assumes roughly normal member estimates; skewed ones call for many members and
    ``method="percentile"``.

    ``method="percentile"``: the ``alpha / 2`` and ``1 - alpha / 2`` quantiles of the
    members (``np.quantile``). It needs no normality but many members (Efron &
    Tibshirani, ch. 19, ask for about 1000 for percentile intervals): the interval
    never leaves the members' range, which, with ``B`` ideal bootstrap replicates,
    holds the truth with probability at most ``(B - 1) / (B + 1)`` (66.7% for 5
    members, 81.8% for 10, 90.5% for 20), so it warns while
    ``(n_members + 1) * alpha / 2 < 1``. Measured on ideal replicates
    (``theta* ~ N(theta_hat, 1)``, ``theta_hat ~ N(theta, 1)``, 200,000 draws;
    ``benchmarks/member_intervals.py --ideal``) the 95% percentile interval covered
    64.4% (B=5), 79.1% (10), 87.2% (20), 91.5% (50) and 94.1% (200), the normal one
    94.9-95.1% for B from 2 to 200.

    References
    ----------
    .. [1] B. Efron, R. J. Tibshirani. "An Introduction to the Bootstrap". Chapman &
       Hall 1993 (ch. 13: the percentile interval; ch. 19: how many replicates).
    """

    def _check_interval_members(self):
        """Refuse an estimator without members; warn when they are no bootstrap
        replicates. Called by the public interval methods (warnings point at their
        caller)."""
        # unfitted: NotFittedError, as effect (a fitted estimator without a member
        # axis has n_features_in_ and one member)
        if not (hasattr(self, "n_members_") or hasattr(self, "n_features_in_")):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' "
                f"with appropriate arguments before using this estimator.")
        if getattr(self, "n_members_", 1) < 2:
            raise ValueError(
                f"{type(self).__name__} was fitted with n_members="
                f"{getattr(self, 'n_members_', 1)}; intervals from members need "
                f"n_members >= 2 (e.g. n_members=50, bootstrap=True).")
        if not getattr(self, "bootstrap", False):
            warn_at_caller("the members are not bootstrap replicates (bootstrap=False): "
                           "the interval reflects only the spread between random "
                           "initialisations, not sampling uncertainty.")

    def _member_ates(self, X, T0, T1):
        """Each member's average effect over the rows of ``X``, ``(n_members,)``."""
        return self.effect(X, T0, T1, members=True).mean(axis=1)

    def effect_interval(self, X, T0=0, T1=1, *, alpha=0.05, method="normal"):
        """Interval of each row's effect from the members' effects on that row.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        T0, T1 : scalar or array-like of shape (n_samples,), default=0 and 1
        alpha : float, default=0.05
            Two-sided: the interval's nominal coverage is ``1 - alpha``.
        method : {"normal", "percentile"}, default="normal"
            ``"normal"``: ``mean +- t_{B-1, 1-alpha/2} * sd * sqrt(1 + 1/B)`` over the
            ``B`` members, centred on ``effect(X)``; ``"percentile"``: the members'
            ``alpha / 2`` and ``1 - alpha / 2`` quantiles, which warns when ``B`` is
            too small for them (see :class:`IntervalMixin`). Either covers the
            estimator's sampling variability, not its bias: the smoothing of a
            regularised CATE is not covered.

        Returns
        -------
        lower, upper : ndarray of shape (n_samples,)
        """
        check_interval_options(alpha, method)
        self._check_interval_members()
        return member_interval(self.effect(X, T0, T1, members=True), alpha=alpha,
                               method=method)

    def ate_interval(self, X, T0=0, T1=1, *, alpha=0.05, method="normal"):
        """Interval of the average effect over ``X`` from the members' average effects.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        T0, T1 : scalar or array-like of shape (n_samples,), default=0 and 1
        alpha : float, default=0.05
            Two-sided: the interval's nominal coverage is ``1 - alpha``.
        method : {"normal", "percentile"}, default="normal"
            As in :meth:`effect_interval`, over each member's mean effect on ``X``;
            the normal interval is centred on ``ate(X)``.

        Returns
        -------
        lower, upper : float
        """
        check_interval_options(alpha, method)
        self._check_interval_members()
        lower, upper = member_interval(self._member_ates(X, T0, T1), alpha=alpha,
                                       method=method)
        return float(lower), float(upper)


def _is_int(value):
    """An integer, not a bool (``True`` is an ``Integral`` too)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _propensity_features(X, Xa):
    """What a propensity model is fitted on: the DataFrame ``X`` (so that pipelines may
    select columns by name), else the checked array ``Xa``. Column names of mixed types
    (``["age", 1]``), which causalnn records as strings, are handed on as those strings:
    scikit-learn refuses them."""
    if not _is_frame(X):
        return Xa
    kinds = {isinstance(c, str) for c in X.columns}
    return X.set_axis([str(c) for c in X.columns], axis=1) if len(kinds) > 1 else X


def _cross_fitted_propensity(model, features, t, fold):
    """``P(t = 1 | x)`` of every row from a clone of ``model`` fitted on the other folds
    (``fold``: each row's fold number)."""
    folds = [(np.flatnonzero(fold != k), np.flatnonzero(fold == k))
             for k in range(fold.max() + 1)]
    return cross_val_predict(clone(model), features, t, cv=folds,
                             method="predict_proba")[:, 1]


class AverageEffectInferenceMixin:
    """``ate_inference``: doubly robust average effects with cross-fitted nuisances.

    Cross-fitting trains the ``cv`` fold models as the members of one batched fit:
    member ``k`` sees the rows outside fold ``k`` (the rows of fold ``k`` get weight 0
    in its per-row losses, also in its validation loss, so its early stopping never
    looks at them), and predicts fold ``k``. Pairwise terms of the loss (CFR's IPM)
    take the same row weights, so they too compare only member ``k``'s rows. With
    ``n_repeats`` the fold models of every partition are members of the same fit.
    """

    # ---- hooks into the estimator's training ----------------------------------------
    def _train_members(self, module, data, generator, *, stratify):
        weight = getattr(self, "_cross_fit_weight", None)
        if weight is None:
            return super()._train_members(module, data, generator, stratify=stratify)
        return self._train(module, data, generator, stratify=stratify,
                           n_members=self.n_members_, bootstrap=False,
                           member_data={"member_weight": weight})

    def _raw_propensity(self, X_scaled):
        """Unclipped propensity of the estimator's own head, ``(n_members, n)``."""
        logit = self._forward(X_scaled, lambda out: out.propensity_logit)
        return 1.0 / (1.0 + np.exp(-logit))

    # ---- inputs -----------------------------------------------------------------------
    def _inference_inputs(self, X, y, treatment):
        """``(X, features, y, t)``: ``X`` without the treatment column, for the
        outcome networks; ``features``, the same rows for a propensity model (the
        DataFrame itself when ``X`` is one, so column-selecting pipelines work)."""
        X, treatment = split_treatment_column(X, treatment, self.treatment_col,
                                              required=False)
        check_same_rows([(y, "y"), (treatment, "treatment")], X)
        Xa, _ = check_features(X, name="X")
        n = Xa.shape[0]
        y = check_vector(y, name="y", n_samples=n)
        require_treatment(treatment)
        t = check_vector(treatment, name="treatment", n_samples=n)
        check_binary(t, name="treatment", owner=type(self).__name__)
        return X, _propensity_features(X, Xa), y, t

    def _propensity_model(self, propensity_model):
        if propensity_model is None:
            if self._propensity_head:
                return None
            # standardised inside, so the penalty does not depend on the columns' units
            return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        if not (hasattr(propensity_model, "fit")
                and hasattr(propensity_model, "predict_proba")):
            raise TypeError(
                f"propensity_model must be a scikit-learn classifier with fit and "
                f"predict_proba; got {type(propensity_model).__name__}, which lacks "
                f"{'predict_proba' if hasattr(propensity_model, 'fit') else 'fit'}.")
        return propensity_model

    # ---- the estimate -----------------------------------------------------------------
    def ate_inference(self, X, y, *, treatment=None, target="ate", method="aipw", cv=5,
                      n_repeats=1, propensity_model=None, propensity_clip=0.01,
                      trim=None):
        """Average effect with an influence-function standard error and interval.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        treatment : array-like of shape (n_samples,), default=None
            Binary treatment; may come from ``treatment_col``.
        target : {"ate", "att", "atc"}, default="ate"
            Average over all rows, the treated rows, or the control rows.
        method : {"aipw", "tmle", "plugin"}, default="aipw"
            ``"aipw"``: augmented inverse propensity weighting (Robins et al. 1994);
            ``"tmle"``: targeted maximum likelihood (van der Laan & Rubin 2006), one
            logistic fluctuation of the outcome predictions; ``"plugin"``: the outcome
            model's mean effect (no standard error).
        cv : int >= 2 or None, default=5
            Cross-fitting folds (Chernozhukov et al. 2018): a clone of this estimator is
            fitted with ``cv * n_members`` members in one batched fit, fold ``k``'s
            members trained without fold ``k`` and predicting it; the propensity model
            is cross-fitted on the same folds. ``None``: use this fitted estimator's
            predictions and a propensity model fitted on all rows (no cross-fitting;
            intervals can then be too narrow).
        n_repeats : int >= 1, default=1
            Cross-fit on this many fold partitions, drawn from ``random_state`` (from
            seed 0 when it is not an integer, so that the folds stay reproducible
            while the networks vary), and aggregate by the median
            rule of Chernozhukov et al. (2018, section 3.4): the median estimate, and
            the median of ``stderr_s^2 + (estimate_s - median)^2`` as the variance
            (:func:`causalnn.inference.aggregate_repeats`). All ``n_repeats * cv``
            fold models are members of the same batched fit. It steadies the
            estimate against the partition and the networks' seeds: on a simulated
            design with 1% treated rows, 5 partitions cut the standard deviation of
            the AIPW ATT over 30 seeds from 119 to 85 (``docs/inference.md``), at
            about ``n_repeats`` times the cost of one cross-fit on a CPU.
        propensity_model : scikit-learn classifier, default=None
            Model of ``P(T=1 | x)``, fitted on ``X`` as passed (a DataFrame without
            the treatment column, so pipelines may select columns by name). ``None``:
            Dragonnet's own propensity head, or for TARNet/CFR a logistic regression on
            the standardised columns (``make_pipeline(StandardScaler(),
            LogisticRegression(max_iter=1000))``).
        propensity_clip : float in [0, 0.5), default=0.01
            Propensities are clipped to ``[c, 1 - c]`` in the weights; the number of
            rows touched is ``result.n_clipped``. With 0, a propensity of exactly 0 or
            1 where the target's weights divide by it is refused.
        trim : float in (0, 0.5) or None, default=None
            Drop rows with propensity outside ``[trim, 1 - trim]`` before estimating
            (the estimand becomes the effect on the overlap population).

        Returns
        -------
        result : causalnn.inference.AverageEffectResult
            ``point_estimate``, ``stderr``, ``conf_int(alpha)``, ``summary_frame()``,
            ``overlap_summary()``.

        References
        ----------
        .. [1] J. M. Robins, A. Rotnitzky, L. P. Zhao. "Estimation of regression
           coefficients when some regressors are not always observed". JASA 1994.
        .. [2] M. J. van der Laan, D. Rubin. "Targeted maximum likelihood learning".
           Int. J. Biostatistics 2006.
        .. [3] V. Chernozhukov et al. "Double/debiased machine learning for treatment
           and structural parameters". Econometrics Journal 2018.
        """
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}; got {target!r}.")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
        if cv is not None and not (_is_int(cv) and cv >= 2):
            raise ValueError(f"cv must be an integer >= 2 or None; got {cv!r}.")
        if not (_is_int(n_repeats) and n_repeats >= 1):
            raise ValueError(f"n_repeats must be an integer >= 1; got {n_repeats!r}.")
        if cv is None and n_repeats > 1:
            raise ValueError(f"n_repeats={n_repeats} repeats the cross-fitting; it needs "
                             f"cv folds (got cv=None).")
        check_clip_and_trim(propensity_clip, trim)
        model = self._propensity_model(propensity_model)
        X, features, y, t = self._inference_inputs(X, y, treatment)
        if not _is_frame(X):
            # the checked float64 array from here on: the fits and predictions below
            # would each convert a float32 or other array again
            X = features
        # the outcome type of the y analysed now (TMLE's fluctuation scale); with
        # cv=None the nuisances are this fit's, so y must be of the type it was fitted on
        outcome = self._resolve_outcome(y)
        # continuous outcomes enter the estimates less their median (the estimates do
        # not change): mu1 - mu0 and y - mu then keep the digits an offset such as
        # 1e12 would round away in the units of y (the median cannot overflow)
        offset = 0.0 if outcome == "binary" else float(np.median(y))
        if cv is None:
            fitted = getattr(self, "outcome_type_", outcome)
            if fitted != outcome:
                raise ValueError(
                    f"y is a {outcome} outcome, but this {type(self).__name__} was "
                    f"fitted on a {fitted} one; with cv=None its own predictions are "
                    f"the nuisances, so pass the y it was fitted on (or use cv).")
            partitions = [self._nuisances_in_sample(X, t, model, features=features,
                                                    offset=offset)]
        else:
            self._check_arms_per_fold(t, cv)
            partitions = self._nuisances_cross_fitted(X, y, t, model, cv, n_repeats,
                                                      features=features, offset=offset)
        check_overlap(np.mean([e for _, _, e in partitions], axis=0),
                      owner=f"{type(self).__name__}.ate_inference",
                      clip=max(propensity_clip, OVERLAP_BOUNDS))
        results = [estimate_average_effect(y - offset, t, mu0, mu1, e, target=target,
                                           method=method, outcome=outcome,
                                           propensity_clip=propensity_clip, trim=trim,
                                           cv=cv)
                   for mu0, mu1, e in partitions]
        return results[0] if len(results) == 1 else aggregate_repeats(results)

    def _check_arms_per_fold(self, t, cv):
        """Every fold model must train on rows of both arms. A fold model trains on the
        rows outside its fold, less the estimator's validation split, which takes
        ``round(validation_fraction * n_arm)`` rows of each arm (stratified), possibly
        all from outside the fold; an arm too small for that leaves a model whose head
        for the arm never trains, and whose predictions would enter the estimate."""
        counts = np.bincount(t.astype(int), minlength=2)
        fraction = getattr(self, "validation_fraction", 0.0)
        # as stratified_split: round(fraction * n_arm), but at least 1 and at most
        # n_arm - 1 rows of an arm of two or more rows
        held_out = np.round(fraction * counts)
        if fraction > 0:
            held_out = np.where(counts >= 2, np.clip(held_out, 1, counts - 1), 0)
        # StratifiedKFold puts at most ceil(n_arm / cv) rows of an arm in one fold
        trained = counts - np.ceil(counts / cv) - held_out
        if np.any(counts < cv) or np.any(trained < 1):
            arm = int(np.argmin(trained))
            raise ValueError(
                f"cv={cv} folds need more rows in treatment arm {arm} ({counts[arm]} "
                f"rows): each fold's model trains on the rows outside its fold less its "
                f"validation split (validation_fraction="
                f"{getattr(self, 'validation_fraction', 0.0)}), which can leave it no "
                f"row of that arm. Use fewer folds or more data.")

    def _nuisances_in_sample(self, X, t, model, *, features=None, offset=0.0):
        """``(mu0, mu1, e)`` from this fitted estimator, on all rows, the outcome
        means less ``offset``; ``features`` (default ``X``) are what the propensity
        model sees."""
        features = X if features is None else features
        Xs = self._validate_X(X)
        n = Xs.shape[0]
        eta0, eta1 = self._predict_outcome(Xs, np.zeros(n), np.ones(n))
        mu0 = np.atleast_2d(self._to_outcome_scale(eta0, offset)).mean(axis=0)
        mu1 = np.atleast_2d(self._to_outcome_scale(eta1, offset)).mean(axis=0)
        if model is None:
            e = self._raw_propensity(Xs).mean(axis=0)
        else:
            e = clone(model).fit(features, t).predict_proba(features)[:, 1]
        return mu0, mu1, e

    def _nuisances_cross_fitted(self, X, y, t, model, cv, n_repeats=1, *,
                                features=None, offset=0.0):
        """``[(mu0, mu1, e)]``, one per fold partition, every row predicted by the
        models of the folds that left it out; all partitions' fold models are the
        members of one batched fit, the outcome means less ``offset``. ``features``
        (default ``X``) are what the propensity model sees."""
        features = X if features is None else features
        fold = self._fold_of_rows(t, cv, n_repeats)
        per_fold = self.n_members
        est = clone(self).set_params(n_members=n_repeats * cv * per_fold,
                                     bootstrap=False, treatment_col=None)
        # member (r*cv + k)*per_fold + j trains on every row outside fold k of partition r
        weight = np.repeat((fold[:, None, :] != np.arange(cv)[None, :, None]).reshape(
            n_repeats * cv, -1).astype(np.float32), per_fold, axis=0)  # 0/1: exact
        est._cross_fit_weight = weight
        try:
            est.fit(X, y, treatment=t)
        finally:
            del est._cross_fit_weight
        del weight
        Xs = est._validate_X(X)
        n = Xs.shape[0]
        groups = range(n_repeats * cv)

        def fold_means(values, convert=lambda v: v):
            # (members, n) -> (n_repeats * cv, n): the mean of each fold's members, one
            # fold at a time (no float64 (members, n) array beside the predictions)
            return np.stack([convert(values[g * per_fold:(g + 1) * per_fold]).mean(axis=0)
                             for g in groups])

        eta0, eta1 = est._predict_outcome(Xs, np.zeros(n), np.ones(n))
        mu0_folds = fold_means(eta0, lambda v: est._to_outcome_scale(v, offset))
        mu1_folds = fold_means(eta1, lambda v: est._to_outcome_scale(v, offset))
        del eta0, eta1
        e_folds = fold_means(est._raw_propensity(Xs)) if model is None else None
        del Xs  # not held through the propensity model's cross-fitting
        rows = np.arange(n)
        nuisances = []
        for r in range(n_repeats):
            def by_fold(folds):  # partition r's folds -> each row from its own fold
                return folds[r * cv:(r + 1) * cv][fold[r], rows]

            if model is None:
                e = by_fold(e_folds)
            else:
                e = _cross_fitted_propensity(model, features, t, fold[r])
            nuisances.append((by_fold(mu0_folds), by_fold(mu1_folds), e))
        return nuisances

    def _fold_of_rows(self, t, cv, n_repeats=1):
        """``(n_repeats, n)``: each row's fold in each of ``n_repeats`` stratified,
        shuffled ``cv``-fold partitions, seeded by ``random_state`` (partition 0 is
        ``StratifiedKFold(cv, shuffle=True)``'s, whatever ``n_repeats``)."""
        seed = self.random_state if isinstance(self.random_state, numbers.Integral) else 0
        partitions = RepeatedStratifiedKFold(n_splits=cv, n_repeats=n_repeats,
                                             random_state=seed)
        fold = np.empty((n_repeats, len(t)), dtype=int)
        for i, (_, test) in enumerate(partitions.split(np.zeros(len(t)), t)):
            fold[i // cv, test] = i % cv
        return fold

    # ---- diagnostics ------------------------------------------------------------------
    def overlap_summary(self, X, treatment=None, *, propensity_model=None,
                        clip=OVERLAP_BOUNDS):
        """Propensity distribution by arm on ``X`` (see
        :func:`causalnn.inference.overlap_summary`).

        The propensity is the estimator's own head (Dragonnet), or ``propensity_model``
        (default: a logistic regression on the standardised columns) cross-validated
        over 5 folds, on the same features ``ate_inference`` gives it.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        treatment : array-like of shape (n_samples,), default=None
            The 0/1 treatment; required unless ``treatment_col`` is set.
        propensity_model : classifier, default=None
            A scikit-learn classifier with ``predict_proba``, as in ``ate_inference``.
        clip : float, default=0.01
            Propensities outside ``[clip, 1 - clip]`` count as lacking overlap.

        Returns
        -------
        summary : pandas.DataFrame
        """
        model = self._propensity_model(propensity_model)
        X, treatment = split_treatment_column(X, treatment, self.treatment_col,
                                              required=False)
        require_treatment(treatment)
        check_same_index(treatment, X, "treatment")
        if model is None:
            Xs = self._validate_X(X)
            t = check_vector(treatment, name="treatment", n_samples=Xs.shape[0])
            e = self._raw_propensity(Xs).mean(axis=0)
        else:
            Xa, _ = check_features(X, name="X")
            t = check_vector(treatment, name="treatment", n_samples=Xa.shape[0])
            check_binary(t, name="treatment", owner=type(self).__name__)
            # the features and folds of ate_inference's default (cv=5, its first
            # partition): shuffled folds, since unshuffled ones of a table sorted by a
            # covariate hold out whole groups, and the model's extrapolation to them
            # reads as poor overlap (IHDP, sorted by site: 23.7% of rows outside the
            # bounds against 1.3% with the shuffled folds)
            e = _cross_fitted_propensity(model, _propensity_features(X, Xa), t,
                                         self._fold_of_rows(t, 5)[0])
        return overlap_summary(e, t, clip=clip)
