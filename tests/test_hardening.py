"""Issue 6: float64 effects that survive a large outcome offset, pandas indexes that
cannot silently misalign, and input errors that name the argument."""
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import NotFittedError

from causalnn import CFRNet, Dragonnet, TARNet
from causalnn._base._estimator import _standardize_outcome
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
    base, mean0, scale0 = _standardize_outcome(Y_GRID)
    shifted, mean1, scale1 = _standardize_outcome(Y_GRID + offset)
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
