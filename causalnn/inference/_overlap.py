"""Overlap diagnostics: how far the estimated propensities reach towards 0 and 1."""
import warnings

import numpy as np
import pandas as pd

from .._base._validation import check_binary, check_same_rows
from .._warnings import warn_at_caller

__all__ = ["OverlapWarning", "overlap_summary", "plot_propensity", "check_overlap",
           "OVERLAP_BOUNDS", "OVERLAP_WARN_SHARE"]

#: Propensities outside ``[OVERLAP_BOUNDS, 1 - OVERLAP_BOUNDS]`` count as lacking overlap.
OVERLAP_BOUNDS = 0.01
#: Warn when more than this share of rows lacks overlap.
OVERLAP_WARN_SHARE = 0.05


class OverlapWarning(UserWarning):
    """Many rows have an estimated propensity near 0 or 1: weighting estimators are
    then driven by few rows, and effects there are extrapolated."""


def _check_propensity(e):
    """Refuse what is not probabilities: scores, logits, NaN, or no rows at all."""
    if e.size == 0:
        raise ValueError("propensity holds no rows.")
    if np.any(~np.isfinite(e) | (e < 0) | (e > 1)):
        raise ValueError("propensity must hold probabilities in [0, 1] (not scores or "
                         "logits), without NaN.")


def overlap_summary(propensity, treatment, clip=OVERLAP_BOUNDS):
    """Propensity distribution by treatment arm.

    Parameters
    ----------
    propensity, treatment : array-like of shape (n_samples,)
    clip : float, default=0.01
        Rows with propensity below ``clip`` or above ``1 - clip`` are counted.

    Returns
    -------
    summary : pandas.DataFrame
        One row per arm ("control", "treated", "all"): ``n``, min, 1%, 5%, 50%, 95%,
        99% quantiles, max, ``n_below_clip``, ``n_above_clip``, ``share_outside`` and
        the effective sample size ``(sum w)^2 / sum w^2`` of the arm's inverse
        propensity weights (``1/e`` treated, ``1/(1-e)`` control).
    """
    check_same_rows([(propensity, "propensity"), (treatment, "treatment")], None)
    e = np.asarray(propensity, dtype=float)
    t = np.asarray(treatment, dtype=float)
    if e.ndim != 1 or t.shape != e.shape:
        raise ValueError(f"propensity and treatment must be 1-d of one length; got "
                         f"shapes {e.shape} and {t.shape}.")
    check_binary(t, name="treatment", owner="overlap_summary")
    if not (0 <= clip < 0.5):
        raise ValueError(f"clip must be in [0, 0.5); got {clip!r}.")
    _check_propensity(e)
    rows = {}
    for name, mask in (("control", t == 0), ("treated", t == 1), ("all", np.ones_like(
            t, dtype=bool))):
        ee = e[mask]
        if name == "control":
            w = 1 / np.clip(1 - ee, 1e-12, None)
        elif name == "treated":
            w = 1 / np.clip(ee, 1e-12, None)
        else:
            w = np.where(t == 1, 1 / np.clip(e, 1e-12, None), 1 / np.clip(1 - e, 1e-12,
                                                                           None))
        q = np.quantile(ee, [0, .01, .05, .5, .95, .99, 1]) if len(ee) else [np.nan] * 7
        below, above = int(np.sum(ee < clip)), int(np.sum(ee > 1 - clip))
        rows[name] = {"n": int(len(ee)), "min": q[0], "q01": q[1], "q05": q[2],
                      "median": q[3], "q95": q[4], "q99": q[5], "max": q[6],
                      "n_below_clip": below, "n_above_clip": above,
                      "share_outside": (below + above) / max(len(ee), 1),
                      "ess": float(w.sum() ** 2 / np.sum(w ** 2)) if len(w) else np.nan}
    return pd.DataFrame(rows).T.rename_axis(f"arm (clip={clip})")


def check_overlap(propensity, owner="", clip=OVERLAP_BOUNDS, share=OVERLAP_WARN_SHARE,
                  stacklevel=None):
    """Warn (:class:`OverlapWarning`) when more than ``share`` of the rows have a
    propensity outside ``[clip, 1 - clip]``; returns that share. The warning points at
    the first caller outside causalnn, or ``stacklevel`` frames up when given."""
    e = np.asarray(propensity, dtype=float)
    _check_propensity(e)
    outside = float(np.mean((e < clip) | (e > 1 - clip)))
    if outside > share:
        message = (
            f"{owner + ': ' if owner else ''}{100 * outside:.1f}% of rows have an "
            f"estimated propensity outside [{clip}, {1 - clip}] (more than "
            f"{100 * share:g}%): treated and control rows overlap poorly, so average "
            f"effects lean on few rows or on extrapolation. Inspect overlap_summary(), "
            f"consider trim= in ate_inference, or target the ATT/ATC.")
        if stacklevel is None:
            warn_at_caller(message, OverlapWarning)
        else:
            warnings.warn(message, OverlapWarning, stacklevel=stacklevel)
    return outside


def plot_propensity(propensity, treatment, ax=None, bins=30, clip=OVERLAP_BOUNDS):
    """Histogram of the propensity by arm, with the clip bounds marked.

    Needs matplotlib (the optional extra ``pip install causalnn[plot]``).

    Returns
    -------
    ax : matplotlib Axes
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # optional extra
        raise ImportError("plot_propensity needs matplotlib: pip install causalnn[plot]"
                          ) from exc
    e = np.asarray(propensity, dtype=float)
    t = np.asarray(treatment, dtype=float)
    if ax is None:
        _, ax = plt.subplots()
    edges = np.linspace(0, 1, bins + 1)
    ax.hist(e[t == 0], bins=edges, alpha=0.5, label="control", density=True)
    ax.hist(e[t == 1], bins=edges, alpha=0.5, label="treated", density=True)
    for bound in (clip, 1 - clip):
        ax.axvline(bound, color="k", linestyle="--", linewidth=1)
    ax.set_xlabel("estimated propensity P(T=1 | x)")
    ax.set_ylabel("density")
    ax.legend()
    return ax
