"""Bad input gets a ValueError/TypeError that names the argument, never a torch trace."""
import numpy as np
import pandas as pd
import pytest

from causalnn import CFRNet, Dragonnet, TARNet
from causalnn.exceptions import TrainingDivergedError

from conftest import SMALL, simulate

X, Y, T, _ = simulate(n=120, d=3)


def est(**kw):
    return TARNet(**{**SMALL, "max_epochs": 2, **kw})


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("arg", ["X", "y", "treatment"])
def test_non_finite_values(arg, bad):
    inputs = {"X": X.copy(), "y": Y.copy(), "treatment": T.copy()}
    if arg == "X":
        inputs["X"][3, 1] = bad
    else:
        inputs[arg][3] = bad
    with pytest.raises(ValueError, match=rf"^{arg} contains"):
        est().fit(inputs["X"], inputs["y"], treatment=inputs["treatment"])


@pytest.mark.parametrize("arg", ["y", "treatment"])
def test_lengths_differ(arg):
    inputs = {"y": Y, "treatment": T}
    inputs[arg] = inputs[arg][:-5]
    with pytest.raises(ValueError, match=rf"{arg} has 115 rows but X has 120"):
        est().fit(X, inputs["y"], treatment=inputs["treatment"])


def test_treatment_not_binary():
    with pytest.raises(ValueError, match=r"treatment must be binary \(0/1\) for TARNet"):
        est().fit(X, Y, treatment=T * 2)


def test_treatment_missing():
    with pytest.raises(ValueError, match="treatment is required"):
        est().fit(X, Y)


@pytest.mark.parametrize("n_treated", [0, 1])
def test_arm_empty_or_too_small(n_treated):
    t = np.zeros(len(X))
    t[:n_treated] = 1
    with pytest.raises(ValueError, match=f"treatment arm 1 has {n_treated} rows"):
        Dragonnet(**SMALL).fit(X, Y, treatment=t)


@pytest.mark.parametrize("arg", ["X", "y", "treatment"])
def test_numbers_written_as_text_are_refused_not_converted(arg):
    """"1.5" would convert and "1,5" would not: a fit must not hang on the format."""
    inputs = {"X": X, "y": Y, "treatment": T}
    inputs[arg] = inputs[arg].astype(str)
    with pytest.raises(TypeError, match=f"{arg} holds text"):
        est().fit(inputs["X"], inputs["y"], treatment=inputs["treatment"])
    with pytest.raises(TypeError, match=f"{arg} holds text"):  # in a masked array
        inputs_masked = dict(inputs, **{arg: np.ma.masked_array(inputs[arg])})
        est().fit(inputs_masked["X"], inputs_masked["y"],
                  treatment=inputs_masked["treatment"])
    if arg != "X":  # a Series of text, as read from a file without a dtype
        inputs[arg] = pd.Series(inputs[arg], dtype=object)
        with pytest.raises(TypeError, match=f"{arg} holds text"):
            est().fit(inputs["X"], inputs["y"], treatment=inputs["treatment"])


@pytest.mark.parametrize("arg", ["X", "y"])
def test_masked_entries_are_refused_not_read_through_the_mask(arg):
    inputs = {"X": X, "y": Y}
    inputs[arg] = np.ma.masked_greater(inputs[arg], np.quantile(inputs[arg], 0.95))
    n_masked = int(np.ma.count_masked(inputs[arg]))
    assert n_masked > 0
    with pytest.raises(ValueError, match=f"{arg} is a masked array with {n_masked} masked"):
        est().fit(inputs["X"], inputs["y"], treatment=T)
    # a masked array with nothing masked is its data
    fitted = est(random_state=0).fit(np.ma.masked_array(X), Y, treatment=T)
    np.testing.assert_array_equal(fitted.effect(X),
                                  est(random_state=0).fit(X, Y, treatment=T).effect(X))


def test_x_wrong_shape_and_type():
    with pytest.raises(ValueError, match="X must be 2-dimensional"):
        est().fit(X[:, 0], Y, treatment=T)
    with pytest.raises(TypeError, match="X must be a numeric array-like"):
        est().fit(np.array([["a", "b"]] * len(Y)), Y, treatment=T)
    frame = pd.DataFrame(X, columns=["a", "b", "c"]).assign(s="text")
    with pytest.raises(TypeError, match=r"non-numeric columns: \['s'\]"):
        est().fit(frame, Y, treatment=T)


def test_predict_with_different_number_of_columns():
    fitted = est(random_state=0).fit(X, Y, treatment=T)
    with pytest.raises(ValueError, match="X has 2 features, but TARNet is expecting 3"):
        fitted.effect(X[:, :2])


def test_predict_with_different_dataframe_columns():
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    fitted = est(random_state=0).fit(frame, Y, treatment=T)
    renamed = frame.rename(columns={"c": "z"})
    with pytest.raises(ValueError, match=r"unknown columns \['z'\], missing columns \['c'\]"):
        fitted.effect(renamed)
    # the same columns in another order are matched by name
    np.testing.assert_allclose(fitted.effect(frame[["c", "a", "b"]]), fitted.effect(frame))


def test_predict_outcome_levels_must_be_binary():
    fitted = est(random_state=0).fit(X, Y, treatment=T)
    with pytest.raises(ValueError, match="T1 must be binary"):
        fitted.effect(X, T1=2)


@pytest.mark.parametrize("param, value, error", [
    ("learning_rate", -1.0, ValueError), ("batch_size", 0, ValueError),
    ("optimizer", "rmsprop", ValueError), ("validation_fraction", 1.0, ValueError),
    ("outcome", "count", ValueError), ("representation_layers", (), ValueError),
    ("activation", "swish", ValueError)])
def test_bad_hyperparameters_name_the_parameter(param, value, error):
    with pytest.raises(error, match=f"'{param}' parameter of TARNet"):
        est(**{param: value}).fit(X, Y, treatment=T)


def test_cfr_bad_ipm():
    with pytest.raises(ValueError, match="'ipm' parameter of CFRNet"):
        CFRNet(ipm="kl").fit(X, Y, treatment=T)


def test_binary_outcome_requested_for_continuous_y():
    with pytest.raises(ValueError, match=r"outcome='binary' needs y in \{0, 1\}"):
        est(outcome="binary").fit(X, Y, treatment=T)


def test_cuda_requested_without_cuda():
    import torch
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="CUDA is not available"):
        est(device="cuda").fit(X, Y, treatment=T)


def test_diverging_training_stops_with_error():
    # plain SGD with a huge step on badly scaled input overflows the loss
    with pytest.raises(TrainingDivergedError, match="Training diverged.*smaller learning_rate"):
        TARNet(**{**SMALL, "max_epochs": 50}, optimizer="sgd", learning_rate=1e3,
               random_state=0).fit(
            X * 1e6, Y, treatment=T)


def test_sparse_and_complex_input_are_refused():
    import scipy.sparse
    with pytest.raises(TypeError, match="sparse input is not supported"):
        est().fit(scipy.sparse.csr_matrix(X), Y, treatment=T)
    with pytest.raises(ValueError, match="X holds complex numbers"):
        est().fit(X + 1j, Y, treatment=T)


def test_missing_y_and_column_vector_y():
    from sklearn.exceptions import DataConversionWarning
    with pytest.raises(ValueError, match="requires y to be passed"):
        est().fit(X, None, treatment=T)
    with pytest.warns(DataConversionWarning, match="column-vector y"):
        est().fit(X, Y[:, None], treatment=T)


_DATES = pd.date_range("2020-01-01", periods=len(X), freq="D")
_DURATIONS = pd.to_timedelta(np.arange(len(X)) % 2, unit="D")  # 0/1 days: a "binary" t
_DATE_ARRAYS = [
    (_DATES.to_numpy().astype("datetime64[D]"), "dates"),
    (_DATES.to_numpy(), "dates"),                  # datetime64[ns]
    (_DURATIONS.to_numpy(), "durations"),         # timedelta64[ns]
]


@pytest.mark.parametrize("values, what", _DATE_ARRAYS + [
    (pd.Series(_DATES), "dates"),
    (pd.Series(_DATES.tz_localize("UTC")), "dates"),
    (pd.Series(pd.Categorical(_DATES)), "dates"),  # hands out datetime64 values
    (pd.Series(_DATES.to_period("D")), "dates"),
    (pd.Series(_DURATIONS), "durations"),
    (list(_DURATIONS.to_numpy()), "durations"),
])
@pytest.mark.parametrize("arg", ["y", "treatment"])
def test_dates_and_durations_are_refused(arg, values, what):
    # as numbers they would count days or nanoseconds by the dtype's resolution
    inputs = {"y": Y, "treatment": T, arg: values}
    with pytest.raises(TypeError, match=rf"^{arg} must be numeric; got {what}"):
        est().fit(X, inputs["y"], treatment=inputs["treatment"])


@pytest.mark.parametrize("values, what", _DATE_ARRAYS)
def test_date_and_duration_arrays_are_refused_as_x(values, what):
    dated = values.reshape(-1, 1)
    with pytest.raises(TypeError, match=rf"^X must be numeric; got {what}"):
        est().fit(dated, Y, treatment=T)
    with pytest.raises(TypeError, match=rf"^X must be numeric; got {what}"):
        est().fit(list(dated), Y, treatment=T)  # rows of numpy values


def test_dates_refused_in_every_numeric_argument():
    from causalnn import DeepIV
    fitted = est().fit(X, Y, treatment=T)
    with pytest.raises(TypeError, match="^X must be numeric; got dates"):
        fitted.effect(np.asarray(_DATES).reshape(-1, 1))
    with pytest.raises(TypeError, match="^T1 must be numeric; got durations"):
        fitted.effect(X, T1=pd.Series(_DURATIONS))
    with pytest.raises(TypeError, match="^T1 must be numeric; got durations"):
        fitted.effect(X, T1=np.timedelta64(1, "D"))  # a scalar level, every row
    with pytest.raises(TypeError, match="^instrument must be numeric; got dates"):
        DeepIV(max_epochs=1).fit(X, Y, treatment=X[:, 0], instrument=_DATES.to_numpy())


@pytest.mark.parametrize("cls", [TARNet, CFRNet, Dragonnet])
@pytest.mark.parametrize("method", ["effect_interval", "ate_interval"])
def test_intervals_of_an_unfitted_estimator_say_it_is_not_fitted(cls, method):
    # not "was fitted with n_members=1", which is false on both counts for an unfitted
    # TARNet(n_members=20)
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError, match="not fitted yet"):
        getattr(cls(n_members=20, bootstrap=True), method)(X)


def test_the_deconfounders_missing_causes_error_names_its_own_call():
    # it has no treatment_col to offer, and score's error names score
    from causalnn import Deconfounder
    from causalnn.datasets import make_multi_cause
    data = make_multi_cause(120, 6, 2, random_state=0)
    with pytest.raises(ValueError) as error:
        Deconfounder(n_factors=2).fit(None, data.y)
    assert "pass fit(X, y, treatment=A)" in str(error.value)
    assert "treatment_col" not in str(error.value)
    fitted = Deconfounder(factor_model="ppca", n_factors=2, predictive_check=False).fit(
        None, data.y, treatment=data.treatment)
    with pytest.raises(ValueError, match=r"pass score\(X, y, treatment=A\)") as error:
        fitted.score(None, data.y)
    assert "treatment_col" not in str(error.value)
    # effect(X, members=True) as for every estimator: one member
    tau = fitted.effect(None, T0=0, T1=data.treatment, members=True)
    expected = fitted.effect(None, T0=0, T1=data.treatment)[None]
    np.testing.assert_array_equal(tau, expected)


# ---- containers and dtypes (audit of session 15) --------------------------------------
def test_tensors_that_require_grad_are_taken_as_their_values():
    """A tensor with autograd history (e.g. a model's output) was refused by torch's own
    RuntimeError, naming neither the argument nor causalnn."""
    import torch
    plain = est(random_state=0).fit(X, Y, treatment=T)
    tracked = est(random_state=0).fit(torch.tensor(X, requires_grad=True),
                                      torch.tensor(Y, requires_grad=True),
                                      treatment=torch.tensor(T, requires_grad=True))
    np.testing.assert_array_equal(tracked.effect(torch.tensor(X, requires_grad=True)),
                                  plain.effect(X))
    one = torch.tensor(1.0, requires_grad=True)
    np.testing.assert_array_equal(plain.effect(X, T0=0.0, T1=one), plain.effect(X))
    # bfloat16 (no NumPy dtype) is taken as its float32 values, which are exact
    coarse = torch.tensor(X).bfloat16()
    np.testing.assert_array_equal(plain.effect(coarse),
                                  plain.effect(coarse.float().numpy().astype(np.float64)))


def test_mixed_column_names_reach_the_propensity_model_as_strings():
    """causalnn records ["age", 1] as strings; scikit-learn refuses mixed names, and
    ate_inference / overlap_summary failed inside it with its own TypeError."""
    frame = pd.DataFrame(X, columns=["age", 1, "income"])
    fitted = est(random_state=0).fit(frame, Y, treatment=T)
    result = fitted.ate_inference(frame, Y, treatment=T, cv=2)
    assert np.isfinite(result.point_estimate) and np.isfinite(result.stderr)
    assert fitted.overlap_summary(frame, treatment=T) is not None


@pytest.mark.parametrize("where", ["treatment", "y", "treatment_col"])
def test_nullable_missing_values_are_reported_as_missing(where):
    """pd.NA in a nullable boolean column read as 'must be numeric (encode
    categories...)'; the same gap in Int64 data was reported as NaN."""
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    flags = pd.array(T.astype(bool), dtype="boolean")
    flags[3] = pd.NA
    y = pd.Series(Y) if where != "y" else pd.Series(pd.array(Y > 0, dtype="boolean"))
    if where == "y":
        y[3] = pd.NA
        with pytest.raises(ValueError, match="^y contains 1 NaN"):
            est().fit(frame, y, treatment=T)
    elif where == "treatment":
        with pytest.raises(ValueError, match="^treatment contains 1 NaN"):
            est().fit(frame, y, treatment=pd.Series(flags))
    else:
        frame["t"] = flags
        with pytest.raises(ValueError, match="treatment contains 1 NaN"):
            est(treatment_col="t").fit(frame, y)


@pytest.mark.parametrize("arg", ["y", "treatment"])
def test_sparse_outcome_or_treatment_is_refused_as_sparse(arg):
    import scipy.sparse
    inputs = {"y": Y, "treatment": T}
    inputs[arg] = scipy.sparse.csr_matrix(inputs[arg][:, None])
    with pytest.raises(TypeError, match=f"^{arg} is a sparse matrix"):
        est().fit(X, inputs["y"], treatment=inputs["treatment"])


def test_an_object_column_of_numbers_is_refused_with_its_dtype_and_a_remedy():
    frame = pd.DataFrame(X, columns=["a", "b", "c"]).astype({"b": object})
    with pytest.raises(TypeError, match=r"non-numeric columns: \['b'\] \(dtypes object\)"
                                        r"\. .*pd\.to_numeric"):
        est().fit(frame, Y, treatment=T)


def test_deepiv_takes_a_zero_dimensional_array_as_a_scalar_level():
    from causalnn import DeepIV
    from causalnn.datasets import make_linear_iv
    data = make_linear_iv(200, strength=1.0, random_state=0)
    fitted = DeepIV(first_stage_layers=(8,), outcome_layers=(8,), n_components=2,
                    max_epochs=2, patience=None, random_state=0).fit(
        data.X, data.y, treatment=data.treatment, instrument=data.instrument)
    np.testing.assert_array_equal(
        fitted.effect(data.X, T0=np.array(0.0), T1=np.array(1.0)),
        fitted.effect(data.X, T0=0.0, T1=1.0))
