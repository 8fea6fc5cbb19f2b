"""Issue 6: float64 effects that survive a large outcome offset, pandas indexes that
cannot silently misalign, and input errors that name the argument."""
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import NotFittedError

from causalnn import CFRNet, Dragonnet, TARNet
from causalnn._base._scaling import standardize_outcome
from causalnn.engine import Trainer

from conftest import SMALL, simulate

X, Y, T, _ = simulate(n=160, d=3)
# y on a 2^-20 grid: y + 1e9 is then exact in float64 (its spacing there is 2^-23), so
# any difference between the fits below comes from causalnn, not from the data
Y_GRID = np.round(Y * 2**20) / 2**20


def small(cls, **kw):
    return cls(**{**SMALL, "max_epochs": 4, "random_state": 0, **kw})


# ---- precision -----------------------------------------------------------------------
@pytest.mark.parametrize("offset", [1e6, 1e7, 1e8, 1e9])
def test_outcome_standardisation_is_exact_under_an_offset(offset):
    base, mean0, scale0 = standardize_outcome(Y_GRID)
    shifted, mean1, scale1 = standardize_outcome(Y_GRID + offset)
    np.testing.assert_array_equal(shifted.astype(np.float32), base.astype(np.float32))
    assert scale1 == scale0
    assert mean1 - offset == pytest.approx(mean0, abs=1e-6)


@pytest.mark.parametrize("cls", [TARNet, Dragonnet])
def test_effects_do_not_depend_on_an_outcome_offset(cls):
    reference = small(cls).fit(X, Y_GRID, treatment=T)
    tau0 = reference.effect(X)
    assert len(np.unique(tau0)) == len(X)
    for offset in (1e6, 1e7, 1e8, 1e9):
        est = small(cls).fit(X, Y_GRID + offset, treatment=T)
        np.testing.assert_allclose(est.effect(X), tau0, rtol=1e-6)
        assert est.ate(X) == pytest.approx(reference.ate(X), rel=1e-6)
        np.testing.assert_allclose(est.predict_outcome(X, 1) - offset,
                                   reference.predict_outcome(X, 1), rtol=0, atol=1e-6)
        if cls is Dragonnet:
            assert est.ate(X, targeted=True) == pytest.approx(
                reference.ate(X, targeted=True), rel=1e-6)


def test_public_outputs_are_float64():
    est = small(Dragonnet).fit(X, Y, treatment=T)
    for out in (est.effect(X), est.predict(X), est.predict_outcome(X, T),
                est.predict_propensity(X)):
        assert out.dtype == np.float64
    assert isinstance(est.ate(X), float) and isinstance(est.epsilon_, float)


# ---- pandas indexes ------------------------------------------------------------------
def _frame():
    return pd.DataFrame(X, columns=["a", "b", "c"], index=np.arange(100, 100 + len(X)))


@pytest.mark.parametrize("arg", ["y", "treatment"])
def test_a_series_with_another_index_order_is_refused(arg):
    frame = _frame()
    inputs = {"y": pd.Series(Y, index=frame.index),
              "treatment": pd.Series(T, index=frame.index)}
    inputs[arg] = inputs[arg].sample(frac=1.0, random_state=0)  # same labels, shuffled
    with pytest.raises(ValueError, match=rf"^{arg} is a pandas Series whose index has "
                                         r"the same labels as X.index in another order"):
        small(TARNet).fit(frame, inputs["y"], treatment=inputs["treatment"])
    # the message's remedy works and gives the aligned fit
    inputs[arg] = inputs[arg].reindex(frame.index)
    small(TARNet).fit(frame, inputs["y"], treatment=inputs["treatment"])


def test_matching_indexes_and_plain_arrays_are_accepted():
    frame = _frame()
    est = small(TARNet).fit(frame, pd.Series(Y, index=frame.index),
                            treatment=pd.Series(T, index=frame.index))
    same = small(TARNet).fit(frame, Y, treatment=T)
    np.testing.assert_array_equal(est.effect(frame), same.effect(frame))


def test_predict_time_series_are_checked_too():
    frame = _frame()
    est = small(TARNet).fit(frame, Y, treatment=T)
    other = pd.Series(T, index=np.arange(len(X)))  # labels differ from X.index
    with pytest.raises(ValueError, match="^treatment is a pandas Series whose index has "
                                         "labels that differ"):
        est.predict_outcome(frame, other)
    with pytest.raises(ValueError, match="^T1 is a pandas Series"):
        est.effect(frame, T1=other)
    with pytest.raises(ValueError, match="^y is a pandas Series"):
        est.score(frame, pd.Series(Y, index=np.arange(len(X))), treatment=T)


# ---- error messages ------------------------------------------------------------------
def test_misspelt_treatment_col_names_the_column():
    frame = _frame().assign(treated=T)
    with pytest.raises(ValueError, match=r"treatment_col='treatment' is not a column of "
                                         r"X \(columns: \['a', 'b', 'c', 'treated'\]"):
        small(TARNet, treatment_col="treatment").fit(frame, Y)


def test_duplicate_column_names_are_refused_at_fit():
    frame = pd.DataFrame(X, columns=["a", "b", "a"])
    with pytest.raises(ValueError, match=r"X has duplicate column names \['a'\]"):
        small(TARNet).fit(frame, Y, treatment=T)


@pytest.mark.parametrize("level", [1, 1.0, True, np.int64(1), np.float32(1), np.array(1),
                                   np.array(True)])
def test_scalar_bool_and_0d_levels(level):
    est = small(TARNet).fit(X, Y, treatment=T)
    expected = est.effect(X, T0=0, T1=1)
    zero = np.zeros_like(level) if isinstance(level, np.ndarray) else type(level)(0)
    np.testing.assert_array_equal(est.effect(X, T0=zero, T1=level), expected)
    np.testing.assert_array_equal(est.predict_outcome(X, level),
                                  est.predict_outcome(X, np.ones(len(X))))


def test_non_numeric_treatment_lists_its_values():
    t = np.where(T == 1, "yes", "no")
    with pytest.raises(TypeError, match=r"treatment must be numeric .* got ndarray with "
                                        r"values \['(yes|no)', '(yes|no)'\]"):
        small(TARNet).fit(X, Y, treatment=t)


def test_unfitted_predict_outcome_raises_not_fitted():
    with pytest.raises(NotFittedError):
        TARNet().predict_outcome(X, T)
    with pytest.raises(NotFittedError):
        TARNet().predict_outcome(X)


def test_negative_random_state_and_unsupported_device_are_named():
    with pytest.raises(ValueError, match=r"'random_state' parameter of TARNet must be an "
                                         r"int in the range \[0, 4294967295\]"):
        small(TARNet, random_state=-1).fit(X, Y, treatment=T)
    with pytest.raises(ValueError, match=r"device='mps' is not supported by TARNet"):
        small(TARNet, device="mps").fit(X, Y, treatment=T)
    with pytest.raises(ValueError, match=r"device='gpu' is not a valid torch device"):
        small(TARNet, device="gpu").fit(X, Y, treatment=T)


# ---- weight decay scope --------------------------------------------------------------
@pytest.mark.parametrize("cls", [CFRNet, Dragonnet])
def test_weight_decay_scope_heads_decays_only_the_outcome_heads(cls):
    # on the CPU: the test drives the module with a CPU Trainer of its own
    est = small(cls, weight_decay_scope="heads", device="cpu").fit(X, Y, treatment=T)
    module = est.module_

    def decay_only(mod, batch):  # a loss without gradient: only weight decay moves p
        return {"loss": sum(p.sum() for p in mod.parameters()) * 0.0}

    def moved_by_decay(weight_decay_filter):
        before = {n: p.detach().clone() for n, p in module.named_parameters()}
        Trainer(loss_fn=decay_only, weight_decay=1.0, learning_rate=1e-2, max_epochs=2,
                patience=None, validation_fraction=0.0,
                weight_decay_filter=weight_decay_filter).fit(
            module, {"X": torch.tensor(X, dtype=torch.float32)})
        return {n for n, p in module.named_parameters() if not torch.equal(p, before[n])}

    moved = moved_by_decay(est._weight_decay_filter())
    assert moved and all(n.startswith("net.heads.") and n.endswith(".weight")
                         for n in moved)
    # the default (None) keeps the engine's rule: every weight matrix
    assert small(cls)._weight_decay_filter() is None
    moved = moved_by_decay(None)
    assert any(n.startswith("net.representation.") for n in moved)
    assert all(n.endswith(".weight") for n in moved)


# ---- Dragonnet's propensity squeeze ----------------------------------------------------
def test_dragonnet_squeeze_keeps_the_gradient_of_extreme_propensities():
    est = small(Dragonnet, device="cpu").fit(X, Y, treatment=T)  # CPU batch below
    module = est.module_
    with torch.no_grad():
        module["net"].propensity.bias.fill_(12.0)  # g = sigmoid(~12): beyond any clip
        module["targeted"].epsilon.fill_(0.5)
    batch = {"X": torch.tensor(X, dtype=torch.float32),
             "y": torch.tensor(Y, dtype=torch.float32),
             "t": torch.tensor(T, dtype=torch.float32)}
    module.zero_grad()
    est._compute_loss(module, batch)["targeted"].backward()
    assert float(module["net"].propensity.bias.grad.abs()) > 0
    g = est.predict_propensity(X)
    assert g.min() >= est.propensity_clip and g.max() <= 1 - est.propensity_clip


@pytest.mark.parametrize("factor", [1e160, 1e-200])
def test_standardisation_survives_extreme_magnitudes(factor):
    """Squares of 1e160 overflow and of 1e-200 underflow in float64: the scales are
    then computed on the data divided by its largest deviation, not returned as inf
    or replaced by 1."""
    from causalnn._base._scaling import column_scaling
    y = np.array([1.0, -2.0, 0.5, 3.0])
    z, mean, scale = standardize_outcome(y * factor)
    z0, mean0, scale0 = standardize_outcome(y)
    np.testing.assert_allclose(z, z0, rtol=1e-12)
    assert scale == pytest.approx(scale0 * factor, rel=1e-12)
    assert mean == pytest.approx(mean0 * factor, rel=1e-12)
    offset, col_scale = column_scaling(np.column_stack([y * factor, y]))
    np.testing.assert_allclose(col_scale, [scale0 * factor, scale0], rtol=1e-12)
    np.testing.assert_allclose(offset, [mean0 * factor, mean0], rtol=1e-12)


def test_data_beyond_float64_standardisation_is_refused():
    from causalnn._base._scaling import column_scaling
    with pytest.raises(ValueError, match="y spans more than float64"):
        standardize_outcome(np.array([-1e308, 1e308, 0.0]))
    with pytest.raises(ValueError, match=r"X: columns \[1\] span more than float64"):
        column_scaling(np.column_stack([np.zeros(3), [-1e308, 1e308, 0.0]]))


@pytest.mark.parametrize("cls", [TARNet, CFRNet, Dragonnet])
def test_fit_leaves_torchs_global_random_stream_alone(cls):
    """Layers draw a default initialisation from torch's global generator before
    init_weights re-draws from random_state; a fit must not shift the user's own
    later draws."""
    X, Y, T, _ = simulate(n=100, seed=3)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    cls(**SMALL, random_state=0).fit(X, Y, treatment=T)
    torch.testing.assert_close(torch.rand(3), expected)


def test_a_failed_refit_leaves_the_estimator_unfitted():
    """A fit that fails after the scaling of the new data is set (here: diverging)
    must not leave that scaling beside the old network."""
    from causalnn.exceptions import TrainingDivergedError
    X, Y, T, _ = simulate(n=100, seed=4)
    est = TARNet(**SMALL, random_state=0).fit(X, Y, treatment=T)
    est.set_params(optimizer="sgd", learning_rate=1e6, max_epochs=20)
    X5 = np.column_stack([X, X[:, :1]])
    with pytest.raises(TrainingDivergedError):
        est.fit(X5, Y * 1e3, treatment=T)
    with pytest.raises(NotFittedError):
        est.effect(X5)
    assert not [k for k in vars(est) if k.endswith("_") and not k.startswith("_")]


def test_messages_point_to_the_right_remedy():
    X, Y, T, _ = simulate(n=60, seed=5)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])]).assign(t=T)
    with pytest.raises(ValueError, match="set the estimator's treatment_col='t'"):
        TARNet(**SMALL).fit(frame, Y, treatment="t")
    est = TARNet(**SMALL, random_state=0).fit(X, Y, treatment=T)
    with pytest.raises(TypeError, match="T1 must be a number or an array of numbers"):
        est.effect(X, T1="1")
    with pytest.raises(ValueError, match=r"pass predict_outcome\(X, treatment=t\)") as err:
        est.predict_outcome(X)
    assert "metadata routing" not in str(err.value)
    with pytest.raises(ValueError, match=r"pass score\(X, y, treatment=t\).*metadata"):
        est.score(X, Y)


def test_predicting_without_the_feature_names_seen_in_fit_warns():
    """Columns are then matched by position alone; sklearn warns in both directions."""
    X, Y, T, _ = simulate(n=60, seed=6)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    named = TARNet(**SMALL, random_state=0).fit(frame, Y, treatment=T)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        named.effect(X)
    plain = TARNet(**SMALL, random_state=0).fit(X, Y, treatment=T)
    with pytest.warns(UserWarning, match="X has feature names, but TARNet was fitted"):
        plain.effect(frame)
    np.testing.assert_array_equal(named.effect(frame), plain.effect(X))


# ---- values beyond what the float32 networks take --------------------------------------
def test_an_input_beyond_float32_after_scaling_is_refused_by_name():
    # a column whose training sd is 1e-30, queried at 1e10: 1e40 standard deviations,
    # inf in float32 and NaN effects before; one in range still predicts
    Xs = X.copy()
    Xs[:, 1] *= 1e-30
    est = small(TARNet).fit(Xs, Y, treatment=T)
    assert np.all(np.isfinite(est.effect(Xs)))
    far = Xs[:2].copy()
    far[:, 1] = 1e10
    for method in (est.effect, est.predict):
        with pytest.raises(ValueError, match=r"X columns \[1\] hold values beyond "
                                             r"3.4e\+38 once scaled \(in training"):
            method(far)
    far[:, 1] = 1e-20  # 1e10 standard deviations: far, but representable
    assert np.all(np.isfinite(est.effect(far)))


def test_without_scaling_fit_and_predict_refuse_what_float32_cannot_hold():
    # was "Training diverged ... try a smaller learning_rate" at fit and NaN at predict
    far = X.copy()
    far[:5, 0] = 1e39
    with pytest.raises(ValueError, match=r"X columns \[0\] hold values beyond .* as "
                                         r"given with scale_features=False"):
        small(TARNet, scale_features=False).fit(far, Y, treatment=T)
    est = small(TARNet, scale_features=False).fit(X, Y, treatment=T)
    with pytest.raises(ValueError, match=r"X columns \[0\] hold values beyond"):
        est.effect(far[:5])


def test_the_networks_range_is_checked_for_every_scaled_input():
    from causalnn import CEVAE, DeepIV, Deconfounder
    from causalnn.datasets import make_demand, make_multi_cause
    demand = make_demand(300, random_state=0)
    iv = DeepIV(max_epochs=1, n_components=2, random_state=0).fit(
        demand.X, demand.y, treatment=demand.treatment, instrument=demand.instrument)
    with pytest.raises(ValueError, match=r"instrument columns \[0\] hold values beyond 3.4e\+38 once scaled"):
        iv.causal_validation_loss(demand.X[:3], demand.y[:3],
                                  instrument=demand.instrument[:3] * 1e300)
    with pytest.raises(ValueError, match=r"T1 columns \[0\] hold values beyond 3.4e\+38 once scaled"):
        iv.effect(demand.X[:3], T0=demand.treatment[:3], T1=np.full(3, 1e300))
    Xs = X.copy()
    Xs[:, 2] *= 1e-30
    far = Xs[:2].copy()
    far[:, 2] = 1e10
    cevae = CEVAE(latent_dim=2, hidden_layers=(8,), max_epochs=2, random_state=0).fit(
        Xs, Y, treatment=T)
    with pytest.raises(ValueError, match=r"X columns \[2\] hold values beyond 3.4e\+38 once scaled"):
        cevae.effect(far)
    data = make_multi_cause(160, 5, 2, random_state=0)
    neural = Deconfounder(factor_model="ppca", n_factors=2, outcome_model="neural",
                          max_epochs=2, outcome_layers=(4,), random_state=0).fit(
        Xs, data.y, treatment=data.treatment)
    with pytest.raises(ValueError, match="the outcome model's inputs"):
        neural.effect(far, T0=data.treatment[:2], T1=1 - data.treatment[:2])


# ---- parameters that are numbers numpy cannot test --------------------------------------
@pytest.mark.parametrize("param, value", [
    ("random_state", 2**64), ("learning_rate", 10**400), ("batch_size", 10**400),
    ("learning_rate", __import__("fractions").Fraction(1, 1000)),
    ("weight_decay", __import__("decimal").Decimal("0.001")),
])
def test_numbers_outside_python_and_numpy_floats_are_refused_by_name(param, value):
    # were numpy's "ufunc 'isfinite' not supported" (an int beyond 2**64 or a Fraction)
    with pytest.raises(ValueError, match=f"The '{param}' parameter of TARNet must be"):
        small(TARNet, **{param: value}).fit(X, Y, treatment=T)


def test_numpy_scalars_and_large_ints_in_range_are_taken():
    est = small(TARNet, learning_rate=np.float32(1e-3), max_epochs=np.int64(2),
                batch_size=2**70).fit(X, Y, treatment=T)
    assert est.n_iter_ == 2


@pytest.mark.parametrize("seed", [-1, 2**32, 2**70, "a", 1.5, True])
def test_the_simulators_name_a_bad_random_state(seed):
    from causalnn.datasets import (make_demand, make_ihdp, make_multi_cause,
                                   make_proxy_confounded)
    for simulate_data in (make_demand, make_multi_cause, make_proxy_confounded,
                          make_ihdp):
        with pytest.raises(ValueError, match="random_state must be an int in "
                                             r"\[0, 2\*\*32 - 1\]"):
            simulate_data(random_state=seed)
