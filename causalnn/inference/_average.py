"""Doubly robust average effects from given nuisances: AIPW, TMLE and the plug-in.

Given outcome predictions ``mu0(x), mu1(x)`` and a propensity ``e(x) = P(T=1 | x)``
(cross-fitted: each row predicted by models that never saw it), the estimators here
return an :class:`AverageEffectResult` whose standard error is that of the efficient
influence function (Robins, Rotnitzky & Zhao 1994; van der Laan & Rubin 2006;
Chernozhukov et al. 2018). See ``docs/inference.md`` for the formulas.
"""
import numbers

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit, logit

from .._base._validation import check_binary, check_same_rows
from ..losses.targeted import fit_logistic_fluctuation
from ._overlap import overlap_summary, plot_propensity

__all__ = ["AverageEffectResult", "aipw", "plugin", "tmle", "TARGETS", "METHODS"]

TARGETS = ("ate", "att", "atc")
METHODS = ("aipw", "tmle", "plugin")


def _check_alpha(alpha):
    """Refuse an ``alpha`` that is not a real number in (0, 1) (a string, an array, a
    bool, NaN), naming it, before it reaches a comparison or a quantile."""
    if not (isinstance(alpha, numbers.Real) and not isinstance(alpha, bool)
            and 0 < alpha < 1):
        raise ValueError(f"alpha must be a float in (0, 1); got {alpha!r}.")


class AverageEffectResult:
    """An average effect with its influence-function standard error.

    Attributes
    ----------
    point_estimate : float
    stderr : float
        ``std(influence values, ddof=1) / sqrt(n)``; NaN for the plug-in, whose
        sampling error the outcome model's own uncertainty dominates and no influence
        function describes.
    target : {"ate", "att", "atc"}
    method : {"aipw", "tmle", "plugin"}
    n_samples : int
        Rows used (after trimming).
    cv : int or None
        Cross-fitting folds (None: nuisances fitted on all rows).
    propensity_clip : float
        Propensities were clipped to ``[propensity_clip, 1 - propensity_clip]``.
    n_clipped : int
        Rows whose propensity the clip changed.
    trim : float or None
        Rows with propensity outside ``[trim, 1 - trim]`` were dropped.
    n_trimmed : int
    influence : ndarray of shape (n_samples,)
        Influence values ``phi_i`` (mean zero); ``stderr = std(phi) / sqrt(n)``.
    propensity, treatment : ndarray of shape (n_samples,)
        The (unclipped) propensities and treatments of the rows used.
    plugin_estimate : float
        The outcome model's plug-in estimate of the same target, for comparison.
    n_repeats : int
        Cross-fitting repetitions aggregated into this result (1: one partition).
    repeats : list of AverageEffectResult or None
        With ``n_repeats > 1``, the result of each partition; the other attributes
        (influence, propensity, clipping) are those of the partition whose estimate is
        closest to the median.
    """

    def __init__(self, *, point_estimate, influence, target, method, propensity,
                 treatment, plugin_estimate, propensity_clip, n_clipped, trim=None,
                 n_trimmed=0, cv=None, stderr=None, n_repeats=1, repeats=None):
        self.point_estimate = float(point_estimate)
        self.influence = influence
        n = len(treatment)
        if stderr is None:
            stderr = (_scaled_std(influence) / np.sqrt(n)
                      if influence is not None and n > 1 else np.nan)
        self.stderr = float(stderr)
        self.target, self.method = target, method
        self.n_samples = n
        self.propensity, self.treatment = propensity, treatment
        self.plugin_estimate = float(plugin_estimate)
        self.propensity_clip, self.n_clipped = propensity_clip, int(n_clipped)
        self.trim, self.n_trimmed = trim, int(n_trimmed)
        self.cv = cv
        self.n_repeats, self.repeats = int(n_repeats), repeats

    @property
    def zstat(self):
        """``point_estimate / stderr``. With a standard error of 0 (influence values
        all equal, e.g. outcome models that fit ``y`` exactly) it is ``+-inf``, or NaN
        for an estimate of 0, as is the plug-in's (NaN standard error)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(np.float64(self.point_estimate) / self.stderr)

    @property
    def pvalue(self):
        """Two-sided p-value of ``effect = 0`` (normal approximation); 0 for an
        infinite ``zstat``, NaN for a NaN one."""
        return float(2 * stats.norm.sf(abs(self.zstat)))

    def conf_int(self, alpha=0.05):
        """Two-sided ``1 - alpha`` normal interval ``estimate -/+ z * stderr``.

        Returns
        -------
        lower, upper : float
        """
        _check_alpha(alpha)
        z = stats.norm.ppf(1 - alpha / 2)
        return (self.point_estimate - z * self.stderr,
                self.point_estimate + z * self.stderr)

    def summary_frame(self, alpha=0.05):
        """One-row DataFrame: estimate, stderr, z, p-value, interval, clipping.

        The first six columns are EconML's (``point_estimate``, ``stderr``, ``zstat``,
        ``pvalue``, ``ci_lower``, ``ci_upper``), so code written for its summaries
        reads these; ``alpha`` records the interval's level, then causalnn's own
        columns follow (the plug-in estimate, the cross-fitting and the clipping).

        Parameters
        ----------
        alpha : float, default=0.05
            The interval is ``1 - alpha``.

        Returns
        -------
        frame : pandas.DataFrame
        """
        lo, hi = self.conf_int(alpha)
        return pd.DataFrame({
            "point_estimate": [self.point_estimate], "stderr": [self.stderr],
            "zstat": [self.zstat], "pvalue": [self.pvalue],
            "ci_lower": [lo], "ci_upper": [hi], "alpha": [float(alpha)],
            "plugin_estimate": [self.plugin_estimate], "n_samples": [self.n_samples],
            "cv": [self.cv], "n_repeats": [self.n_repeats],
            "propensity_clip": [self.propensity_clip],
            "n_clipped": [self.n_clipped], "trim": [self.trim],
            "n_trimmed": [self.n_trimmed],
        }, index=pd.Index([self._label()]))

    def _label(self):
        """``"ATE (aipw)"``; trimming changes the population averaged over, so a
        trimmed estimate says so in its label."""
        how = (self.method if self.trim is None
               else f"{self.method}, trimmed at {self.trim:g}")
        return f"{self.target.upper()} ({how})"

    def overlap_summary(self):
        """Propensity distribution by arm (see :func:`overlap_summary`)."""
        return overlap_summary(self.propensity, self.treatment, clip=self.propensity_clip)

    def plot_propensity(self, ax=None, bins=30):
        """Histogram of the propensity by arm (needs matplotlib)."""
        return plot_propensity(self.propensity, self.treatment, ax=ax, bins=bins,
                               clip=self.propensity_clip)

    def __repr__(self):
        lo, hi = self.conf_int()
        return (f"AverageEffectResult({self.target.upper()} {self.method}: "
                f"{self.point_estimate:.4g} (se {self.stderr:.3g}, 95% CI "
                f"[{lo:.4g}, {hi:.4g}]), n={self.n_samples}, clipped {self.n_clipped} "
                f"rows at {self.propensity_clip}, trimmed {self.n_trimmed})")


def aggregate_repeats(results):
    """One result from the cross-fits of several random fold partitions.

    The median rule of Chernozhukov et al. (2018, section 3.4): the estimate is the
    median of the partitions' estimates ``theta_s``, and the variance the median of
    ``stderr_s^2 + (theta_s - theta)^2``, so that the spread between partitions widens
    the interval. ``stderr_s^2`` is the variance of ``theta_s`` itself, on the scale
    of the spread, which therefore enters in full (applied to the asymptotic variance
    of ``sqrt(n) (theta_s - theta)``, as DoubleML does, the spread would count ``1/n``
    as much; ours is the more conservative reading). Less sensitive to one unlucky
    partition (or one unlucky network) than a single cross-fit.

    Parameters
    ----------
    results : list of AverageEffectResult
        One per partition, same target and method.

    Returns
    -------
    result : AverageEffectResult
        With ``n_repeats`` and ``repeats`` set.
    """
    results = list(results)
    if not results:
        raise ValueError("aggregate_repeats needs at least one result.")
    wrong = [type(r).__name__ for r in results if not isinstance(r, AverageEffectResult)]
    if wrong:
        raise TypeError(f"aggregate_repeats needs AverageEffectResult objects (from "
                        f"ate_inference or estimate_average_effect); got {wrong[0]}.")
    kinds = {(r.target, r.method) for r in results}
    if len(kinds) > 1:
        raise ValueError(f"aggregate_repeats needs results of one target and method; "
                         f"got {sorted(kinds)}.")
    estimates = np.array([r.point_estimate for r in results])
    stderrs = np.array([r.stderr for r in results])
    theta = float(np.median(estimates))
    # on a common scale, so that the squares neither under- nor overflow
    top = max(np.max(np.abs(stderrs)), np.max(np.abs(estimates - theta)))
    top = top if np.isfinite(top) and top > 0 else 1.0
    variance = np.median((stderrs / top) ** 2 + ((estimates - theta) / top) ** 2)
    closest = results[int(np.argmin(np.abs(estimates - theta)))]
    return AverageEffectResult(
        point_estimate=theta, stderr=float(np.sqrt(variance) * top),
        influence=closest.influence, target=closest.target, method=closest.method,
        propensity=closest.propensity, treatment=closest.treatment,
        plugin_estimate=float(np.median([r.plugin_estimate for r in results])),
        propensity_clip=closest.propensity_clip, n_clipped=closest.n_clipped,
        trim=closest.trim, n_trimmed=closest.n_trimmed, cv=closest.cv,
        n_repeats=len(results), repeats=list(results))


def _scaled_std(values):
    """``np.std(values, ddof=1)`` computed on ``values`` divided by their largest
    magnitude, so that the squares neither underflow (outcomes below ~1e-154 gave a
    stderr of 0) nor overflow (above ~1e154, inf)."""
    values = np.asarray(values, dtype=np.float64)
    top = np.max(np.abs(values)) if values.size else 0.0
    if not np.isfinite(top) or top == 0:
        return float(np.std(values, ddof=1))
    return float(np.std(values / top, ddof=1) * top)


def _checked_arrays(named, *, propensity=None):
    """``[(value, name)]`` as float64 vectors of one length, refused by name when
    empty, of other shapes, not finite or (pandas) indexed apart. ``propensity``
    names the one that must hold probabilities in [0, 1]."""
    # pandas inputs are paired by position below: their indexes must agree
    check_same_rows(list(named), None)
    arrays = [np.asarray(value, dtype=np.float64) for value, _ in named]
    names = [name for _, name in named]
    n = arrays[0].shape[0] if arrays[0].ndim == 1 else None
    if n == 0:
        raise ValueError(f"{', '.join(names[:-1])} and {names[-1]} are empty.")
    for name, a in zip(names, arrays):
        if n is None or a.shape != (n,):
            raise ValueError(f"{name} must have shape ({n if n is not None else 'n'},); "
                             f"got {a.shape}.")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} contains NaN or infinite values.")
    if propensity is not None:
        e = arrays[names.index(propensity)]
        if e.min() < 0 or e.max() > 1:
            raise ValueError(
                f"{propensity} must hold probabilities in [0, 1]; got values from "
                f"{e.min():.4g} to {e.max():.4g} (scores or logits? pass "
                f"predict_proba(X)[:, 1]).")
    return arrays


def _check_outcome_kind(outcome):
    if outcome not in ("continuous", "binary"):
        raise ValueError(f"outcome must be 'continuous' or 'binary'; got {outcome!r}.")


def _checked_arrays_and_weights(y, t, mu0, mu1, e, target):
    """The inputs of :func:`aipw` and :func:`tmle`, checked: ``(y, t, mu0, mu1, e)``."""
    arrays = _checked_arrays(
        [(y, "y"), (t, "treatment"), (mu0, "mu0"), (mu1, "mu1"), (e, "propensity")],
        propensity="propensity")
    _check_weights_defined(arrays[-1], target)
    return arrays


def _check_weights_defined(e, target, propensity_clip=None):
    """The weights of ``target`` divide by ``e`` (ATE, ATC) and by ``1 - e`` (ATE,
    ATT): a propensity of exactly 0 or 1 there would give an infinite or NaN
    estimate."""
    unbounded = {"ate": (e <= 0) | (e >= 1), "att": e >= 1, "atc": e <= 0}.get(target)
    if unbounded is not None and unbounded.any():
        remedy = ("clip it (estimate_average_effect's propensity_clip) or trim"
                  if propensity_clip is None else
                  f"set propensity_clip > 0 (now {propensity_clip}) or trim")
        raise ValueError(
            f"{int(unbounded.sum())} rows have a propensity of exactly 0 or 1, where "
            f"the {target.upper()}'s weights are unbounded (the effect is not identified "
            f"there; the propensity must lie strictly between 0 and 1): {remedy}.")


def _arm_shares(t, owner="the average-effect estimators"):
    check_binary(t, name="treatment", owner=owner)
    p = t.mean()
    if p == 0 or p == 1:
        raise ValueError("treatment must contain both arms (0 and 1).")
    return p


def _aipw(y, t, mu0, mu1, e, target):
    """:func:`aipw` on checked float64 arrays."""
    p = _arm_shares(t)
    if target == "ate":
        psi = mu1 - mu0 + t * (y - mu1) / e - (1 - t) * (y - mu0) / (1 - e)
        est = psi.mean()
        return est, psi - est
    if target == "att":
        # E[Y1 - Y0 | T=1]: treated rows give y - mu0, controls reweighted by e/(1-e)
        psi = t * (y - mu0) - (1 - t) * e / (1 - e) * (y - mu0)
        est = psi.mean() / p
        return est, (psi - t * est) / p
    if target == "atc":
        psi = (1 - t) * (mu1 - y) + t * (1 - e) / e * (y - mu1)
        est = psi.mean() / (1 - p)
        return est, (psi - (1 - t) * est) / (1 - p)
    raise ValueError(f"target must be one of {TARGETS}; got {target!r}.")


def aipw(y, t, mu0, mu1, e, target="ate"):
    """AIPW (doubly robust) estimate and influence values.

    Parameters
    ----------
    y, t, mu0, mu1, e : ndarray of shape (n,)
        Outcome, binary treatment, outcome predictions under control and treatment,
        propensity (already clipped away from 0 and 1).
    target : {"ate", "att", "atc"}

    Returns
    -------
    estimate : float
    influence : ndarray of shape (n,)
    """
    return _aipw(*_checked_arrays_and_weights(y, t, mu0, mu1, e, target), target)


def plugin(mu0, mu1, t, target="ate"):
    """The outcome model's own estimate: the mean of ``mu1 - mu0`` over the target rows."""
    mu0, mu1, t = _checked_arrays([(mu0, "mu0"), (mu1, "mu1"), (t, "treatment")])
    _arm_shares(t)  # refuses a treatment with an empty arm (the ATT's or ATC's rows)
    return _plugin(mu0, mu1, t, target)


def _plugin(mu0, mu1, t, target):
    """:func:`plugin` on checked float64 arrays."""
    tau = mu1 - mu0
    if target == "ate":
        return float(tau.mean())
    if target == "att":
        return float(tau[t == 1].mean())
    if target == "atc":
        return float(tau[t == 0].mean())
    raise ValueError(f"target must be one of {TARGETS}; got {target!r}.")


def tmle(y, t, mu0, mu1, e, target="ate", outcome="continuous"):
    """Targeted maximum likelihood estimate (one logistic fluctuation) and its
    influence values.

    A continuous outcome is mapped to [0, 1] by its observed range (Gruber & van der
    Laan 2010) and the outcome predictions are fluctuated by a weighted logistic
    regression whose score is the AIPW correction: for the ATE covariate ``2t - 1``
    with weights ``1/e`` (treated) and ``1/(1-e)`` (controls); for the ATT an
    intercept on the controls' ``mu0`` with weights ``e/(1-e)``; for the ATC an
    intercept on the treated rows' ``mu1`` with weights ``(1-e)/e``. The target is the
    plug-in of the fluctuated predictions; the propensity is held fixed. (The weighted
    form keeps the update bounded where ``e`` is near 0 or 1; with the unweighted
    clever covariate ``t/e - (1-t)/(1-e)`` the 95% interval covered 86% in a check
    with limited overlap, against 94% weighted.)

    Returns
    -------
    estimate : float
    influence : ndarray of shape (n,)
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}; got {target!r}.")
    _check_outcome_kind(outcome)
    return _tmle(*_checked_arrays_and_weights(y, t, mu0, mu1, e, target), target,
                 outcome)


def _tmle(y, t, mu0, mu1, e, target, outcome):
    """:func:`tmle` on checked float64 arrays."""
    _arm_shares(t)  # refuses a treatment with an empty arm
    if outcome == "binary":
        if y.min() < 0 or y.max() > 1:
            raise ValueError(
                f"outcome='binary' needs y in [0, 1]; got values from {y.min()} to "
                f"{y.max()}.")
        lo, scale = 0.0, 1.0
    else:
        lo, hi = float(min(y.min(), mu0.min(), mu1.min())), float(
            max(y.max(), mu0.max(), mu1.max()))
        scale = (hi - lo) or 1.0
    bound = 1e-5
    y01 = (y - lo) / scale
    q0 = np.clip((mu0 - lo) / scale, bound, 1 - bound)
    q1 = np.clip((mu1 - lo) / scale, bound, 1 - bound)
    if target == "ate":
        h1, h0 = 1 / e, -1 / (1 - e)
        qt = np.where(t == 1, q1, q0)
        H = np.where(t == 1, h1, h0)
        # weighted fluctuation: covariate sign(H), weight |H| (same score equation as
        # covariate H, but the update is bounded where e is near 0 or 1)
        eps = fit_logistic_fluctuation(y01, qt, np.sign(H), weight=np.abs(H))
        q1s, q0s = expit(logit(q1) + eps), expit(logit(q0) - eps)
        mu1s, mu0s = lo + scale * q1s, lo + scale * q0s
        est, infl = _aipw(y, t, mu0s, mu1s, e, "ate")
        return est, infl  # the AIPW correction term is zero at the fluctuated fit
    if target == "att":
        c = t == 0
        w = e / (1 - e)
        eps = fit_logistic_fluctuation(y01[c], q0[c], np.ones(c.sum()), weight=w[c])
        mu0s = lo + scale * expit(logit(q0) + eps)
        est = np.sum(t * (y - mu0s)) / t.sum()
        _, infl = _aipw(y, t, mu0s, mu1, e, "att")
        # the AIPW correction vanishes at mu0s, so est equals AIPW's value at mu0s
        return est, infl
    tr = t == 1
    w = (1 - e) / e
    eps = fit_logistic_fluctuation(y01[tr], q1[tr], np.ones(tr.sum()), weight=w[tr])
    mu1s = lo + scale * expit(logit(q1) + eps)
    est = np.sum((1 - t) * (mu1s - y)) / (1 - t).sum()
    _, infl = _aipw(y, t, mu0, mu1s, e, "atc")
    return est, infl


def check_clip_and_trim(propensity_clip, trim):
    """Refuse a ``propensity_clip`` outside [0, 0.5) or a ``trim`` outside (0, 0.5)."""
    def real(v):
        return isinstance(v, numbers.Real) and not isinstance(v, bool)

    if not (real(propensity_clip) and 0 <= propensity_clip < 0.5):
        raise ValueError(f"propensity_clip must be a number in [0, 0.5); got "
                         f"{propensity_clip!r}.")
    if trim is not None and not (real(trim) and 0 < trim < 0.5):
        raise ValueError(f"trim must be a number in (0, 0.5) or None; got {trim!r}.")


def estimate_average_effect(y, t, mu0, mu1, propensity, *, target="ate", method="aipw",
                            outcome="continuous", propensity_clip=0.01, trim=None,
                            cv=None):
    """Average effect from nuisance predictions (the engine of ``ate_inference``).

    Parameters
    ----------
    y, t, mu0, mu1, propensity : array-like of shape (n,)
    target : {"ate", "att", "atc"}
    method : {"aipw", "tmle", "plugin"}
    outcome : {"continuous", "binary"}
        TMLE's fluctuation scale.
    propensity_clip : float in [0, 0.5)
        Clip the propensity to ``[c, 1 - c]`` (rows touched are counted).
    trim : float in (0, 0.5) or None
        Drop rows with propensity outside ``[trim, 1 - trim]`` first (this changes the
        population the effect is averaged over).
    cv : int or None
        Recorded in the result.

    Returns
    -------
    result : AverageEffectResult
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}; got {target!r}.")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
    check_clip_and_trim(propensity_clip, trim)
    _check_outcome_kind(outcome)
    y, t, mu0, mu1, e = _checked_arrays(
        [(y, "y"), (t, "treatment"), (mu0, "mu0"), (mu1, "mu1"),
         (propensity, "propensity")], propensity="propensity")
    n = len(y)
    # with one arm, the ATT's or ATC's rows are none, and the weights of every other
    # target undefined (the plug-in too is refused, as plugin() refuses it)
    _arm_shares(t, owner="estimate_average_effect")
    n_trimmed = 0
    if trim is not None:
        keep = (e >= trim) & (e <= 1 - trim)
        n_trimmed = int(n - keep.sum())
        y, t, mu0, mu1, e = (a[keep] for a in (y, t, mu0, mu1, e))
        if t.size == 0 or t.min() == t.max():
            left = "no rows" if t.size == 0 else "only one treatment arm"
            raise ValueError(f"trimming at {trim} left {left}.")
    e_clipped = np.clip(e, propensity_clip, 1 - propensity_clip)
    n_clipped = int(np.sum(e_clipped != e))
    if method != "plugin":
        _check_weights_defined(e_clipped, target, propensity_clip)
    plug = _plugin(mu0, mu1, t, target)
    common = dict(target=target, method=method, propensity=e, treatment=t,
                  plugin_estimate=plug, propensity_clip=propensity_clip,
                  n_clipped=n_clipped, trim=trim, n_trimmed=n_trimmed, cv=cv)
    if method == "plugin":
        return AverageEffectResult(point_estimate=plug, influence=None, stderr=np.nan,
                                   **common)
    if method == "aipw":
        est, infl = _aipw(y, t, mu0, mu1, e_clipped, target)
    else:
        est, infl = _tmle(y, t, mu0, mu1, e_clipped, target, outcome)
    return AverageEffectResult(point_estimate=est, influence=infl, **common)
