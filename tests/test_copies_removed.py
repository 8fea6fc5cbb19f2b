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


def _whole_design_partial_f(target, exogenous, instrument):
    """The first-stage strength from the whole design, as lstsq computes it."""
    n, q = len(target), instrument.shape[1]
    full = np.column_stack([np.ones(n), exogenous, instrument])

    def rss_and_rank(design):
        coef, _, rank, _ = np.linalg.lstsq(design, target, rcond=None)
        return ((target - design @ coef) ** 2).sum(axis=0), rank

    (rss_r, rank_r), (rss_f, rank_f) = rss_and_rank(full[:, :-q]), rss_and_rank(full)
    q, dof = max(rank_f - rank_r, 1), n - rank_f
    return ((rss_r - rss_f) / q) / (rss_f / dof), 1.0 - rss_f / rss_r, rank_f - rank_r


@pytest.mark.parametrize("design", ["full rank", "duplicate column", "zero column",
                                    "instrument inside X"])
def test_first_stage_strength_by_row_blocks_is_the_whole_design_regression(design):
    # DeepIV's partial F reads the design in blocks of rows (QR of the stacked blocks'
    # R factors): the numbers and the rank cut-off are those of lstsq on the whole
    # design, including designs lstsq finds rank-deficient
    from causalnn.estimators.iv._deepiv import _partial_f
    rng = np.random.default_rng(3)
    n = 2_000
    X, Z = rng.normal(size=(n, 4)), rng.normal(size=(n, 2))
    if design == "duplicate column":
        X[:, 3] = X[:, 0]
    elif design == "zero column":  # a constant covariate, once centred
        X[:, 1] = 0.0
    elif design == "instrument inside X":  # the instrument adds no column's worth
        Z[:, 1] = X[:, 2]
    T = X @ [1.0, -0.5, 0.2, 0.0] + Z @ [0.08, 0.0] + rng.normal(size=n)
    T = np.column_stack([T, T + rng.normal(size=n)])
    f_whole, r2_whole, q = _whole_design_partial_f(T, X, Z)
    f_blocks, r2_blocks = _partial_f(T, X, Z, block_rows=97)  # 21 blocks, a short last
    np.testing.assert_allclose(f_blocks, f_whole, rtol=1e-9)
    np.testing.assert_allclose(r2_blocks, r2_whole, rtol=1e-9)
    assert q == (1 if design == "instrument inside X" else 2)


def test_deepiv_standardises_its_own_copy_of_X_never_the_callers():
    # DeepIV standardises X in place in the base's scaled copy (a second pass of
    # scaling without a second copy): the caller's array, read-only or not, is never
    # written, and the effects are those of the two passes written out
    from causalnn import DeepIV
    from causalnn.datasets import make_linear_iv
    data = make_linear_iv(300, random_state=0)
    X = np.column_stack([data.X, 1e4 + 50 * data.X[:, 0]])  # a column in other units
    kept = X.copy()
    for scale_features in (True, False):
        est = DeepIV(first_stage_layers=(8,), outcome_layers=(8,), n_components=2,
                     max_epochs=2, random_state=0, device="cpu")
        est.scale_features = scale_features  # not a parameter of DeepIV: the class's
        est.fit(X, data.y, treatment=data.treatment, instrument=data.instrument)
        X.setflags(write=False)
        tau = est.effect(X, T0=0.0, T1=1.0)
        est.marginal_effect(X, T=0.5)
        est.first_stage_log_likelihood(X, data.treatment, data.instrument)
        est.causal_validation_loss(X, data.y, data.instrument)
        X.setflags(write=True)
        np.testing.assert_array_equal(X, kept)
        twice = apply_scaling(apply_scaling(X, est.X_offset_, est.X_scale_),
                              est.x_mean_, est.x_scale_)
        h = [est.module_(torch.cat([torch.full((len(X), 1), level, dtype=torch.float64),
                                    torch.as_tensor(twice)], 1))[:, 0].detach().numpy()
             for level in ((0.0 - est.t_mean_[0]) / est.t_scale_[0],
                           (1.0 - est.t_mean_[0]) / est.t_scale_[0])]
        np.testing.assert_array_equal(tau, est.y_scale_ * (h[1] - h[0]))


@pytest.mark.parametrize("outcome_model", ["linear", "neural"])
def test_deconfounder_cause_vectors_for_all_rows_are_not_expanded(outcome_model):
    # a number or one cause vector for every row is a broadcast view, not n copies:
    # the effects are those of the explicit (n, n_causes) matrices
    from causalnn import Deconfounder
    from causalnn.datasets import make_multi_cause
    data = make_multi_cause(200, 8, 2, random_state=0)
    X = np.random.default_rng(0).normal(size=(200, 2))
    kw = ({"outcome_model": "neural", "outcome_layers": (8,), "max_epochs": 3}
          if outcome_model == "neural" else {})
    est = Deconfounder(factor_model="ppca", n_factors=2, predictive_check=False,
                       random_state=0, **kw).fit(X, data.y, treatment=data.treatment)
    vector = np.linspace(0.0, 1.0, 8)
    for T0, T1 in ((0.0, 1.0), (0.0, vector), (vector, np.ones(8))):
        expanded = [np.broadcast_to(v, (200, 8)).copy() for v in (T0, T1)]
        tau = est.effect(X, T0=T0, T1=T1)
        tau[0] += 0.0  # a writable array of the caller's own
        explicit = est.effect(X, T0=expanded[0], T1=expanded[1])
        if outcome_model == "neural":
            np.testing.assert_array_equal(tau, explicit)
        else:  # one row's product for all rows: the same to round-off
            np.testing.assert_allclose(tau, explicit, rtol=1e-14, atol=1e-14)
            assert np.all(tau == tau[0])
    np.testing.assert_array_equal(est.predict_outcome(X, vector),
                                  est.predict_outcome(X, np.tile(vector, (200, 1))))


@pytest.mark.parametrize("columns", ["all continuous", "mixed"])
def test_cevae_scales_its_training_features_straight_to_float32(columns):
    # CEVAE hands the engine float32 features scaled block by block: the rounded values
    # of the float64 scaling, without a float64 copy of the table in between
    from causalnn import CEVAE
    X, Y, T, _ = simulate(n=150, d=3)
    if columns == "mixed":
        X = np.column_stack([X, (X[:, 0] > 0).astype(float)])
    est = CEVAE(hidden_layers=(8,), latent_dim=2, n_samples=2, max_epochs=1,
                random_state=0, device="cpu").fit(X, Y, treatment=T)
    Xb = est._validate_X(X)
    continuous = est.continuous_columns_
    np.testing.assert_array_equal(continuous, np.arange(3))
    np.testing.assert_array_equal(
        np.column_stack(column_scaling(Xb[:, continuous])), np.column_stack(
            [est.x_mean_, est.x_scale_]))
    by_hand = Xb.copy()
    by_hand[:, continuous] = (Xb[:, continuous] - est.x_mean_) / est.x_scale_
    np.testing.assert_array_equal(est._scale_X(Xb), by_hand)
    np.testing.assert_array_equal(est._scale_X(Xb, np.float32), by_hand.astype(np.float32))


def test_column_statistics_are_numpys_on_the_float64_copy_in_any_layout():
    # summed block by block in float64 without the float64 copy (or NumPy's temporary
    # of the deviations): the statistics are NumPy's mean and std of the C-ordered
    # float64 copy, to the bit, whatever the dtype and memory order of X, and X is
    # left as it was
    rng = np.random.default_rng(2)
    for n, d in [(5, 3), (8_193, 4), (70_001, 2), (30_000, 1), (3, 40)]:
        base = (rng.normal(size=(n, d)) * rng.uniform(0.1, 1e4, d)
                + rng.uniform(-1e5, 1e5, d))
        base[:, 0] = 7.25  # a constant column
        for dtype in (np.float32, np.float64):
            X = base.astype(dtype)
            copy = np.array(X, dtype=np.float64, order="C")
            expected = (copy.mean(axis=0), copy.std(axis=0))
            expected = (np.where(expected[1] > 0, expected[0], copy[0]),
                        np.where(expected[1] > 0, expected[1], 1.0))
            for layout in (X, np.asfortranarray(X), X[::-1][::-1], np.array(X[:, ::-1])[:, ::-1]):
                kept = layout.copy()
                offset, scale = column_scaling(layout)
                np.testing.assert_array_equal(offset, expected[0])
                np.testing.assert_array_equal(scale, expected[1])
                np.testing.assert_array_equal(layout, kept)
    beyond = np.array([[3e38], [-3e38], [1.0]], dtype=np.float32)  # squares overflow
    for got, expected in zip(column_scaling(beyond),
                             column_scaling(beyond.astype(np.float64))):
        np.testing.assert_array_equal(got, expected)


def test_a_float32_dataframe_fits_and_predicts_as_its_float64_copy():
    # a DataFrame of float32 columns is taken as a float32 array, not a float64 copy;
    # the numbers are those of the float64 copy, as for an array
    import pandas as pd
    X, Y, T, _ = simulate(n=150, d=3)
    X32 = np.array(X * [1.0, 100.0, 1e-3], dtype=np.float32)
    frame = pd.DataFrame(X32, columns=["a", "b", "c"])
    small = {**SMALL, "max_epochs": 2, "random_state": 0}
    a = TARNet(**small).fit(frame, Y, treatment=T)
    b = TARNet(**small).fit(pd.DataFrame(X32.astype(np.float64), columns=["a", "b", "c"]),
                            Y, treatment=T)
    np.testing.assert_array_equal(a.effect(frame), b.effect(frame.astype(np.float64)))
    np.testing.assert_array_equal(a.effect(frame[["c", "a", "b"]]), a.effect(X32))


@pytest.mark.parametrize("order", ["C", "F"])
def test_a_float32_X_fits_and_predicts_as_its_float64_copy(order):
    # the estimators take a C-ordered float32 X without upcasting it (a float64 copy
    # was one more table at fit and at every prediction); the numbers are those of
    # the float64 copy, and the user's array is left as it was
    from causalnn import CEVAE, DeepIV, Dragonnet
    from causalnn.datasets import make_linear_iv
    X, Y, T, _ = simulate(n=150, d=3)
    X32 = np.array(X * [1.0, 100.0, 1e-3], dtype=np.float32, order=order)
    kept = X32.copy()
    small = {**SMALL, "max_epochs": 2, "random_state": 0}
    for make in (lambda: TARNet(**small), lambda: Dragonnet(**small),
                 lambda: CEVAE(hidden_layers=(8,), latent_dim=2, n_samples=2,
                               max_epochs=2, random_state=0, device="cpu")):
        a = make().fit(X32, Y, treatment=T)
        b = make().fit(X32.astype(np.float64), Y, treatment=T)
        np.testing.assert_array_equal(a.effect(X32), b.effect(X32.astype(np.float64)))
        np.testing.assert_array_equal(a.effect(X32), b.effect(X32))
    iv = make_linear_iv(200, random_state=0)
    x32 = np.array(np.column_stack([iv.X, iv.X ** 2]), dtype=np.float32, order=order)
    fits = [DeepIV(first_stage_layers=(8,), outcome_layers=(8,), n_components=2,
                   max_epochs=2, random_state=0, device="cpu").fit(
        x, iv.y, treatment=iv.treatment, instrument=iv.instrument)
        for x in (x32, x32.astype(np.float64))]
    x64 = x32.astype(np.float64)
    np.testing.assert_array_equal(fits[0].effect(x32, T0=0.0, T1=0.5),
                                  fits[1].effect(x64, T0=0.0, T1=0.5))
    np.testing.assert_array_equal(X32, kept)


def test_statistics_of_some_columns_are_those_of_their_copy_and_errors_name_them():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(9_000, 5)) * [1.0, 1e3, 1.0, 1e-3, 5.0] + [0.0, 1e6, 2.0, 0.0, 0.0]
    X[:, 2] = 2.0  # constant
    for columns in ([0, 2, 4], [3], [1, 3]):
        for got, expected in zip(column_scaling(X, columns=columns),
                                 column_scaling(np.ascontiguousarray(X[:, columns]))):
            np.testing.assert_array_equal(got, expected)
    wide = X.copy()
    wide[::2, 3] = 1e308
    wide[1::2, 3] = -1e308
    with pytest.raises(ValueError, match=r"X: columns \[3\] span more"):
        column_scaling(wide, columns=[1, 3])


def test_a_vector_whose_squares_overflow_is_still_standardised():
    # a 1-d input is one column: its rare path (deviations scaled by their largest) ran
    # into a scalar it could not assign to
    offset, scale = column_scaling(np.array([1e300, -1e300, 3e300]))
    assert offset.shape == scale.shape == ()
    np.testing.assert_allclose([offset, scale], [1e300, np.std([1.0, -1.0, 3.0]) * 1e300])


def test_a_dataframe_fits_and_predicts_as_its_array_to_the_bit():
    # a DataFrame's values come as an F-ordered array, whose column sums NumPy used to
    # add pairwise (an array's, row after row): the scalings differed in the last bits
    import pandas as pd
    X, Y, T, _ = simulate(n=150, d=3)
    X = X * [1.0, 100.0, 1e-3] + [0.0, 1e4, 0.0]
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    small = {**SMALL, "max_epochs": 2, "random_state": 0}
    a = TARNet(**small).fit(frame, Y, treatment=T)
    b = TARNet(**small).fit(X, Y, treatment=T)
    np.testing.assert_array_equal(a.X_offset_, b.X_offset_)
    np.testing.assert_array_equal(a.X_scale_, b.X_scale_)
    np.testing.assert_array_equal(a.effect(frame), b.effect(X))


def test_a_nan_in_a_block_does_not_hide_another_columns_float32_overflow():
    far = np.array([[np.nan, 1e39], [0.0, 0.0]])
    with pytest.raises(ValueError, match=r"X columns \[1\] hold values"):
        apply_scaling(far, np.zeros(2), np.ones(2), dtype=np.float32)
