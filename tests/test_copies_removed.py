"""The block-wise and in-place paths that keep large tables from being copied give the
numbers of the plain computations they replaced, to the bit."""
import numpy as np
import pytest
import torch

from causalnn import TARNet
from causalnn._base._scaling import all_rows, apply_scaling, column_scaling
from causalnn.engine import Trainer, make_generator, predict_in_batches

from conftest import SMALL, simulate


class MemberMLP(torch.nn.Module):
    """Two members of y = w x + b, for the engine's member axis."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(2, 1))

    def forward(self, x):
        return self.weight * x[None, :, 0]  # (members, rows)


def test_float32_scaling_by_blocks_is_the_rounded_float64_scaling():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(70_000, 3)) * [1.0, 1e5, 1e-4] + [0.0, 3e6, 1.0]  # > one block
    offset, scale = column_scaling(X)
    expected = ((X - offset) / scale).astype(np.float32)
    got = apply_scaling(X, offset, scale, dtype=np.float32)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, expected)
    far = X[:2].copy()
    far[:, 2] = 1e40  # finite in float64, inf in float32
    with pytest.raises(ValueError, match=r"X columns \[2\] hold values"):
        apply_scaling(far, offset, scale, dtype=np.float32)


def test_all_rows_by_blocks_is_numpys_all():
    X = np.zeros((50_000, 4))
    X[:, 1] = 1.0
    X[40_000, 2] = 0.5  # in a later block than the first
    X[:, 3] = np.arange(50_000) % 2
    np.testing.assert_array_equal(all_rows(X, lambda b: (b == 0) | (b == 1)),
                                  [True, True, False, True])


@pytest.mark.parametrize("batch_size", [1, 7, 64, 1000])
def test_chunked_prediction_fills_one_result_in_row_order(batch_size):
    x = torch.arange(300, dtype=torch.float32).reshape(100, 3)
    out = predict_in_batches(lambda v: v * 2, [x], device=torch.device("cpu"),
                             batch_size=batch_size)
    np.testing.assert_array_equal(out, x.numpy() * 2)
    members = predict_in_batches(lambda v: torch.stack([v[:, 0], -v[:, 0]]), [x],
                                 device=torch.device("cpu"), batch_size=batch_size,
                                 row_dim=1)
    np.testing.assert_array_equal(members, np.stack([x[:, 0].numpy(), -x[:, 0].numpy()]))
    empty = predict_in_batches(lambda v: v.sum(1), [x[:0]], device=torch.device("cpu"),
                               batch_size=batch_size)
    assert empty.shape == (0,)


@pytest.mark.parametrize("outcome", ["continuous", "binary"])
def test_effects_computed_in_place_match_the_formula(outcome):
    X, Y, T, _ = simulate(n=120, d=3)
    y = (Y > np.median(Y)).astype(float) if outcome == "binary" else Y * 1e3 + 1e6
    est = TARNet(**{**SMALL, "max_epochs": 2}, random_state=0).fit(X, y, treatment=T)
    eta0, eta1 = est._predict_outcome(est._validate_X(X), np.zeros(120), np.ones(120))
    kept = eta0.copy(), eta1.copy()
    if outcome == "binary":
        def sigmoid(v):
            return 1.0 / (1.0 + np.exp(-np.asarray(v, dtype=np.float64)))
        expected = sigmoid(eta1) - sigmoid(eta0)
    else:
        expected = est.y_scale_ * (np.asarray(eta1, np.float64) - np.asarray(eta0, np.float64))
    np.testing.assert_array_equal(est.effect(X), expected.mean(axis=0))  # one member
    # the in-place arithmetic works on float64 copies, never on the predictions
    assert eta0.dtype == np.float32
    est._effect_from_eta(eta0, eta1)
    est._to_outcome_scale(eta0)
    np.testing.assert_array_equal(eta0, kept[0])
    np.testing.assert_array_equal(eta1, kept[1])


def test_row_weights_are_kept_only_when_asked_for():
    n = 40
    data = {"x": torch.arange(n, dtype=torch.float32)[:, None]}

    def loss(module, batch):
        return {"loss": (module(batch["x"]) ** 2).mean()}

    kept = Trainer(loss_fn=loss, max_epochs=1, batch_size=8, patience=None,
                   generator=make_generator(0))
    kept.fit(torch.nn.Linear(1, 1), data)
    assert kept.train_row_weight.shape == kept.valid_row_weight.shape == (1, n)
    assert torch.equal(kept.train_row_weight + kept.valid_row_weight, torch.ones(1, n))
    dropped = Trainer(loss_fn=loss, max_epochs=1, batch_size=8, patience=None,
                      generator=make_generator(0), row_weights=False)
    dropped.fit(torch.nn.Linear(1, 1), data)
    for name in ("train_row_weight", "valid_row_weight"):
        with pytest.raises(AttributeError, match="row_weights=False"):
            getattr(dropped, name)
    # own validation splits build them anyway (from their masks): still readable
    def member_loss(module, batch):
        out = module(batch["x"])
        per_member = (batch.get("member_weight", torch.ones_like(out)) * out ** 2).mean(1)
        return {"loss": per_member.sum(), "member_loss": per_member}

    own = Trainer(loss_fn=member_loss, max_epochs=1, batch_size=8, patience=None, n_members=2,
                  member_validation="own", generator=make_generator(0), row_weights=False)
    own.fit(MemberMLP(), data)
    assert own.valid_row_weight.shape == (2, n)


def test_read_only_pandas_values_reach_torch_without_its_warning():
    # pandas' copy-on-write hands out read-only views, kept as they are by the input
    # checks: wrapping one in a tensor makes torch warn (once per process) that writes
    # would be undefined; the engine copies those instead
    import warnings

    import pandas as pd

    from causalnn import Deconfounder
    from causalnn.datasets import make_multi_cause
    X, Y, T, _ = simulate(n=120, d=3)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    binary = pd.Series((Y > np.median(Y)).astype(float))
    data = make_multi_cause(120, 6, 2, random_state=0)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="The given NumPy array is not writable")
        TARNet(**{**SMALL, "max_epochs": 2}, random_state=0).fit(
            frame, binary, treatment=pd.Series(T))
        Deconfounder(factor_model="ppca", n_factors=2, random_state=0).fit(
            None, pd.Series(data.y), treatment=pd.DataFrame(data.treatment))
