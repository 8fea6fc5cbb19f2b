"""Model-specific behaviour of TARNet, CFR and Dragonnet against known answers."""
import numpy as np
import pytest
import torch

from causalnn import CFRNet, Dragonnet, TARNet
from causalnn.losses import mmd_linear

from conftest import SMALL, simulate

X, Y, T, TAU = simulate(n=300, d=4)


def test_tarnet_is_cfr_without_penalty():
    kw = dict(SMALL, random_state=4)
    tarnet = TARNet(**kw).fit(X, Y, treatment=T)
    cfr = CFRNet(alpha=0.0, **kw).fit(X, Y, treatment=T)
    np.testing.assert_array_equal(tarnet.effect(X), cfr.effect(X))


def test_cfr_logs_the_ipm_and_reweights_arms():
    est = CFRNet(**SMALL, ipm="mmd_linear", random_state=0).fit(X, Y, treatment=T)
    assert {"train_factual", "train_ipm", "valid_ipm"} <= set(est.history_[0])
    assert est.treated_fraction_ == pytest.approx(T.mean())


def test_penalty_reduces_representation_imbalance():
    """A large alpha makes the arms' representations closer than alpha = 0 does."""
    kw = dict(SMALL, max_epochs=30, ipm="mmd_linear", random_state=0)
    free = CFRNet(alpha=0.0, **kw).fit(X, Y, treatment=T)
    balanced = CFRNet(alpha=100.0, **kw).fit(X, Y, treatment=T)

    def imbalance(est):
        # inputs on the module's device (CUDA with device="auto" on a GPU machine),
        # scaled as the estimator scales them
        with torch.no_grad():
            x = torch.tensor(est._scale_features(X), dtype=torch.float32,
                             device=est.device_)
            phi = est.module_["net"](x).representation[0]  # the single member
            return float(mmd_linear(phi, torch.tensor(T, dtype=torch.float32,
                                                      device=est.device_)))
    assert imbalance(balanced) < 0.2 * imbalance(free)


def test_effects_follow_the_units_of_y():
    """Outcome standardisation is internal: y -> 1000 y + 5 scales effects by 1000."""
    kw = dict(SMALL, random_state=1)
    base = TARNet(**kw).fit(X, Y, treatment=T).effect(X)
    scaled = TARNet(**kw).fit(X, 1000 * Y + 5, treatment=T).effect(X)
    np.testing.assert_allclose(scaled, 1000 * base, rtol=1e-3, atol=1e-2)


@pytest.mark.parametrize("cls", [TARNet, Dragonnet], ids=lambda c: c.__name__)
def test_binary_outcome_effect_on_the_probability_scale(cls):
    Xb, yb, tb, tau = simulate(n=3000, d=3, seed=5, binary_outcome=True)
    est = cls(representation_layers=(32,), head_layers=(16,), max_epochs=40, patience=10,
              batch_size=128, random_state=0).fit(Xb, yb, treatment=tb)
    assert est.outcome_type_ == "binary"
    mu1 = est.predict_outcome(Xb, 1)
    assert np.all((mu1 > 0) & (mu1 < 1))
    # true ATE on the probability scale is about 0.18; tolerance 0.04
    assert abs(est.ate(Xb) - tau.mean()) < 0.04


def test_dragonnet_propensity_is_clipped_and_informative():
    est = Dragonnet(**dict(SMALL, max_epochs=30), random_state=0).fit(X, Y, treatment=T)
    g = est.predict_propensity(X)
    assert g.shape == (len(X),)
    assert g.min() >= est.propensity_clip and g.max() <= 1 - est.propensity_clip
    true = 1.0 / (1.0 + np.exp(-0.8 * X[:, 0]))
    assert np.corrcoef(g, true)[0, 1] > 0.8


def test_dragonnet_targeted_ate_is_the_fluctuated_plug_in():
    est = Dragonnet(**dict(SMALL, max_epochs=20), random_state=0).fit(X, Y, treatment=T)
    g = est.predict_propensity(X)
    mu0, mu1 = est.predict_outcome(X, 0), est.predict_outcome(X, 1)
    expected = np.mean(mu1 - mu0 + est.y_scale_ * est.epsilon_ * (1 / g + 1 / (1 - g)))
    assert est.ate(X, targeted=True) == pytest.approx(expected, rel=1e-5)
    assert est.ate(X) == pytest.approx(np.mean(mu1 - mu0), rel=1e-5)
    assert est.ate(X, T0=1, T1=0, targeted=True) == pytest.approx(-expected, rel=1e-5)


@pytest.mark.parametrize("n_members", [1, 3])
def test_dragonnet_solves_the_efficient_influence_curve_equation(n_members):
    """At its optimum in epsilon, mean_i H_i (y_i - Q~(t_i, x_i)) = 0 (Shi et al. 2019,
    Sec. 3). The fit ends with that targeting step, exactly, also with mini-batches and
    early stopping (epsilon trained by Adam alone only wandered around its optimum, and
    on IHDP often left the equation further from solved than epsilon = 0)."""
    est = Dragonnet(**dict(SMALL, max_epochs=20), n_members=n_members,
                    random_state=0).fit(X, Y, treatment=T)
    for m in range(n_members):
        eps = np.atleast_1d(est.epsilon_)[m]
        out = est._heads_and_propensity_logit(est._validate_X(X))[m]
        g = est._propensity_from_logit(out[:, 2])
        h = T / g - (1 - T) / (1 - g)
        eta = np.where(T == 1, out[:, 1], out[:, 0])
        residual = (Y - est.y_mean_) / est.y_scale_ - eta - eps * h
        # exact up to epsilon's float32 storage
        assert abs(np.mean(h * residual)) < 1e-6 * np.mean(np.abs(h * residual))
        # and it is the minimiser: a nearby epsilon fits the targeted term worse
        for step in (-1e-3, 1e-3):
            assert np.mean((residual - step * h) ** 2) > np.mean(residual ** 2)
    np.testing.assert_allclose(est.influence_curve_mean_, 0.0, atol=1e-6)


def test_dragonnet_binary_outcome_solves_the_logistic_equation():
    """For a binary outcome the fluctuation is logistic; the same targeting step solves
    sum_i H_i (y_i - expit(eta_i + eps H_i)) = 0 by Newton's method."""
    yb = (Y > np.median(Y)).astype(float)
    est = Dragonnet(**dict(SMALL, max_epochs=20), random_state=0).fit(X, yb, treatment=T)
    out = est._heads_and_propensity_logit(est._validate_X(X))[0]
    g = est._propensity_from_logit(out[:, 2])
    h = T / g - (1 - T) / (1 - g)
    eta = np.where(T == 1, out[:, 1], out[:, 0])
    fitted = 1.0 / (1.0 + np.exp(-(eta + est.epsilon_ * h)))
    assert abs(np.mean(h * (yb - fitted))) < 1e-6
    assert est.influence_curve_mean_ == pytest.approx(0.0, abs=1e-6)


def test_dragonnet_without_targeted_regularization_has_no_epsilon():
    est = Dragonnet(**SMALL, targeted_regularization=False, random_state=0).fit(
        X, Y, treatment=T)
    assert est.epsilon_ == 0.0 and "targeted" not in est.module_
    assert est.ate(X) == pytest.approx(float(np.mean(est.effect(X))))
    with pytest.raises(ValueError, match="targeted_regularization=True"):
        est.ate(X, targeted=True)


def test_dragonnet_targeted_ate_rejects_per_row_levels():
    est = Dragonnet(**SMALL, random_state=0).fit(X, Y, treatment=T)
    with pytest.raises(ValueError, match="scalar T0 and T1"):
        est.ate(X, T0=np.zeros(len(X)), targeted=True)
