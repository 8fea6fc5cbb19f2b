"""DeepIV's dropout (the authors' released code): parameter checks, the authors' rate,
fits without dropout unchanged, masks seeded by ``random_state`` and drawn in training
steps only, and the ``Dropout`` layer of :class:`causalnn.nets.MLP` (closed-form
scaling, one mask per ensemble member)."""
import pickle
import warnings

import numpy as np
import pytest
import torch

from causalnn import DeepIV
from causalnn.datasets import make_demand
from causalnn.nets import MLP
from causalnn.nets.mlp import Dropout, dropout_masks_from

SMALL = dict(first_stage_layers=(16, 16), outcome_layers=(16, 16), n_components=3,
             max_epochs=3, patience=None, batch_size=50)


def _fit(data, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few epochs: convergence warnings
        return DeepIV(**{**SMALL, **params}).fit(
            data.X, data.y, treatment=data.treatment, instrument=data.instrument)


@pytest.fixture(scope="module")
def demand():
    return make_demand(200, rho=0.9, random_state=0)


@pytest.fixture(scope="module")
def dropout_fit(demand):
    return _fit(demand, dropout=0.3, random_state=3)


def _dropout_layers(module):
    return [layer for layer in module.modules() if isinstance(layer, Dropout)]


@pytest.mark.parametrize("dropout", [1.0, -0.1, 1.5, float("nan"), "half", True, None])
def test_dropout_parameter_is_checked_by_name(demand, dropout):
    with pytest.raises(ValueError, match=r"'dropout' parameter of DeepIV must be a float "
                                         r"in the range \[0, 1\) or one of \{'auto'\}"):
        _fit(demand, dropout=dropout)


def test_auto_rate_is_the_authors_formula_in_both_networks():
    """``min(1000 / (1000 + n), 0.5)`` for the n rows passed to fit: 0.4 for 1500 rows
    (0.5 from 1000 rows down), after every hidden layer of both networks."""
    data = make_demand(1500, rho=0.5, random_state=1)
    est = _fit(data, dropout="auto", first_stage_layers=(4, 4), outcome_layers=(4,),
               max_epochs=1, batch_size=500, random_state=0)
    assert est.dropout_ == 1000 / 2500
    first, outcome = est.first_stage_module_, est.module_
    assert [d.p for d in _dropout_layers(first)] == [0.4, 0.4]
    assert [d.p for d in _dropout_layers(outcome)] == [0.4]
    # each dropout layer follows an activation; the outcome network ends in a linear map
    for mlp in (first.trunk, outcome):
        for i, layer in enumerate(mlp):
            if isinstance(layer, Dropout):
                assert isinstance(mlp[i - 1], torch.nn.ReLU)
    assert isinstance(outcome[-1], torch.nn.Linear)
    small = make_demand(200, rho=0.5, random_state=1)
    assert _fit(small, dropout="auto", max_epochs=1, random_state=0).dropout_ == 0.5


# torch 2.7 changed the kernels of randint over ranges of 2**28 or more and of scalar
# bernoulli_: the same seed gives another stream before it (docs/index.md)
@pytest.mark.skipif(tuple(int(p) for p in torch.__version__.split(".")[:2]) < (2, 7),
                    reason="numbers printed on torch >= 2.7, whose random streams differ")
def test_dropout_zero_reproduces_the_fits_made_before_dropout_existed(demand):
    """Effects of the code before the dropout parameter (same data, settings and seeds,
    printed by it): ``dropout=0`` adds no layer and consumes no random number. The
    numbers were printed on the CPU: the fits run there also with a GPU present."""
    est = _fit(demand, dropout=0.0, random_state=3, device="cpu")
    assert not _dropout_layers(est.module_) and not _dropout_layers(
        est.first_stage_module_)
    np.testing.assert_allclose(
        est.effect(demand.X[:5], T0=10.0, T1=20.0),
        [-0.20464742771108754, 0.4376255017801428, 0.4912661533338774,
         0.6947614553497152, 0.6689179282548121], rtol=1e-7)
    assert est.causal_validation_loss(demand.X, demand.y, demand.instrument,
                                      n_draws=10) == pytest.approx(2.280925068551614,
                                                                   rel=1e-7)
    rng = np.random.RandomState(1)
    x, z = rng.randn(200, 2), rng.randn(200, 1)
    t = (z[:, 0] + x[:, 0] + rng.randn(200) > 0).astype(int) + (z[:, 0] > 1)
    y = t + x[:, 1] + rng.randn(200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        discrete = DeepIV(**SMALL, treatment_type="discrete", random_state=4,
                          device="cpu").fit(x, y, treatment=t, instrument=z)
    np.testing.assert_allclose(
        discrete.effect(x[:5], T0=0, T1=2),
        [1.6955827115007158, 0.38622658142378397, 1.5106945846886202,
         1.8649872187603593, 0.3114726168589091], rtol=1e-7)


def test_dropout_masks_follow_random_state(demand, dropout_fit):
    """Same seed: the same fit; another seed: another. At one seed, dropout changes the
    fit (its masks act in training), while torch's global random state is left as it
    was (the masks come from the fit's own stream)."""
    torch.manual_seed(12345)  # masks from torch's global stream would now differ
    state = torch.random.get_rng_state()
    again = _fit(demand, dropout=0.3, random_state=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    effect = dropout_fit.effect(demand.X, T0=10.0, T1=20.0)
    np.testing.assert_array_equal(again.effect(demand.X, T0=10.0, T1=20.0), effect)
    assert again.history_ == [{**r, "dur": a["dur"]}
                              for r, a in zip(dropout_fit.history_, again.history_)]
    other_seed = _fit(demand, dropout=0.3, random_state=4)
    assert np.abs(other_seed.effect(demand.X, T0=10.0, T1=20.0) - effect).max() > 1e-3
    without = _fit(demand, dropout=0.0, random_state=3)
    assert np.abs(without.effect(demand.X, T0=10.0, T1=20.0) - effect).max() > 1e-3
    assert (without.first_stage_history_[0]["train_loss"]
            != dropout_fit.first_stage_history_[0]["train_loss"])


def test_dropout_rates_share_splits_weights_and_held_out_losses(demand):
    """With a learning rate too small to move a weight, a fit is its initial weights:
    its held-out losses (eval mode, the same held-out rows and draws) are then the same
    at every dropout rate, while the training losses differ by the masks alone."""
    fits = [_fit(demand, dropout=rate, learning_rate=1e-300, max_epochs=2,
                 random_state=5) for rate in (0.0, 0.3, 0.6)]
    for fit in fits[1:]:
        for stage in ("first_stage_history_", "history_"):
            base, other = getattr(fits[0], stage), getattr(fit, stage)
            assert [r["valid_loss"] for r in other] == [r["valid_loss"] for r in base]
            assert other[0]["train_loss"] != base[0]["train_loss"]


def test_masks_are_drawn_in_training_steps_only(demand, monkeypatch):
    """Dropout acts in the training steps of its own stage; never in a held-out pass
    (early stopping, run without autograd), in the first stage while it draws the
    treatments for stage 2, or after fit."""
    calls = []
    forward = Dropout.forward

    def recording(layer, x):
        calls.append((layer, layer.training, torch.is_grad_enabled()))
        return forward(layer, x)

    monkeypatch.setattr(Dropout, "forward", recording)
    est = _fit(demand, dropout=0.3, random_state=0)
    first = set(_dropout_layers(est.first_stage_module_))
    outcome = set(_dropout_layers(est.module_))
    stage_two_begins = min(i for i, c in enumerate(calls) if c[0] in outcome)
    for i, (layer, training, grad) in enumerate(calls):
        if not grad:  # the held-out losses
            assert not training
        if layer in first and i > stage_two_begins:  # drawing treatments for stage 2
            assert not training
        if layer in outcome:
            assert training == grad
    assert {c[1] for c in calls if c[0] in first} == {True, False}
    assert {c[1] for c in calls if c[0] in outcome} == {True, False}
    after = len(calls)
    est.effect(demand.X)
    est.marginal_effect(demand.X, T=demand.treatment)
    est.causal_validation_loss(demand.X, demand.y, demand.instrument, n_draws=4)
    assert len(calls) > after and not any(training for _, training, _ in calls[after:])


def test_predictions_after_a_dropout_fit_are_deterministic(demand, dropout_fit):
    est = dropout_fit
    assert not est.module_.training and not est.first_stage_module_.training
    np.testing.assert_array_equal(est.effect(demand.X, T0=10.0, T1=20.0),
                                  est.effect(demand.X, T0=10.0, T1=20.0))
    np.testing.assert_array_equal(est.marginal_effect(demand.X, T=demand.treatment),
                                  est.marginal_effect(demand.X, T=demand.treatment))
    losses = [est.causal_validation_loss(demand.X, demand.y, demand.instrument,
                                         n_draws=10) for _ in range(2)]
    assert losses[0] == losses[1]


def test_dropout_fit_pickles_without_a_generator(demand, dropout_fit):
    layers = _dropout_layers(dropout_fit.module_) + _dropout_layers(
        dropout_fit.first_stage_module_)
    assert layers and all(layer.generator is None for layer in layers)
    loaded = pickle.loads(pickle.dumps(dropout_fit))
    np.testing.assert_array_equal(loaded.effect(demand.X, T0=10.0, T1=20.0),
                                  dropout_fit.effect(demand.X, T0=10.0, T1=20.0))
    assert loaded.dropout_ == 0.3 and not loaded.module_.training


def test_dropout_layer_zeroes_at_rate_p_and_keeps_the_mean():
    """Inverted dropout: a fraction p of zeros, survivors scaled by 1 / (1 - p), so the
    mean is kept; the identity in eval mode; the masks from the generator given."""
    layer = Dropout(0.3)
    x = torch.ones(200_000, dtype=torch.float64)
    with dropout_masks_from(layer, torch.Generator().manual_seed(0)):
        out = layer(x)
    assert layer.generator is None
    zeros = (out == 0).double().mean().item()
    assert abs(zeros - 0.3) < 4 * (0.3 * 0.7 / len(x)) ** 0.5
    assert torch.allclose(out[out != 0], torch.tensor(1 / 0.7, dtype=torch.float64))
    assert abs(out.mean().item() - 1.0) < 0.01
    with dropout_masks_from(layer, torch.Generator().manual_seed(0)):
        assert torch.equal(layer(x), out)
    assert torch.equal(layer.eval()(x), x)
    with pytest.raises(ValueError, match="dropout must be in"):
        MLP(3, (4,), dropout=1.0)


def test_mlp_without_dropout_has_no_dropout_layer():
    assert not _dropout_layers(MLP(3, (8, 8), out_features=1))
    assert len(MLP(3, (8, 8), out_features=1)) == 5
    assert len(MLP(3, (8, 8), out_features=1, dropout=0.2)) == 7


def test_every_ensemble_member_gets_its_own_mask():
    """Identical members (same weights) differ in training mode only through their
    masks: each member's hidden units are dropped independently."""
    members = 4
    mlp = MLP(3, (64,), out_features=1, activation="elu", n_members=members, dropout=0.5)
    with torch.no_grad():
        for linear in (mlp[0], mlp[3]):
            linear.weight.copy_(linear.weight[:1].expand(members, -1, -1))
            linear.bias.zero_()
    x = torch.randn(10, 3)
    with dropout_masks_from(mlp, torch.Generator().manual_seed(0)):
        hidden = torch.nn.Sequential(*list(mlp)[:3])(x)             # (members, 10, 64)
    assert hidden.shape == (members, 10, 64)
    dropped = hidden == 0
    for m in range(1, members):
        assert not torch.equal(dropped[m], dropped[0])
    assert abs(dropped.double().mean().item() - 0.5) < 0.05
    mlp.eval()
    out = mlp(x)
    for m in range(1, members):
        assert torch.equal(out[m], out[0])


@pytest.mark.cuda
def test_dropout_masks_on_cuda_follow_random_state(demand):
    """On a GPU the masks come from a CUDA generator seeded by random_state (the global
    CUDA stream, which nn.Dropout would use, is not touched)."""
    state = torch.cuda.get_rng_state()
    fits = [_fit(demand, dropout=0.3, random_state=3, device="cuda") for _ in range(2)]
    assert torch.equal(torch.cuda.get_rng_state(), state)
    np.testing.assert_array_equal(fits[0].effect(demand.X), fits[1].effect(demand.X))
