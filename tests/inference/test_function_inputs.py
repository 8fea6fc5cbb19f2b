"""Bad input to the public inference and engine functions gets an error that names the
argument, never a silent number (found by the sixth audit round)."""
import numpy as np
import pandas as pd
import pytest
import torch

from causalnn.engine import stratified_split
from causalnn.inference import estimate_average_effect, member_interval, overlap_summary

E = np.array([0.2, 0.5, 0.7, 0.4])
T = np.array([0, 1, 1, 0])


def test_overlap_summary_refuses_what_it_would_misread():
    summary = overlap_summary(E, T)
    assert summary.loc["all", "n"] == 4
    e = pd.Series(E, index=[0, 1, 2, 3])
    t = pd.Series(T, index=[3, 2, 1, 0])  # the same labels in another order
    with pytest.raises(ValueError, match="index"):
        overlap_summary(e, t)
    with pytest.raises(ValueError, match="treatment"):
        overlap_summary(E, np.array([0, 2, 2, 0]))  # 0/2: a treated arm of n = 0
    with pytest.raises(ValueError, match="logits"):
        overlap_summary(np.array([-1.2, 0.3, 2.5, 0.1]), T)
    with pytest.raises(ValueError, match="clip"):
        overlap_summary(E, T, clip=0.7)
    with pytest.raises(ValueError, match="one length"):
        overlap_summary(E, T[:3])


def test_member_interval_refuses_a_bad_alpha_method_or_too_few_members():
    members = np.array([0.5, 1.0, 1.5, 2.0, 3.5])
    low, high = member_interval(members, alpha=0.05, method="normal")
    assert low < members.mean() < high
    with pytest.raises(ValueError, match="alpha"):
        member_interval(members, alpha=2, method="normal")
    with pytest.raises(ValueError, match="method"):
        member_interval(members, alpha=0.05, method="norma")  # was the percentile's
    with pytest.raises(ValueError, match="n_members >= 2"):
        member_interval(members[:1], alpha=0.05, method="normal")


def test_stratified_split_refuses_strata_of_another_length():
    with pytest.raises(ValueError, match="stratify"):
        stratified_split(10, 0.3, torch.Generator().manual_seed(0),
                         stratify=np.array([0, 1, 0, 1]))


def test_estimate_average_effect_refuses_an_unknown_outcome_and_no_rows():
    y, mu0, mu1 = np.array([1.0, 2.0, 2.5, 0.5]), np.zeros(4), np.ones(4)
    with pytest.raises(ValueError, match="outcome"):
        estimate_average_effect(y, T, mu0, mu1, E, outcome="Binary")
    with pytest.raises(ValueError, match="empty"):
        estimate_average_effect(*[np.array([])] * 5)
    with pytest.raises(ValueError, match="no rows"):
        estimate_average_effect(y, T, mu0, mu1, np.full(4, 0.005), trim=0.01)
    # one arm: the plug-in ATT was a NaN with a numpy RuntimeWarning
    for target in ("ate", "att", "atc"):
        with pytest.raises(ValueError, match="both arms"):
            estimate_average_effect(y, np.zeros(4), mu0, mu1, E, target=target,
                                    method="plugin")


def test_the_exported_estimators_check_their_inputs_as_estimate_average_effect_does():
    """aipw, tmle and plugin called directly: logits, a propensity of 0 or 1 (a
    division by zero), an empty arm and misaligned pandas are refused by name."""
    from causalnn.inference import aipw, plugin, tmle
    y, mu0, mu1 = np.array([1.0, 2.0, 2.5, 0.5]), np.zeros(4), np.ones(4)
    estimate, influence = aipw(y, T, mu0, mu1, E)
    assert np.isfinite(estimate) and influence.shape == (4,)
    for fn in (aipw, tmle):
        with pytest.raises(ValueError, match="logits"):
            fn(y, T, mu0, mu1, np.array([-1.2, 0.3, 2.5, 0.1]))
        with pytest.raises(ValueError, match="strictly between 0 and 1"):  # ATE
            fn(y, T, mu0, mu1, np.array([0.0, 0.5, 0.7, 0.4]))
        with pytest.raises(ValueError, match="index"):
            fn(pd.Series(y, index=[3, 2, 1, 0]), pd.Series(T), mu0, mu1, E)
        with pytest.raises(ValueError, match="propensity must have shape"):
            fn(y, T, mu0, mu1, E[:3])
    with pytest.raises(ValueError, match="outcome"):
        tmle(y, T, mu0, mu1, E, outcome="Binary")
    with pytest.raises(ValueError, match="both arms"):
        plugin(mu0, mu1, np.zeros(4), target="att")
    assert plugin(mu0, mu1, T) == 1.0


def test_the_exported_engine_helpers_refuse_degenerate_input_by_name():
    from causalnn.engine import bootstrap_counts, loadable_device, predict_in_batches
    from causalnn.inference import aggregate_repeats
    generator = torch.Generator().manual_seed(0)
    with pytest.raises(TypeError, match="AverageEffectResult"):
        aggregate_repeats([1, 2])
    with pytest.raises(ValueError, match="n_rows must be an int >= 1"):
        bootstrap_counts(2, 0, generator, "cpu")
    with pytest.raises(ValueError, match=r"strata must have shape \(5,\)"):
        bootstrap_counts(2, 5, generator, "cpu", strata=np.array([0, 1]))
    with pytest.raises(ValueError, match="rows must have shape"):
        bootstrap_counts(2, 5, generator, "cpu", rows=torch.ones(3, 5))
    counts = bootstrap_counts(3, 6, generator, "cpu", strata=np.array([0, 0, 0, 0, 1, 1]))
    assert counts[:, :4].sum(1).tolist() == [4] * 3 and counts[:, 4:].sum(1).tolist() == [2] * 3
    with pytest.raises(ValueError, match="fraction"):
        stratified_split(10, float("nan"), generator)
    assert loadable_device("cpu") == torch.device("cpu")
    # zero rows: an empty result with the output's other dimensions, not a torch error
    empty = predict_in_batches(lambda x: x * 2, [torch.zeros(0, 3)], device="cpu")
    assert empty.shape == (0, 3)


def test_check_overlap_counts_only_probabilities():
    from causalnn.inference import check_overlap
    assert check_overlap(E) == 0.0
    assert check_overlap(np.array([0.001, 0.5, 0.5, 0.5]), share=0.5) == 0.25
    for bad in ([0.5, np.nan], [0.5, 1.7, -3.0]):  # NaN was counted as inside
        with pytest.raises(ValueError, match="propensity must hold probabilities"):
            check_overlap(np.array(bad))
    with pytest.raises(ValueError, match="propensity holds no rows"):
        check_overlap(np.array([]))  # was a NaN share and two RuntimeWarnings
    with pytest.raises(ValueError, match="propensity holds no rows"):
        overlap_summary(np.array([]), np.array([]))


@pytest.mark.parametrize("method", ["normal", "percentile"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_member_interval_refuses_non_finite_members(method, bad):
    members = np.array([[bad, 1.0], [2.0, 3.0], [1.0, 2.0]])
    with pytest.raises(ValueError, match="members must be finite"):
        member_interval(members, alpha=0.05, method=method)
