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


@pytest.mark.parametrize("reweight", [True, False])
def test_cfr_logs_the_ipm_and_reweights_arms(reweight, monkeypatch):
    """Shalit et al. (2017): u = mean(t), w_i = t_i / (2u) + (1 - t_i) / (2(1 - u)), so
    each arm carries half the total weight (n/2) whatever its size; without
    reweighting every row weighs 1."""
    est = CFRNet(**dict(SMALL, max_epochs=2), ipm="mmd_linear", reweight_sample=reweight,
                 random_state=0)
    seen = {}
    train = est._train_members

    def recording(module, data, generator, **kwargs):
        seen.update(data)
        return train(module, data, generator, **kwargs)

    monkeypatch.setattr(est, "_train_members", recording)
    est.fit(X, Y, treatment=T)
    assert {"train_factual", "train_ipm", "valid_ipm"} <= set(est.history_[0])
    u = T.mean()
    assert est.treated_fraction_ == pytest.approx(u)
    np.testing.assert_array_equal(seen["t"], T)
    expected = T / (2 * u) + (1 - T) / (2 * (1 - u)) if reweight else np.ones_like(T)
    np.testing.assert_allclose(np.asarray(seen["w"], dtype=float), expected, rtol=1e-12)
    if reweight:
        # the arms differ in size (143 of 300 treated), so the weights differ by arm
        assert abs(u - 0.5) > 0.01
        for arm in (0, 1):
            assert np.sum(expected[T == arm]) == pytest.approx(len(T) / 2)


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


@pytest.mark.parametrize("propensity_weight", [0.0, 2.5])
def test_dragonnet_loss_is_the_papers_combination_of_its_terms(propensity_weight):
    """Shi et al. (2019), eq. 2-3: loss = mean (Q(t, x) - y)^2
    + alpha * mean CE(t, g(x)) + beta * mean (Q(t, x) + eps H - y)^2, with
    H = t/g - (1-t)/(1-g) and g the squeezed propensity, computed here by hand from the
    network's outputs; d loss / d eps = -2 beta mean H (y - Q - eps H)."""
    est = Dragonnet(**dict(SMALL, max_epochs=2), propensity_weight=propensity_weight,
                    targeted_weight=0.7, random_state=0, device="cpu").fit(
                        X, Y, treatment=T)
    module = est.module_
    with torch.no_grad():
        module["targeted"].epsilon.fill_(0.5)  # any value: the identity holds for all
    x = torch.tensor(est._scale_features(X), dtype=torch.float32)
    y = torch.tensor((Y - Y.mean()) / Y.std(), dtype=torch.float32)  # any outcome
    t = torch.tensor(T, dtype=torch.float32)
    module.zero_grad()
    loss = est._compute_loss(module, {"X": x, "y": y, "t": t})["loss"]
    loss.backward()
    with torch.no_grad():
        out = module["net"](x)
        q = torch.where(t == 1, out.outcome[0, :, 1], out.outcome[0, :, 0])
        p = torch.sigmoid(out.propensity_logit[0])
        cross_entropy = -(t * torch.log(p) + (1 - t) * torch.log(1 - p)).mean()
        g = est.propensity_clip + (1 - 2 * est.propensity_clip) * p
        h = t / g - (1 - t) / (1 - g)
        expected = (((q - y) ** 2).mean() + propensity_weight * cross_entropy
                    + 0.7 * ((q + 0.5 * h - y) ** 2).mean())
        gradient = -2 * 0.7 * (h * (y - q - 0.5 * h)).mean()
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)
    assert float(module["targeted"].epsilon.grad.sum()) == pytest.approx(
        float(gradient), rel=1e-4)


def test_dragonnet_ensemble_propensity_is_the_members_mean():
    """An ensemble's propensity is the mean over members of each member's squeezed
    propensity c + (1 - 2c) sigmoid(logit), computed here from each member's head."""
    est = Dragonnet(**dict(SMALL, max_epochs=3), n_members=3, random_state=0,
                    device="cpu").fit(X, Y, treatment=T)
    with torch.no_grad():
        logit = est.module_["net"](torch.tensor(est._scale_features(X),
                                                dtype=torch.float32)).propensity_logit
    c = est.propensity_clip
    members = (c + (1 - 2 * c) * torch.sigmoid(logit.double())).numpy()
    assert members.shape == (3, len(X))
    assert np.ptp(members, axis=0).max() > 1e-2  # the members differ: the mean matters
    np.testing.assert_allclose(est.predict_propensity(X), members.mean(axis=0),
                               rtol=1e-5, atol=1e-6)
