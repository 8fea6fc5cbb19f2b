"""Overlap diagnostics against hand-computed values."""
import warnings

import numpy as np
import pytest

from causalnn.inference import OverlapWarning, check_overlap, overlap_summary

E = np.array([0.005, 0.2, 0.5, 0.995, 0.3, 0.9, 0.999, 0.6])
T = np.array([0, 0, 0, 0, 1, 1, 1, 1.])


def test_overlap_summary_counts_shares_and_ess_by_arm():
    s = overlap_summary(E, T, clip=0.01)
    control, treated, every = s.loc["control"], s.loc["treated"], s.loc["all"]
    # counts: control has one row below 0.01 and one above 0.99; treated one above
    assert (control["n_below_clip"], control["n_above_clip"]) == (1, 1)
    assert (treated["n_below_clip"], treated["n_above_clip"]) == (0, 1)
    assert (every["n_below_clip"], every["n_above_clip"]) == (1, 2)
    # shares over the arm's own rows
    assert control["share_outside"] == pytest.approx(2 / 4)
    assert treated["share_outside"] == pytest.approx(1 / 4)
    assert every["share_outside"] == pytest.approx(3 / 8)
    # Kish's effective sample size of the inverse propensity weights of each arm
    wc, wt = 1 / (1 - E[:4]), 1 / E[4:]
    w = np.r_[wc, wt]
    assert control["ess"] == pytest.approx(wc.sum() ** 2 / np.sum(wc ** 2))
    assert treated["ess"] == pytest.approx(wt.sum() ** 2 / np.sum(wt ** 2))
    assert every["ess"] == pytest.approx(w.sum() ** 2 / np.sum(w ** 2))


def test_check_overlap_counts_propensities_near_one_too():
    e = np.r_[np.full(90, 0.5), np.full(10, 0.999)]  # 10% above 1 - clip, none below
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        share = check_overlap(e)
    assert share == pytest.approx(0.10)
    assert any(issubclass(w.category, OverlapWarning) for w in caught)
    # and symmetric: 1 - e gives the same share
    assert check_overlap(1 - e) == pytest.approx(0.10)
