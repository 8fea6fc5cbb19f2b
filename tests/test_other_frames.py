"""DataFrames of other libraries (polars, anything with the dataframe interchange
protocol) are taken as their pandas conversion: their column names are recorded at fit
and matched at predict, ``treatment_col`` works, and non-numeric columns are refused.

The stand-ins below delegate to a pandas frame, so these tests need no other frame
library; one test runs with polars itself when it is installed.
"""
import numpy as np
import pandas as pd
import pytest

from causalnn import CEVAE, CFRNet, Deconfounder, DeepIV, Dragonnet, TARNet
from causalnn._base._validation import as_pandas_frame

from conftest import SMALL, simulate

X, Y, T, _ = simulate(n=120, d=4)
# distinct scales: a frame taken by position after a reorder would predict differently
X[:, 3] *= 5.0
NAMES = ["a", "b", "c", "d"]
REORDERED = ["d", "b", "a", "c"]
FRAME = pd.DataFrame(X, columns=NAMES)


class _Column:
    """A column of another library: values through ``to_numpy``."""

    def __init__(self, values):
        self._values = values

    def to_numpy(self):
        return self._values


class NamedColumnsFrame:
    """A frame as polars presents one: named columns with ``to_numpy``, no index and
    no pandas API (no ``drop``, ``loc``, ``dtypes``). ``__array__`` gives its values by
    position, as ``np.asarray`` would take a polars frame."""

    def __init__(self, frame):
        self._frame = frame

    @property
    def columns(self):
        return list(self._frame.columns)

    @property
    def shape(self):
        return self._frame.shape

    def __len__(self):
        return len(self._frame)

    def __getitem__(self, name):
        return _Column(self._frame[name].to_numpy())

    def to_numpy(self):
        return self._frame.to_numpy()

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self._frame.to_numpy(), dtype=dtype)

    def select(self, names):
        return NamedColumnsFrame(self._frame[names])


class InterchangeFrame:
    """A frame that offers only the dataframe interchange protocol."""

    def __init__(self, frame):
        self._frame = frame

    def __dataframe__(self, nan_as_null=False, allow_copy=True):
        return self._frame.__dataframe__(nan_as_null=nan_as_null, allow_copy=allow_copy)

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self._frame.to_numpy(), dtype=dtype)


@pytest.mark.parametrize("wrap", [NamedColumnsFrame, InterchangeFrame])
def test_conversion_keeps_names_values_and_dtypes(wrap):
    frame = FRAME.assign(flag=np.arange(len(X)) % 2 == 0, count=np.arange(len(X)))
    converted = as_pandas_frame(wrap(frame))
    assert isinstance(converted, pd.DataFrame)
    assert list(converted.columns) == list(frame.columns)
    pd.testing.assert_frame_equal(converted.reset_index(drop=True), frame,
                                  check_dtype=False)
    assert converted["flag"].dtype == bool
    for not_a_frame in (X, FRAME, FRAME["a"], [[1.0, 2.0]], None):
        assert as_pandas_frame(not_a_frame) is not_a_frame


@pytest.mark.parametrize("wrap", [NamedColumnsFrame, InterchangeFrame])
def test_names_recorded_and_predict_columns_matched_by_name(wrap):
    kw = dict(SMALL, max_epochs=2, random_state=0)
    on_pandas = TARNet(**kw).fit(FRAME, Y, treatment=T)
    est = TARNet(**kw).fit(wrap(FRAME), Y, treatment=T)
    assert list(est.feature_names_in_) == NAMES
    # the same fit as on the pandas frame, and a reordered frame predicts the same
    expected = on_pandas.effect(FRAME)
    np.testing.assert_array_equal(est.effect(wrap(FRAME)), expected)
    np.testing.assert_array_equal(est.effect(wrap(FRAME[REORDERED])), expected)
    assert est.score(wrap(FRAME[REORDERED]), Y, treatment=T) == pytest.approx(
        on_pandas.score(FRAME, Y, treatment=T), abs=1e-12)
    with pytest.raises(ValueError, match=r"missing columns \['c'\]"):
        est.effect(wrap(FRAME[["a", "b", "d"]].assign(e=1.0)))


def test_treatment_col_of_another_frame():
    kw = dict(SMALL, max_epochs=2, random_state=0)
    expected = TARNet(**kw).fit(FRAME, Y, treatment=T).effect(FRAME)
    frame = NamedColumnsFrame(FRAME.assign(t=T))
    est = TARNet(treatment_col="t", **kw).fit(frame, Y)
    assert list(est.feature_names_in_) == NAMES
    np.testing.assert_array_equal(est.effect(frame), expected)
    np.testing.assert_array_equal(
        est.predict_outcome(NamedColumnsFrame(FRAME[REORDERED].assign(t=T))),
        est.predict_outcome(FRAME, T))


@pytest.mark.parametrize("column", [
    pd.date_range("2020-01-01", periods=len(X)).to_numpy(),
    pd.to_timedelta(np.arange(len(X)), unit="h").to_numpy(),
    np.array(["x", "y", "z"] * (len(X) // 3), dtype=object),
])
def test_non_numeric_columns_of_another_frame_refused_as_pandas_ones(column):
    frame = NamedColumnsFrame(FRAME.assign(e=column))
    with pytest.raises(TypeError, match=r"X columns must be numeric; non-numeric "
                                        r"columns: \['e'\]"):
        TARNet(**SMALL).fit(frame, Y, treatment=T)


def test_pandas_inputs_beside_an_index_less_frame_take_its_default_index():
    # an index-less frame is labelled 0..n-1, so a shuffled pandas y is refused as it
    # is beside such a pandas X; one carrying those labels in order is accepted
    y = pd.Series(Y)
    with pytest.raises(ValueError, match="y is a pandas Series whose index has the same "
                                         "labels as X.index in another order"):
        TARNet(**SMALL).fit(NamedColumnsFrame(FRAME), y.sample(frac=1, random_state=0),
                            treatment=T)
    TARNet(**dict(SMALL, max_epochs=1)).fit(NamedColumnsFrame(FRAME), y, treatment=T)


def _instrument_data():
    rng = np.random.RandomState(1)
    z = X[:, 0] + rng.randn(len(X))
    return z, X[:, 1] + z


def _fits():
    """(name, fit(frame) -> estimator, predict(est, frame) -> array) of each family."""
    z, dose = _instrument_data()
    rng = np.random.RandomState(2)
    causes = pd.DataFrame((rng.rand(len(X), 6) < 0.5).astype(float),
                          columns=[f"a{j}" for j in range(6)])
    y_causes = causes.to_numpy() @ np.linspace(-1, 1, 6) + X[:, 0]
    small = dict(SMALL, max_epochs=2, random_state=0)
    return [
        ("CFRNet", lambda F: CFRNet(**small).fit(F, Y, treatment=T),
         lambda e, F: e.effect(F)),
        ("Dragonnet", lambda F: Dragonnet(**small).fit(F, Y, treatment=T),
         lambda e, F: e.predict_propensity(F)),
        ("CEVAE", lambda F: CEVAE(latent_dim=2, hidden_layers=(8,), n_samples=5,
                                  max_epochs=2, random_state=0).fit(F, Y, treatment=T),
         lambda e, F: e.effect(F)),
        ("DeepIV", lambda F: DeepIV(n_components=2, first_stage_layers=(8,),
                                    outcome_layers=(8,), max_epochs=2,
                                    random_state=0).fit(F, Y, treatment=dose, instrument=z),
         lambda e, F: e.marginal_effect(F, T=dose)),
        ("Deconfounder", lambda F: Deconfounder(
            n_factors=2, outcome_model="neural", outcome_layers=(8,), max_epochs=2,
            predictive_check=False, random_state=0).fit(
                F, y_causes, treatment=NamedColumnsFrame(causes)),
         lambda e, F: e.effect(F)),
    ]


@pytest.mark.parametrize("name,fit,predict", _fits(), ids=[f[0] for f in _fits()])
def test_every_estimator_matches_another_frame_by_name(name, fit, predict):
    on_pandas, est = fit(FRAME), fit(NamedColumnsFrame(FRAME))
    assert list(est.feature_names_in_) == NAMES
    expected = predict(on_pandas, FRAME)
    np.testing.assert_array_equal(predict(est, NamedColumnsFrame(FRAME[REORDERED])),
                                  expected)


def test_deconfounder_cause_names_of_another_frame():
    _, fit, _ = _fits()[-1]
    est = fit(None)
    assert list(est.cause_names_) == [f"a{j}" for j in range(6)]


def test_deepiv_named_columns_of_another_frame():
    z, dose = _instrument_data()
    kw = dict(n_components=2, first_stage_layers=(8,), outcome_layers=(8,),
              max_epochs=2, random_state=0)
    expected = DeepIV(**kw).fit(FRAME, Y, treatment=dose, instrument=z).effect(FRAME)
    frame = NamedColumnsFrame(FRAME.assign(t=dose, z=z))
    est = DeepIV(treatment_col="t", instrument_cols=["z"], **kw).fit(frame, Y)
    assert list(est.feature_names_in_) == NAMES
    np.testing.assert_allclose(est.effect(NamedColumnsFrame(FRAME[REORDERED])), expected,
                               rtol=0, atol=1e-12)


def test_ate_inference_on_another_frame_equals_pandas():
    kw = dict(SMALL, max_epochs=2, random_state=0)
    expected = TARNet(**kw).ate_inference(FRAME, Y, treatment=T, cv=2)
    result = TARNet(treatment_col="t", **kw).ate_inference(
        NamedColumnsFrame(FRAME.assign(t=T)), Y, cv=2)
    assert result.point_estimate == expected.point_estimate
    assert result.stderr == expected.stderr


def test_a_lazy_frame_is_refused_with_the_call_that_collects_it():
    class LazyFrame:  # a query plan with column names, but no data (as polars')
        columns = ["a", "b"]

        def collect(self):
            raise AssertionError("the estimator must not run the query")

    with pytest.raises(TypeError, match=r"X is a lazy frame \(LazyFrame\); pass its "
                                        r"data, e.g. X.collect\(\)"):
        TARNet(**SMALL).fit(LazyFrame(), np.zeros(4), treatment=np.array([0, 1, 0, 1.0]))


def test_polars_frames():
    pl = pytest.importorskip("polars")
    kw = dict(SMALL, max_epochs=2, random_state=0)
    frame = pl.from_pandas(FRAME)
    est = TARNet(**kw).fit(frame, Y, treatment=T)
    assert list(est.feature_names_in_) == NAMES
    np.testing.assert_array_equal(est.effect(frame.select(REORDERED)),
                                  TARNet(**kw).fit(FRAME, Y, treatment=T).effect(FRAME))
    dated = frame.with_columns(pl.Series("e", pd.date_range("2020", periods=len(X))))
    with pytest.raises(TypeError, match=r"non-numeric columns: \['e'\]"):
        TARNet(**kw).fit(dated, Y, treatment=T)
