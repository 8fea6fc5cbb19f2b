"""Dragonnet's final targeting step solves each member's estimating equation on that
member's own rows: its bootstrap resample, its cross-fitting folds, every row otherwise
(Shi, Blei & Veitch 2019, sec. 3: the targeting step uses the data the outcome model
was fitted on)."""
import numpy as np
import pytest

import causalnn.engine.trainer as trainer_module
from causalnn import Dragonnet

from conftest import SMALL, simulate

X, Y, T, _ = simulate(n=300, d=4)
YB = (Y > np.median(Y)).astype(float)
FAST = dict(SMALL, max_epochs=5)


def _record_engine_draws(monkeypatch):
    """The engine's bootstrap counts and validation splits, as it draws them."""
    draws = {"counts": [], "splits": []}
    counts, split = trainer_module.bootstrap_counts, trainer_module.stratified_split

    def recorded_counts(*args, **kwargs):
        drawn = counts(*args, **kwargs)
        draws["counts"].append(drawn.clone())
        return drawn

    def recorded_split(*args, **kwargs):
        drawn = split(*args, **kwargs)
        draws["splits"].append(drawn)
        return drawn

    monkeypatch.setattr(trainer_module, "bootstrap_counts", recorded_counts)
    monkeypatch.setattr(trainer_module, "stratified_split", recorded_split)
    return draws


def _bootstrap_samples(draws, n, n_members, member_validation):
    """Each member's sample, ``(n_members, n)``: its bootstrap counts on its training
    rows and weight 1 on its validation rows (which the engine does not resample).
    The shared split's counts are drawn for the fit's device: copied to the CPU here."""
    (counts,) = draws["counts"]
    counts = counts.cpu()
    weight = np.zeros((n_members, n))
    if member_validation == "shared":
        ((train, valid),) = draws["splits"]
        weight[:, train.numpy()] = counts.numpy()  # counts over the sorted train rows
        weight[:, valid.numpy()] = 1.0
    else:  # one split per member, counts over all rows (0 on its validation rows)
        weight[:] = counts.numpy()
        for m, (_, valid) in enumerate(draws["splits"]):
            weight[m, valid.numpy()] = 1.0
    return weight


def _targeting_terms(est, y):
    """Per member: clever covariate H, unfluctuated linear predictor of the received
    arm, and the outcome on the training scale."""
    out = est._heads_and_propensity_logit(est._validate_X(X))
    g = est._propensity_from_logit(out[..., 2])
    h = T / g - (1 - T) / (1 - g)
    eta = np.where(T == 1, out[..., 1], out[..., 0])
    if est.outcome_type_ == "continuous":
        y = (y - est.y_mean_) / est.y_scale_
    return h, eta, y


def _score(y, eta, h, eps, weight, binary):
    """``sum_i w_i H_i (y_i - Q~_i)`` and its derivative's size ``sum_i w_i H_i^2 q'``:
    the float32 storage of ``eps`` leaves the score at most one spacing of ``eps``
    times that derivative from 0."""
    fitted = eta + eps * h
    slope = np.ones_like(fitted)
    if binary:
        fitted = 1.0 / (1.0 + np.exp(-fitted))
        slope = fitted * (1.0 - fitted)
    return np.sum(weight * h * (y - fitted)), np.sum(weight * h ** 2 * slope)


def _unweighted_epsilon(y, eta, h, binary):
    """The former rule: every row passed to fit, unweighted, for every member."""
    from causalnn.losses import fit_logistic_fluctuation
    if binary:
        return fit_logistic_fluctuation(y, 1.0 / (1.0 + np.exp(-eta)), h)
    return np.sum(h * (y - eta)) / np.sum(h ** 2)


@pytest.mark.parametrize("member_validation, outcome", [
    ("shared", "continuous"), ("own", "continuous"), ("shared", "binary")])
def test_bootstrap_members_solve_their_equation_on_their_own_resample(
        monkeypatch, member_validation, outcome):
    """With bootstrap=True, member m's epsilon solves sum_i w_mi H_i (y_i - Q~_i) = 0
    under its own bootstrap counts w_m, so its fluctuated estimate is the targeted
    estimate of its own resample; the all-rows rule leaves that equation unsolved."""
    binary = outcome == "binary"
    y_fit = YB if binary else Y
    draws = _record_engine_draws(monkeypatch)
    est = Dragonnet(**FAST, n_members=3, bootstrap=True,
                    member_validation=member_validation, random_state=0).fit(
        X, y_fit, treatment=T)
    weight = _bootstrap_samples(draws, len(X), 3, member_validation)
    assert np.all(weight.sum(axis=1) == len(X))  # a resample of the rows passed to fit
    h, eta, y = _targeting_terms(est, y_fit)
    for m in range(3):
        eps = est.epsilon_[m]
        score, slope = _score(y, eta[m], h[m], eps, weight[m], binary)
        tolerance = float(np.spacing(np.float32(eps))) * slope
        assert abs(score) <= tolerance
        # the former all-rows epsilon is far from solving this member's equation
        old = _unweighted_epsilon(y, eta[m], h[m], binary)
        old_score, _ = _score(y, eta[m], h[m], old, weight[m], binary)
        assert abs(old_score) > 100 * tolerance
    # the fitted diagnostic is each member's mean over its own resample
    np.testing.assert_allclose(est.influence_curve_mean_, 0.0, atol=1e-6)


@pytest.mark.parametrize("n_members, member_validation, outcome", [
    (1, "shared", "continuous"), (3, "shared", "continuous"), (3, "own", "continuous"),
    (1, "shared", "binary")])
def test_without_bootstrap_every_member_targets_every_row(
        n_members, member_validation, outcome):
    """bootstrap=False (shared or own validation rows): every member's epsilon is the
    minimiser over all rows passed to fit, unweighted, as before bootstrap members got
    their own rows (its own validation rows count: they are part of its data)."""
    binary = outcome == "binary"
    y_fit = YB if binary else Y
    est = Dragonnet(**FAST, n_members=n_members, member_validation=member_validation,
                    random_state=0).fit(X, y_fit, treatment=T)
    h, eta, y = _targeting_terms(est, y_fit)
    expected = [_unweighted_epsilon(y, eta[m], h[m], binary) for m in range(n_members)]
    # float32 storage: within half a spacing of the float64 minimiser
    np.testing.assert_allclose(np.atleast_1d(est.epsilon_), expected, rtol=1e-7)


def test_fit_many_bootstrap_members_target_their_own_dataset_and_resample(monkeypatch):
    """fit_many: each dataset's members target against their own outcomes, each on
    the resample the engine drew for it (one draw over all datasets' members)."""
    Ys = np.stack([Y, Y + X[:, 1]])
    draws = _record_engine_draws(monkeypatch)
    fits = Dragonnet(**FAST, n_members=2, bootstrap=True, random_state=0).fit_many(
        X, Ys, treatment=T)
    weight = _bootstrap_samples(draws, len(X), 4, "shared")
    for k, est in enumerate(fits):
        h, eta, y = _targeting_terms(est, Ys[k])
        for j in range(2):
            score, slope = _score(y, eta[j], h[j], est.epsilon_[j], weight[2 * k + j],
                                  False)
            assert abs(score) <= float(np.spacing(np.float32(est.epsilon_[j]))) * slope


def test_cross_fitting_fold_models_target_their_training_folds():
    """ate_inference's fold models (the hook sets _cross_fit_weight): member k solves
    its equation on the rows outside fold k, validation rows included."""
    fold = np.arange(len(X)) % 2
    mask = (fold[None, :] != np.arange(2)[:, None]).astype(float)
    est = Dragonnet(**FAST, n_members=2, random_state=0)
    est._cross_fit_weight = mask
    try:
        est.fit(X, Y, treatment=T)
    finally:
        del est._cross_fit_weight
    h, eta, y = _targeting_terms(est, Y)
    for k in range(2):
        score, slope = _score(y, eta[k], h[k], est.epsilon_[k], mask[k], False)
        tolerance = float(np.spacing(np.float32(est.epsilon_[k]))) * slope
        assert abs(score) <= tolerance
        # and not the equation over every row
        everywhere, _ = _score(y, eta[k], h[k], est.epsilon_[k], np.ones(len(X)), False)
        assert abs(everywhere) > 100 * tolerance
