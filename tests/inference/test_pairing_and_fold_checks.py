"""Inputs paired by position must carry agreeing pandas indexes, whatever ``X`` is, and
every cross-fitting fold model must train on each arm and early-stop on rows of its
own: otherwise an untrained network's predictions enter the estimate, silently."""
import numpy as np
import pandas as pd
import pytest
import torch

from causalnn import TARNet
from causalnn.engine import Trainer, make_generator
from causalnn.inference import aipw, estimate_average_effect, tmle
from causalnn.nets import MemberLinear, init_weights

SMALL = dict(representation_layers=(8,), head_layers=(8,), max_epochs=3, patience=None,
             random_state=0)


def _data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    t = (np.arange(n) % 2).astype(float)
    y = X[:, 0] + 2 * t + 0.1 * rng.normal(size=n)
    return X, y, t


def _shuffled_series(y, t, seed=1):
    """``y`` and ``t`` as Series over the same labels, ``y``'s in another order: paired
    by label they are the data; paired by position, another data set."""
    labels = np.arange(len(y)) * 10
    ys = pd.Series(y, index=labels)
    ts = pd.Series(t, index=labels).sample(frac=1.0, random_state=seed)
    return ys, ts


@pytest.mark.parametrize("call", ["fit", "ate_inference", "fit_many", "score"])
def test_numpy_X_with_y_and_treatment_series_sorted_apart_is_refused(call):
    X, y, t = _data()
    ys, ts = _shuffled_series(y, t)
    est = TARNet(**SMALL)
    # fit_many compares its outcomes with the treatment, the others the other way
    with pytest.raises(ValueError, match=r"(treatment|Y\[0\]) is a pandas Series whose "
                                         r"index has the same labels as (y|treatment)"
                                         r"\.index in another order"):
        if call == "fit":
            est.fit(X, ys, treatment=ts)
        elif call == "ate_inference":
            est.ate_inference(X, ys, treatment=ts, cv=2)
        elif call == "fit_many":
            est.fit_many(X, [ys, ys], treatment=ts)
        else:
            est.fit(X, y, treatment=t).score(X, ys, treatment=ts)


def test_numpy_X_with_series_in_one_order_is_accepted():
    X, y, t = _data()
    ys, ts = _shuffled_series(y, t)
    ts = ts.sort_index()  # now the same order as y: rows pair as intended
    by_label = TARNet(**SMALL).fit(X, ys, treatment=ts).ate(X)
    plain = TARNet(**SMALL).fit(X, y, treatment=t).ate(X)
    assert by_label == plain


def _nuisances(n=200, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    e = 1 / (1 + np.exp(-x))
    t = (rng.uniform(size=n) < e).astype(float)
    mu0, mu1 = x, x + 2
    y = np.where(t == 1, mu1, mu0) + rng.normal(size=n)
    return y, t, mu0, mu1, e, x


@pytest.mark.parametrize("codes", [(1, 2), (-1, 1), (0, 5)])
def test_average_effect_functions_refuse_a_treatment_not_coded_0_1(codes):
    y, t, mu0, mu1, e, _ = _nuisances()
    coded = np.where(t == 1, codes[1], codes[0]).astype(float)
    with pytest.raises(ValueError, match=r"treatment must be binary \(0/1\)"):
        estimate_average_effect(y, coded, mu0, mu1, e)
    for function in (aipw, tmle):
        with pytest.raises(ValueError, match=r"treatment must be binary \(0/1\)"):
            function(y, coded, mu0, mu1, e)


def test_estimate_average_effect_refuses_propensity_scores_outside_0_1():
    y, t, mu0, mu1, e, x = _nuisances()
    with pytest.raises(ValueError, match=r"propensity must hold probabilities in \[0, 1\]"):
        estimate_average_effect(y, t, mu0, mu1, x)  # the logit, not the probability
    # exactly 0 and 1 are probabilities: clipping handles them, as before
    edge = e.copy()
    edge[:2] = (0.0, 1.0)
    assert estimate_average_effect(y, t, mu0, mu1, edge).n_clipped >= 2


def test_estimate_average_effect_refuses_series_whose_indexes_disagree():
    y, t, mu0, mu1, e, _ = _nuisances()
    labels = np.arange(len(y))
    ys = pd.Series(y, index=labels)
    mu0s = pd.Series(mu0, index=labels).sort_values()  # same labels, another order
    with pytest.raises(ValueError, match="mu0 is a pandas Series whose index has the same "
                                         "labels as y.index in another order"):
        estimate_average_effect(ys, t, mu0s, mu1, e)
    aligned = estimate_average_effect(ys, t, mu0s.sort_index(), mu1, e)
    assert aligned.point_estimate == estimate_average_effect(y, t, mu0, mu1, e).point_estimate


def test_a_trimmed_estimate_is_labelled_as_such():
    y, t, mu0, mu1, e, _ = _nuisances()
    assert list(estimate_average_effect(y, t, mu0, mu1, e).summary_frame().index) == [
        "ATE (aipw)"]
    trimmed = estimate_average_effect(y, t, mu0, mu1, e, trim=0.1)
    assert trimmed.n_trimmed > 0
    assert list(trimmed.summary_frame().index) == ["ATE (aipw, trimmed at 0.1)"]


@pytest.mark.parametrize("member_validation", ["shared", "own"])
def test_a_member_without_validation_weight_is_refused(member_validation):
    """A cross-fitting fold model whose validation rows all lie in its own held-out fold
    would see a validation loss of 0 at every epoch and keep its first epoch's weights."""
    n = 40

    def loss(module, batch):
        member_loss = ((module(batch["X"]).squeeze(-1) - batch["y"]) ** 2).mean(-1)
        return {"loss": member_loss.sum(), "member_loss": member_loss}

    trainer = Trainer(loss_fn=loss, n_members=2, member_validation=member_validation,
                      max_epochs=2, validation_fraction=0.3, generator=make_generator(0))
    weight = torch.ones(2, n)
    weight[1] = 0.0  # member 1 may use no row at all, so none of its validation rows
    module = init_weights(MemberLinear(2, 1, 1), torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"members \[1\] have no validation row"):
        trainer.fit(module, {"X": torch.randn(n, 1), "y": torch.zeros(n)},
                    member_data={"member_weight": weight})


def test_the_arm_check_counts_the_validation_splits_row_per_arm():
    """With 2 treated rows and validation_fraction=0.2, the split still holds out one
    treated row (at least one per arm): with cv=2, one fold model would train on no
    treated row at all."""
    X, y, t = _data(100)
    t = np.zeros(100)
    t[[3, 50]] = 1
    with pytest.raises(ValueError, match="cv=2 folds need more rows in treatment arm 1"):
        TARNet(**SMALL, validation_fraction=0.2).ate_inference(X, y, treatment=t, cv=2)
