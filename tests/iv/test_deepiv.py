"""DeepIV: recovery under confounding, the first stage's likelihood, the discrete path,
sklearn integration with the instrument routed, and bad input."""
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
import torch
from scipy import stats
from sklearn.base import clone
from sklearn.utils import estimator_checks
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from causalnn import DeepIV
from causalnn.datasets import (demand_structural, demand_test_grid, make_demand,
                               make_linear_iv)
from causalnn.datasets._demand import H_MEAN, H_STD, _raw_h
from causalnn.engine import Trainer, make_generator
from causalnn.exceptions import WeakInstrumentWarning
from causalnn.nets.distributions import MixtureDensityNetwork, sample

FAST = dict(first_stage_layers=(32, 32), outcome_layers=(32, 32), n_components=3,
            max_epochs=5, patience=None, batch_size=64)


def linear_iv(n=3000, seed=0, strength=1.0):
    """y = 2 t + x + 3 u + noise with t = strength z + x + 2 u: OLS is biased upward."""
    data = make_linear_iv(n, strength=strength, random_state=seed)
    return data.X, data.y, data.treatment, data.instrument


@pytest.fixture(scope="module")
def linear():
    return linear_iv(n=400)


@pytest.fixture(scope="module")
def fitted(linear):
    x, y, t, z = linear
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DeepIV(**FAST, random_state=0).fit(x, y, treatment=t, instrument=z)


def test_recovers_linear_structural_function_under_strong_confounding():
    x, y, t, z = linear_iv(n=3000, strength=2.0)
    ols_slope = np.linalg.lstsq(np.column_stack([np.ones_like(t), t, x]), y, rcond=None)[0][1]
    assert ols_slope > 2.6  # the confounding the instrument must undo (true slope 2)
    # One fit's slope of h moves with random_state by sd ~0.1 (2SLS on these rows: within
    # 0.01 of 2): the last SGD steps with one Monte-Carlo draw per row, which the held-out
    # loss cannot rank (a slope off by 0.3 raises it by ~0.005, its epoch-to-epoch noise).
    # So the check is on the mean of three fits, and each fit only has to be near.
    marginal, slopes = [], []
    for seed in range(3):
        est = DeepIV(first_stage_layers=(64, 64), outcome_layers=(64, 64), n_components=5,
                     max_epochs=60, patience=5, random_state=seed)
        est.fit(x, y, treatment=t, instrument=z)
        marginal.append(est.marginal_effect(x, T=t).mean())
        slopes.append(est.ate(x, T0=-2.0, T1=2.0) / 4)
        assert est.first_stage_f_statistic_ > 100 and 0 < est.first_stage_strength_ < 1
    # stated tolerance: the slope of h within 0.3 of 2 in the mean of the fits, averaged
    # over the rows (the marginal effect) and over the central range t in [-2, 2] (OLS is
    # off by 0.7); no fit off by more than 0.6
    assert abs(np.mean(marginal) - 2.0) < 0.3
    assert abs(np.mean(slopes) - 2.0) < 0.3
    assert np.max(np.abs(np.array(marginal + slopes) - 2.0)) < 0.6


def test_mdn_log_prob_matches_scipy_mixture():
    torch.manual_seed(0)
    mdn = MixtureDensityNetwork(3, 1, 4, (8,)).double()
    context = torch.randn(5, 3, dtype=torch.float64)
    t = torch.randn(5, 1, dtype=torch.float64)
    dist = mdn(context)
    w = dist.mixture_distribution.probs.detach().numpy()
    mu = dist.component_distribution.base_dist.loc.detach().numpy()[..., 0]
    sd = dist.component_distribution.base_dist.scale.detach().numpy()[..., 0]
    expected = np.log((w * stats.norm.pdf(t.numpy(), mu, sd)).sum(axis=1))
    np.testing.assert_allclose(dist.log_prob(t).detach().numpy(), expected, rtol=1e-10)


def test_mdn_fits_a_known_mixture():
    """t | z is a two-component mixture whose means move with z; the fitted MDN's
    held-out log-likelihood comes within 0.05 nats of the true density's."""
    rng = np.random.RandomState(0)
    n = 4000
    z = rng.uniform(-1, 1, n)
    left = rng.rand(n) < 0.3
    t = np.where(left, -2.0 + z, 1.0 + 2 * z) + np.where(left, 0.3, 0.5) * rng.randn(n)
    true_ll = np.log(0.3 * stats.norm.pdf(t, -2.0 + z, 0.3)
                     + 0.7 * stats.norm.pdf(t, 1.0 + 2 * z, 0.5))
    generator = make_generator(0)
    mdn = MixtureDensityNetwork(1, 1, 3, (32, 32)).double()
    trainer = Trainer(loss_fn=lambda m, b: {"loss": -m(b["z"]).log_prob(b["t"]).mean()},
                      learning_rate=3e-3, batch_size=128, max_epochs=60, patience=8,
                      generator=generator)
    data = {"z": torch.tensor(z[:, None]), "t": torch.tensor(t[:, None])}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(mdn, {k: v[:3000] for k, v in data.items()})
    with torch.no_grad():
        fitted_ll = mdn(data["z"][3000:]).log_prob(data["t"][3000:]).mean().item()
    assert abs(fitted_ll - true_ll[3000:].mean()) < 0.05
    # the seeded sampler draws from the fitted mixture: its moments within 4 s.e.
    with torch.no_grad():
        fitted = mdn(data["z"][:2])
        draws = sample(fitted, 20000, torch.Generator().manual_seed(0))
    assert draws.shape == (20000, 2, 1)
    sd = fitted.variance.sqrt()
    assert torch.all((draws.mean(0) - fitted.mean).abs() < 4 * sd / 20000 ** 0.5)
    assert torch.all((draws.std(0) / sd - 1).abs() < 0.03)


def test_discrete_treatment_recovers_effects():
    """Three price levels chosen from z and a confounder u; y = effect[t] + x + 2u."""
    rng = np.random.RandomState(1)
    n = 3000
    x, z, u = rng.randn(n, 1), rng.randn(n, 1), rng.randn(n)
    t = np.digitize(2.5 * z[:, 0] + u, [-0.7, 0.7]) * 5.0       # levels 0, 5, 10
    effect = {0.0: 0.0, 5.0: 1.0, 10.0: 3.0}
    y = np.vectorize(effect.get)(t) + x[:, 0] + 2.0 * u + 0.3 * rng.randn(n)
    naive = y[t == 10].mean() - y[t == 0].mean()
    # the same rows' exact two-stage estimate (true P(t | z), h linear in x): the data's
    # own IV error (0.23 on the 0-to-10 effect at this seed; sd 0.1 and 0.23 on the two
    # effects over data seeds) is no error of DeepIV's
    s = 2.5 * z[:, 0]
    low, high = stats.norm.cdf(-0.7 - s), stats.norm.cdf(0.7 - s)
    coef = np.linalg.lstsq(np.column_stack([low, high - low, 1 - high, x]), y, rcond=None)[0]
    exact = {10.0: coef[2] - coef[0], 5.0: coef[1] - coef[0]}
    effects = {10.0: [], 5.0: []}
    for seed in range(3):  # one fit's effects move with random_state by sd 0.09 and 0.15
        est = DeepIV(treatment_type="discrete", first_stage_layers=(32,),
                     outcome_layers=(32, 32), max_epochs=60, patience=8, random_state=seed)
        est.fit(x, y, treatment=t, instrument=z)
        for level in effects:
            effects[level].append(est.ate(x, T0=0.0, T1=level))
    np.testing.assert_array_equal(est.treatment_classes_, [0.0, 5.0, 10.0])
    assert naive - 3.0 > 1.0  # confounded; tolerances below: DeepIV's mean over 3 fits
    assert abs(np.mean(effects[10.0]) - exact[10.0]) < 0.25
    assert abs(np.mean(effects[5.0]) - exact[5.0]) < 0.35
    assert abs(np.mean(effects[10.0]) - 3.0) < 0.5  # most of the naive bias removed
    assert est.effect(x, T0=0.0, T1=np.full(n, 5.0)).shape == (n,)
    assert est.first_stage_log_likelihood(x, t, z) > np.log(1 / 3)
    with pytest.raises(ValueError, match="not seen in fit"):
        est.effect(x, T0=0.0, T1=7.0)
    with pytest.raises(ValueError, match="continuous treatment"):
        est.marginal_effect(x, T=t)


def test_vector_treatment_shapes():
    rng = np.random.RandomState(0)
    n = 300
    x, z = rng.randn(n, 2), rng.randn(n, 2)
    t = z + 0.5 * rng.randn(n, 2)
    y = t[:, 0] - t[:, 1] + x[:, 0] + 0.1 * rng.randn(n)
    est = DeepIV(**FAST, random_state=0).fit(x, y, treatment=t, instrument=z)
    assert est.n_treatment_features_ == 2
    assert est.marginal_effect(x, T=t).shape == (n, 2)
    assert est.effect(x, T0=np.zeros(2), T1=np.ones(2)).shape == (n,)
    assert est.predict_outcome(x, t).dtype == np.float64
    with pytest.raises(ValueError, match="columns"):
        est.predict_outcome(x, t[:, :1])


def test_api_outputs_float64_and_consistent(fitted, linear):
    x, y, t, z = linear
    h0, h1 = fitted.predict_outcome(x, 0.0), fitted.predict_outcome(x, 1.0)
    assert h0.dtype == np.float64 and h0.shape == (len(x),)
    np.testing.assert_allclose(fitted.effect(x, T0=0.0, T1=1.0), h1 - h0, atol=1e-12)
    assert fitted.marginal_effect(x, T=0.5).shape == (len(x),)
    assert isinstance(fitted.score(x, y, treatment=t), float)
    assert len(fitted.first_stage_history_) == 5 and len(fitted.history_) == 5
    assert {"train_loss", "valid_loss"} <= set(fitted.history_[0])


def test_marginal_effect_matches_finite_difference(fitted, linear):
    x, _, t, _ = linear
    step = 1e-6  # float64 networks: round-off stays near 1e-10
    at = fitted.predict_outcome(x, t)
    up, down = fitted.predict_outcome(x, t + step), fitted.predict_outcome(x, t - step)
    numeric = (up - down) / (2 * step)
    # h is piecewise linear (ReLU): where a kink lies within the step the one-sided
    # slopes disagree and no finite difference is the derivative
    smooth = np.abs((up - at) - (at - down)) / step < 1e-4
    assert smooth.mean() > 0.95
    np.testing.assert_allclose(fitted.marginal_effect(x, T=t)[smooth], numeric[smooth],
                               rtol=1e-5, atol=1e-6)


def test_seeded_fit_repeatable_clone_and_pickle(fitted, linear):
    x, y, t, z = linear
    again = clone(fitted).fit(x, y, treatment=t, instrument=z)
    np.testing.assert_array_equal(again.effect(x), fitted.effect(x))
    other = clone(fitted).set_params(random_state=1).fit(x, y, treatment=t, instrument=z)
    assert not np.array_equal(other.effect(x), fitted.effect(x))
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.marginal_effect(x, T=t),
                                  fitted.marginal_effect(x, T=t))
    assert clone(fitted).get_params() == fitted.get_params()


def test_each_stage_holds_out_the_same_rows_whatever_the_network_size(linear,
                                                                     held_out_rows):
    """One random_state holds out the same rows in each stage for every network size
    (model selection by validation loss); the two stages hold out different rows."""
    x, y, t, z = linear
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        DeepIV(**dict(FAST, max_epochs=2), random_state=3).fit(
            x, y, treatment=t, instrument=z)
        DeepIV(**dict(FAST, max_epochs=2, first_stage_layers=(7,), outcome_layers=(5, 3),
                      n_components=2), random_state=3).fit(x, y, treatment=t, instrument=z)
        DeepIV(**dict(FAST, max_epochs=2), random_state=4).fit(
            x, y, treatment=t, instrument=z)
    assert len(held_out_rows) == 6 and len(held_out_rows[0]) > 0
    first, second = held_out_rows[0::2], held_out_rows[1::2]
    assert first[0] == first[1] != first[2]
    assert second[0] == second[1] != second[2]
    assert first[0] != second[0]


def test_second_stage_validation_loss_uses_common_random_numbers(linear):
    """Every validation pass draws the same treatments, so at fixed weights the held-out
    loss repeats exactly, and early stopping compares epochs, not Monte-Carlo noise."""
    x, y, t, z = linear
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # a learning rate of 1e-12: the weights do not move between epochs
        est = DeepIV(**dict(FAST, max_epochs=4), optimizer="sgd", learning_rate=1e-12,
                     random_state=0).fit(x, y, treatment=t, instrument=z)
    losses = [record["valid_loss"] for record in est.history_]
    assert losses == pytest.approx([losses[0]] * 4, rel=1e-9)
    train = [record["train_loss"] for record in est.history_]
    assert len(set(train)) == 4  # training keeps drawing fresh treatments


def test_instrument_cols_and_pipeline(linear):
    x, y, t, z = linear
    frame = pd.DataFrame({"x": x[:, 0], "z": z[:, 0], "price": t})
    est = DeepIV(**FAST, instrument_cols=["z"], treatment_col="price", random_state=0)
    est.fit(frame, y)
    direct = DeepIV(**FAST, random_state=0).fit(frame[["x"]], y, treatment=t, instrument=z)
    np.testing.assert_allclose(est.predict(frame), direct.predict(frame[["x"]]))
    assert list(est.feature_names_in_) == ["x"]
    pipe = Pipeline([("scale", StandardScaler()), ("iv", DeepIV(**FAST, random_state=0))])
    with sklearn.config_context(enable_metadata_routing=True):
        pipe.fit(x, y, treatment=t, instrument=z)
    assert pipe.predict(x).shape == (len(x),)


def test_gridsearch_and_cross_validate_route_the_instrument(linear):
    x, y, t, z = linear
    seen = []

    class Recording(DeepIV):
        def fit(self, X, y, *, treatment=None, instrument=None):
            seen.append((len(X), len(treatment), len(instrument)))
            return super().fit(X, y, treatment=treatment, instrument=instrument)

    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(Recording(**{**FAST, "max_epochs": 2}, random_state=0),
                              {"n_components": [1, 2]}, cv=KFold(2))
        search.fit(x, y, treatment=t, instrument=z)
        assert search.best_params_["n_components"] in (1, 2)
        assert (200, 200, 200) in seen and (400, 400, 400) in seen
        scores = cross_validate(DeepIV(**{**FAST, "max_epochs": 2}, random_state=0), x, y,
                                cv=KFold(2), params={"treatment": t, "instrument": z})
    assert np.all(np.isfinite(scores["test_score"]))


def test_weak_instrument_warns():
    x, y, t, z = linear_iv(n=400, strength=0.0)
    with pytest.warns(WeakInstrumentWarning, match="weak"):
        DeepIV(**{**FAST, "max_epochs": 1}, random_state=0).fit(
            x, y, treatment=t, instrument=z)


@pytest.mark.parametrize("instrument, message", [
    (None, "instrument is required"),
    ("nan", "instrument contains 1 NaN"),
    ("inf", "instrument contains 0 NaN and 1 infinite"),
    ("constant", "instrument is constant"),
    ("short", "instrument has 399 rows but X"),
    ("3d", "instrument must be of shape"),
])
def test_bad_instrument_errors(linear, instrument, message):
    x, y, t, z = linear
    bad = {None: None, "nan": z.copy(), "inf": z.copy(), "constant": np.ones_like(z),
           "short": z[:-1], "3d": z[:, :, None]}[instrument]
    if instrument == "nan":
        bad[3, 0] = np.nan
    if instrument == "inf":
        bad[3, 0] = np.inf
    with pytest.raises(ValueError, match=message):
        DeepIV(**FAST).fit(x, y, treatment=t, instrument=bad)


def test_bad_treatment_and_column_errors(linear):
    x, y, t, z = linear
    with pytest.raises(ValueError, match="treatment is constant"):
        DeepIV(**FAST).fit(x, y, treatment=np.ones_like(t), instrument=z)
    with pytest.raises(ValueError, match="treatment has 399 rows"):
        DeepIV(**FAST).fit(x, y, treatment=t[:-1], instrument=z)
    with pytest.raises(ValueError, match="treatment is required"):
        DeepIV(**FAST).fit(x, y, instrument=z)
    with pytest.raises(ValueError, match="single level"):
        DeepIV(**FAST, treatment_type="discrete").fit(x, y, treatment=np.ones_like(t),
                                                     instrument=z)
    frame = pd.DataFrame({"x": x[:, 0], "z": z[:, 0]})
    with pytest.raises(ValueError, match="not columns of X"):
        DeepIV(**FAST, instrument_cols=["w"]).fit(frame, y, treatment=t)
    with pytest.raises(ValueError, match="given twice"):
        DeepIV(**FAST, instrument_cols="z").fit(frame, y, treatment=t, instrument=z)
    with pytest.raises(ValueError, match="treatment_type"):
        DeepIV(treatment_type="binary").fit(x, y, treatment=t, instrument=z)


def test_misaligned_pandas_instrument_and_levels_are_refused(fitted, linear):
    """A Series whose index is X.index in another order would pair rows with another
    row's instrument or treatment: fit, marginal_effect and first_stage_log_likelihood
    refuse it, as fit does for the treatment; aligned pandas equal the arrays."""
    x, y, t, z = linear
    index = np.arange(len(x))[::-1]
    X = pd.DataFrame(x, index=index, columns=["x"])
    t_s, z_s = pd.Series(t, index=index), pd.Series(z[:, 0], index=index)
    T = pd.Series(np.linspace(-2, 2, len(x)), index=index)
    with pytest.raises(ValueError, match="instrument is a pandas Series whose index"):
        DeepIV(**FAST).fit(X, y, treatment=t_s, instrument=z_s.sort_index())
    with pytest.raises(ValueError, match="T is a pandas Series whose index"):
        fitted.marginal_effect(X, T=T.sort_index())
    with pytest.raises(ValueError, match="treatment is a pandas Series whose index"):
        fitted.first_stage_log_likelihood(X, t_s.sort_index(), z_s)
    with pytest.raises(ValueError, match="instrument is a pandas Series whose index"):
        fitted.first_stage_log_likelihood(X, t_s, z_s.sort_index())
    assert fitted.first_stage_log_likelihood(X, t_s, z_s) == \
        fitted.first_stage_log_likelihood(x, t, z)
    np.testing.assert_array_equal(fitted.marginal_effect(X, T=T),
                                  fitted.marginal_effect(x, T=T.to_numpy()))


def test_instruments_in_a_dataframe_are_matched_by_name():
    """Two instruments of very different strength, fitted from a DataFrame: the first
    stage's likelihood takes their columns by name (swapped columns give the same
    value, as do the instruments left in X with ``instrument_cols``); unknown columns
    are refused. Before ``instrument_names_`` they were used by position."""
    rng = np.random.RandomState(0)
    n = 400
    x, z, u = rng.randn(n, 1), rng.randn(n, 2), rng.randn(n)
    t = 3.0 * z[:, 0] + 0.1 * z[:, 1] + x[:, 0] + u
    y = 2.0 * t + x[:, 0] + 3.0 * u
    Z = pd.DataFrame({"strong": z[:, 0], "weak": z[:, 1]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = DeepIV(**FAST, random_state=0).fit(x, y, treatment=t, instrument=Z)
    assert list(est.instrument_names_) == ["strong", "weak"]
    right = est.first_stage_log_likelihood(x, t, Z)
    assert est.first_stage_log_likelihood(x, t, Z[["weak", "strong"]]) == right
    assert est.first_stage_log_likelihood(x, t, Z.to_numpy()) == right
    # by position, the swapped columns are another (worse) first stage
    assert est.first_stage_log_likelihood(x, t, Z[["weak", "strong"]].to_numpy()) < right
    with pytest.raises(ValueError, match="instrument has different columns"):
        est.first_stage_log_likelihood(x, t, Z.rename(columns={"weak": "w"}))

    frame = pd.DataFrame({"x": x[:, 0], "weak": z[:, 1], "strong": z[:, 0]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        by_cols = DeepIV(**FAST, instrument_cols=["strong", "weak"], random_state=0)
        by_cols.fit(frame, y, treatment=t)
    assert list(by_cols.instrument_names_) == ["strong", "weak"]
    np.testing.assert_allclose(by_cols.first_stage_log_likelihood(frame, t),
                               by_cols.first_stage_log_likelihood(frame[["x"]], t, Z))
    refit = DeepIV(**FAST, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        refit.fit(x, y, treatment=t, instrument=Z).fit(x, y, treatment=t,
                                                       instrument=Z.to_numpy())
    assert not hasattr(refit, "instrument_names_")  # an array forgets the names


@pytest.fixture(scope="module")
def named_vector():
    """A fit on a two-column treatment passed as a DataFrame (price, ads)."""
    rng = np.random.RandomState(0)
    n = 300
    x, z, u = rng.randn(n, 2), rng.randn(n, 2), rng.randn(n)
    T = pd.DataFrame({"price": z[:, 0] + u + rng.randn(n),
                      "ads": 100 * (z[:, 1] - u + rng.randn(n))})
    y = T["price"].to_numpy() - 0.02 * T["ads"].to_numpy() + x[:, 0] + u
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = DeepIV(**FAST, random_state=0).fit(x, y, treatment=T, instrument=z)
    return est, x


def test_vector_treatment_frames_are_matched_by_column_name(named_vector):
    est, x = named_vector
    x = x[:5]
    assert list(est.treatment_names_) == ["price", "ads"]
    T1 = pd.DataFrame({"price": np.linspace(-1, 1, 5), "ads": np.linspace(50, 150, 5)})
    swapped = T1[["ads", "price"]]
    expected = est.effect(x, 0, T1.to_numpy())
    np.testing.assert_array_equal(est.effect(x, 0, swapped), expected)
    np.testing.assert_array_equal(est.predict_outcome(x, swapped),
                                  est.predict_outcome(x, T1.to_numpy()))
    # marginal_effect's columns follow treatment_names_, whatever the frame's order
    np.testing.assert_array_equal(est.marginal_effect(x, T=swapped),
                                  est.marginal_effect(x, T=T1.to_numpy()))
    # one treatment vector for all rows, labelled by name
    vector = pd.Series({"ads": 100.0, "price": 1.0})
    np.testing.assert_array_equal(est.effect(x, 0, vector),
                                  est.effect(x, 0, np.array([1.0, 100.0])))
    with pytest.raises(ValueError, match=r"T1 has different columns than at fit: "
                                         r"unknown columns \['promo'\], missing columns "
                                         r"\['ads'\]"):
        est.effect(x, 0, T1.rename(columns={"ads": "promo"}))
    with pytest.raises(ValueError, match="T1 is a Series whose labels"):
        est.effect(x, 0, pd.Series({"promo": 1.0, "price": 1.0}))
    # beside a DataFrame X, a Series labelled by the treatment's names is still one
    # treatment vector (not a column misaligned with X's index)
    X = pd.DataFrame(x, columns=[f"x{j}" for j in range(x.shape[1])])
    np.testing.assert_array_equal(est.effect(X, 0, vector), est.effect(x, 0, vector))
    np.testing.assert_array_equal(est.marginal_effect(X, T=vector),
                                  est.marginal_effect(x, T=vector))
    np.testing.assert_array_equal(est.predict_outcome(X, vector),
                                  est.predict_outcome(x, vector))
    with pytest.raises(ValueError, match="T1 is a pandas Series whose index"):
        est.effect(X, 0, pd.Series({"promo": 1.0, "price": 1.0}))
    with pytest.raises(ValueError, match="treatment has duplicate column names"):
        DeepIV(**FAST).fit(x, np.arange(5.0), treatment=T1[["price", "price"]],
                           instrument=x)


def test_one_treatment_vector_for_every_row_also_when_n_equals_k(named_vector):
    """With k = 2 treatment columns a 1-d array of length 2 is one treatment vector
    for every row, also for 2 rows of X; per-row levels are (n, 2)."""
    est, x = named_vector
    t0, t1 = np.array([0.0, 50.0]), np.array([1.0, 150.0])
    def same_rows(actual, desired):
        # a row's output does not depend on the other rows, up to the last bit: matrix
        # products of 1, 2 and 3 rows may add up in other orders (seen on a GPU, and on
        # the CPU for 1 against 2 rows)
        np.testing.assert_allclose(actual, desired, rtol=1e-12, atol=0)
    three = est.effect(x[:3], t0, t1)
    same_rows(est.effect(x[:2], t0, t1), three[:2])
    same_rows(est.effect(x[:2], t0, t1.tolist()), three[:2])
    per_row = np.array([[1.0, 150.0], [2.0, 50.0]])
    same_rows(est.effect(x[:2], t0, per_row)[1], est.effect(x[1:2], t0, per_row[1])[0])
    with pytest.raises(ValueError, match=r"T1 is a 1-d array of length 3; with a treatment "
                                         r"of k=2 columns pass one treatment vector of "
                                         r"length 2"):
        est.effect(x[:3], t0, np.ones(3))


def test_demand_simulation_matches_the_paper_design():
    data = make_demand(20000, rho=0.9, random_state=0)
    assert data.X.shape == (20000, 8) and data.instrument.shape == (20000, 1)
    np.testing.assert_array_equal(data.X[:, 1:].sum(axis=1), 1.0)
    s = data.X[:, 1:].argmax(axis=1) + 1.0
    np.testing.assert_allclose(data.structural,
                               (_raw_h(data.treatment, data.X[:, 0], s) - H_MEAN) / H_STD)
    # the standardised h has mean 0 and sd 1; the noise is correlated rho with v
    assert abs(data.structural.mean()) < 0.03 and abs(data.structural.std() - 1) < 0.03
    noise = data.y - data.structural
    assert abs(noise.std() - 1.0) < 0.03
    psi = 2 * ((data.X[:, 0] - 5) ** 4 / 600 + np.exp(-4 * (data.X[:, 0] - 5) ** 2)
               + data.X[:, 0] / 10 - 2)
    v = data.treatment - 25 - (data.instrument[:, 0] + 3) * psi
    assert abs(np.corrcoef(v, noise)[0, 1] - 0.9) < 0.02
    grid = demand_test_grid()
    assert grid.X.shape == (2800, 8) and grid.structural.shape == (2800,)


class _AdaptedDeepIV(DeepIV):
    """For sklearn's checks, which call fit(X, y): treatment and instrument are made
    from X (the instrument is the first feature, the treatment that plus the second)."""

    @staticmethod
    def _derive(X):
        try:
            X = np.asarray(X)
            if np.iscomplexobj(X):
                return None, None
            X = X.astype(float)
            return X[:, 0] + 0.5 * X[:, -1], X[:, :1]
        except (TypeError, ValueError, IndexError):
            return None, None  # malformed X: let the estimator's own checks report it

    def fit(self, X, y, treatment=None, instrument=None):
        treatment, instrument = self._derive(X)
        return super().fit(X, y, treatment=treatment, instrument=instrument)

    def score(self, X, y, treatment=None):
        return super().score(X, y, treatment=self._derive(X)[0])


@pytest.mark.parametrize("check", [
    "check_no_attributes_set_in_init", "check_get_params_invariance", "check_set_params",
    "check_dont_overwrite_parameters", "check_fit_idempotent", "check_estimators_pickle",
    "check_n_features_in", "check_n_features_in_after_fitting", "check_complex_data",
    # sklearn >= 1.6 splits check_estimator_sparse_data in two
    "check_estimator_sparse_array" if hasattr(estimator_checks, "check_estimator_sparse_array")
    else "check_estimator_sparse_data", "check_fit2d_predict1d", "check_requires_y_none",
    "check_supervised_y_2d"])
def test_sklearn_checks(check):
    from sklearn.utils import estimator_checks
    est = _AdaptedDeepIV(**{**FAST, "max_epochs": 2}, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WeakInstrumentWarning)
        getattr(estimator_checks, check)("DeepIV", est)


def test_docstring_documents_every_parameter():
    import re
    documented = set(re.findall(r"^    (\w+) :", DeepIV.__doc__, flags=re.M))
    assert not set(DeepIV().get_params()) - documented


@pytest.mark.cuda
def test_cuda_fit_agrees_with_cpu_and_unpickles_on_cpu(linear, monkeypatch):
    x, y, t, z = linear
    gpu = DeepIV(**FAST, device="cuda", random_state=0).fit(x, y, treatment=t, instrument=z)
    assert next(gpu.module_.parameters()).device.type == "cuda"
    assert next(gpu.first_stage_module_.parameters()).device.type == "cuda"
    cpu = DeepIV(**FAST, device="cpu", random_state=0).fit(x, y, treatment=t, instrument=z)
    # same initial weights, batches and Monte-Carlo draws (a CPU generator on both
    # devices), float64 networks: the fits differ by rounding only
    np.testing.assert_allclose(gpu.predict_outcome(x, t), cpu.predict_outcome(x, t),
                               atol=0.02 * np.std(y))
    expected = gpu.marginal_effect(x, T=t)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    restored = pickle.loads(pickle.dumps(gpu))
    assert restored.device_.type == "cpu"
    np.testing.assert_allclose(restored.marginal_effect(x, T=t), expected, rtol=1e-8)


@pytest.mark.parametrize("constant", [0.3, 2024.0])
def test_a_constant_covariate_is_centred_not_blown_up(linear, constant):
    """Shared column scaling: a column constant in training (0.3 had a 6e-17 "std")
    enters as zeros, so the fit equals that with a column of zeros."""
    x, y, t, z = linear
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zeros = DeepIV(**FAST, random_state=0).fit(
            np.column_stack([x, np.zeros(len(x))]), y, treatment=t, instrument=z)
        const = DeepIV(**FAST, random_state=0).fit(
            np.column_stack([x, np.full(len(x), constant)]), y, treatment=t,
            instrument=z)
    np.testing.assert_allclose(
        const.effect(np.column_stack([x, np.full(len(x), constant)]), 0.0, 1.0),
        zeros.effect(np.column_stack([x, np.zeros(len(x))]), 0.0, 1.0), atol=1e-9)
    # another value at prediction enters as its difference (before: 1 / 6e-17)
    np.testing.assert_allclose(
        const.effect(np.column_stack([x, np.full(len(x), constant + 1.0)]), 0.0, 1.0),
        zeros.effect(np.column_stack([x, np.ones(len(x))]), 0.0, 1.0), atol=1e-6)


def test_demand_structural_takes_a_price_column_and_refuses_other_shapes():
    data = make_demand(n_samples=200, random_state=0)
    truth = demand_structural(data.X, data.treatment)
    assert truth.shape == (200,)
    np.testing.assert_allclose(truth, data.structural)
    # a one-column treatment matrix, as DeepIV takes it, is the same price (it used to
    # broadcast into a (200, 200) "truth")
    np.testing.assert_array_equal(demand_structural(data.X, data.treatment[:, None]),
                                  truth)
    with pytest.raises(ValueError, match=r"price must have shape \(n_samples,\)"):
        demand_structural(data.X, data.treatment[:150])
    # a number prices every row; one row's curve over a grid of prices
    np.testing.assert_array_equal(demand_structural(data.X, 20.0),
                                  demand_structural(data.X, np.full(200, 20.0)))
    grid = np.linspace(10, 30, 7)
    np.testing.assert_array_equal(demand_structural(data.X[:1], grid),
                                  demand_structural(np.repeat(data.X[:1], 7, 0), grid))
    with pytest.raises(ValueError, match="X must have shape"):
        demand_structural(data.X[:, :3], data.treatment)
