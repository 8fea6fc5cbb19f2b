"""causalnn inside scikit-learn's tools: Pipelines' index check, the Deconfounder without
covariates in cross-validation, the scorers on a fitted search (nested CV), fitted state
that set_params cannot change, random_state=None, and array-likes that only convert."""
import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.model_selection import GridSearchCV, KFold, cross_val_predict, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import _NotAnArray, check_regressor_data_not_an_array

from causalnn import Deconfounder, DeepIV, TARNet
from causalnn.metrics import causal_validation_scorer, factual_r2_scorer

from conftest import simulate

TINY = dict(representation_layers=(8,), head_layers=(8,), max_epochs=2, batch_size=64,
            patience=None, device="cpu")
TINY_IV = dict(n_components=2, first_stage_layers=(8,), outcome_layers=(8,),
               max_epochs=2, batch_size=64, patience=None, device="cpu")
# PPCA is closed form: the Deconfounder's fits here cost milliseconds
TINY_DECONF = dict(factor_model="ppca", n_factors=1, predictive_check=False, device="cpu")
NEURAL_DECONF = dict(outcome_model="neural", outcome_layers=(8,), max_epochs=3,
                     patience=None)


def iv_data(n=160, seed=0):
    """Continuous treatment t = z + x + u, outcome y = 2 t + x + u: u confounds."""
    rng = np.random.RandomState(seed)
    X, z, u = rng.randn(n, 2), rng.randn(n), rng.randn(n)
    t = z + X[:, 0] + u
    y = 2.0 * t + X[:, 1] + u + 0.3 * rng.randn(n)
    return X, y, t, z


def cause_data(n=120, seed=0):
    """Real-valued causes A driven by one latent factor that also moves y."""
    rng = np.random.RandomState(seed)
    Z = rng.randn(n, 1)
    A = Z @ rng.randn(1, 6) + rng.randn(n, 6)
    y = A @ np.linspace(-1.0, 1.0, 6) + Z[:, 0] + 0.3 * rng.randn(n)
    return y, A


@pytest.fixture
def routing():
    with sklearn.config_context(enable_metadata_routing=True):
        yield


# ---- a Pipeline's index check (docs/pipelines.md) ---------------------------------------

def _sorted_apart(n=80):
    """X with a labelled index, and y and t re-ordered together (e.g. an outcome table
    sorted by y): y and t agree with each other but not with X's rows."""
    X, y, t, _ = simulate(n=n, seed=1)
    Xdf = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])],
                       index=np.arange(n) + 1000)
    order = np.argsort(y)
    y_sorted = pd.Series(y, index=Xdf.index).iloc[order]
    t_sorted = pd.Series(t, index=Xdf.index).iloc[order]
    return Xdf, y_sorted, t_sorted


def test_pandas_output_pipeline_refuses_y_and_treatment_sorted_apart_from_X(routing):
    Xdf, y_sorted, t_sorted = _sorted_apart()
    # the safe form of docs/pipelines.md: the transformer hands on X's index
    pipe = Pipeline([("scale", StandardScaler().set_output(transform="pandas")),
                     ("net", TARNet(**TINY, random_state=0))])
    with pytest.raises(ValueError, match="y is a pandas Series whose index has the same "
                                         "labels as X.index in another order"):
        pipe.fit(Xdf, y_sorted, treatment=t_sorted)
    # scikit-learn's global setting does the same for every transformer
    with sklearn.config_context(transform_output="pandas"):
        pipe = Pipeline([("scale", StandardScaler()),
                         ("net", TARNet(**TINY, random_state=0))])
        with pytest.raises(ValueError, match="index"):
            pipe.fit(Xdf, y_sorted, treatment=t_sorted)
        # fitted on aligned rows, the Pipeline's score refuses the misaligned ones too
        pipe.fit(Xdf, y_sorted.reindex(Xdf.index), treatment=t_sorted.reindex(Xdf.index))
        with pytest.raises(ValueError, match="index"):
            pipe.score(Xdf, y_sorted, treatment=t_sorted)
    # the limitation the docs state: a NumPy-output transformer drops the index before
    # the estimator sees X, so the same call is accepted
    numpy_pipe = Pipeline([("scale", StandardScaler()),
                           ("net", TARNet(**TINY, random_state=0))])
    numpy_pipe.fit(Xdf, y_sorted, treatment=t_sorted)


# ---- the Deconfounder without covariates: an (n, 0) X -----------------------------------

def test_deconfounder_fit_on_no_columns_equals_fit_on_none():
    y, A = cause_data()
    for extra in ({}, NEURAL_DECONF):
        ref = Deconfounder(**TINY_DECONF, **extra, random_state=0).fit(None, y, treatment=A)
        est = Deconfounder(**TINY_DECONF, **extra, random_state=0).fit(
            np.empty((len(y), 0)), y, treatment=A)
        assert est.n_features_in_ == 0 and not hasattr(est, "feature_names_in_")
        np.testing.assert_array_equal(est.cause_effects(), ref.cause_effects())
        # the (n, 0) query gives one row per unit; None gives one row
        np.testing.assert_array_equal(est.effect(np.empty((len(y), 0)), observed_causes=A),
                                      ref.effect(None, observed_causes=A))
        assert est.score(np.empty((len(y), 0)), y, treatment=A) == \
            ref.score(None, y, treatment=A)
    # a frame without columns (e.g. a selection of no covariates) records no names
    frame = pd.DataFrame(index=range(len(y)))
    est = Deconfounder(**TINY_DECONF, random_state=0).fit(frame, y, treatment=A)
    assert est.n_features_in_ == 0 and not hasattr(est, "feature_names_in_")
    ref = Deconfounder(**TINY_DECONF, random_state=0).fit(None, y, treatment=A)
    np.testing.assert_array_equal(est.coef_, ref.coef_)


def test_no_columns_stays_refused_where_covariates_are_required():
    X, y, t, _ = simulate(n=40)
    with pytest.raises(ValueError, match="X has no columns"):
        TARNet(**TINY).fit(np.empty((40, 0)), y, treatment=t)
    fitted = TARNet(**TINY, random_state=0).fit(X, y, treatment=t)
    with pytest.raises(ValueError, match="X has no columns"):
        fitted.predict(np.empty((40, 0)))


def test_deconfounder_cross_validates_without_covariates(routing):
    y, A = cause_data()
    X0 = np.empty((len(y), 0))
    cv = KFold(3, shuffle=True, random_state=0)
    folds = list(cv.split(X0))

    def none_fit_scores(**params):
        """Each fold fitted and scored with X=None, by hand."""
        return [Deconfounder(**{**TINY_DECONF, **params}, random_state=0)
                .fit(None, y[train], treatment=A[train])
                .score(None, y[test], treatment=A[test]) for train, test in folds]

    result = cross_validate(Deconfounder(**TINY_DECONF, random_state=0), X0, y, cv=cv,
                            params={"treatment": A})
    np.testing.assert_array_equal(result["test_score"], none_fit_scores())
    search = GridSearchCV(Deconfounder(**TINY_DECONF, random_state=0),
                          {"n_factors": [1, 2]}, cv=cv)
    search.fit(X0, y, treatment=A)
    for k, mean_score in zip((1, 2), search.cv_results_["mean_test_score"]):
        assert mean_score == pytest.approx(np.mean(none_fit_scores(n_factors=k)),
                                           rel=1e-12, abs=1e-12)
    # cross_val_predict: one effect per row (predict on an (m, 0) fold has m rows)
    tau = cross_val_predict(Deconfounder(**TINY_DECONF, random_state=0), X0, y, cv=cv,
                            params={"treatment": A})
    assert tau.shape == (len(y),)


# ---- scorers on a fitted search: nested cross-validation ---------------------------------

def test_nested_cv_with_factual_scorer_scores_each_folds_best_estimator(routing):
    X, y, t, _ = simulate(n=120, seed=2)
    outer = KFold(2, shuffle=True, random_state=0)
    for model, grid in ((TARNet(**TINY, random_state=0), {"max_epochs": [1, 2]}),
                        (Pipeline([("scale", StandardScaler()),
                                   ("net", TARNet(**TINY, random_state=0))]),
                         {"net__max_epochs": [1, 2]})):
        inner = GridSearchCV(model, grid, cv=2)
        result = cross_validate(inner, X, y, cv=outer, scoring=factual_r2_scorer,
                                params={"treatment": t}, return_estimator=True,
                                error_score="raise")
        expected = [search.best_estimator_.score(X[test], y[test], treatment=t[test])
                    for search, (_, test) in zip(result["estimator"], outer.split(X))]
        np.testing.assert_array_equal(result["test_score"], expected)


def test_nested_cv_with_causal_validation_scorer_scores_each_folds_best_estimator(routing):
    X, y, t, z = iv_data()
    outer = KFold(2, shuffle=True, random_state=0)
    inner = GridSearchCV(DeepIV(**TINY_IV, random_state=0), {"n_components": [1, 2]},
                         cv=2, scoring=causal_validation_scorer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short training on purpose
        result = cross_validate(inner, X, y, cv=outer, scoring=causal_validation_scorer,
                                params={"treatment": t, "instrument": z},
                                return_estimator=True, error_score="raise")
    expected = [-search.best_estimator_.causal_validation_loss(X[test], y[test], z[test])
                for search, (_, test) in zip(result["estimator"], outer.split(X))]
    np.testing.assert_array_equal(result["test_score"], expected)


def test_scorer_refuses_a_search_without_a_refitted_model(routing):
    X, y, t, _ = simulate(n=60, seed=3)
    search = GridSearchCV(TARNet(**TINY, random_state=0), {"max_epochs": [1, 2]}, cv=2,
                          refit=False).fit(X, y, treatment=t)
    with pytest.raises(TypeError, match="refit=False"):
        factual_r2_scorer(search, X, y, treatment=t)


# ---- set_params after fit: prediction follows the fitted state ---------------------------

def test_deepiv_predicts_with_the_fitted_treatment_type():
    X, y, t, z = iv_data()
    levels = np.digitize(t, [-1.0, 1.0]).astype(float)  # three treatment levels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        discrete = DeepIV(**TINY_IV, treatment_type="discrete", random_state=0).fit(
            X, y, treatment=levels, instrument=z)
        continuous = DeepIV(**TINY_IV, random_state=0).fit(X, y, treatment=t, instrument=z)
    before = (discrete.effect(X, T0=0, T1=2),
              discrete.first_stage_log_likelihood(X, levels, z),
              discrete.causal_validation_loss(X, y, z))
    discrete.set_params(treatment_type="continuous")
    assert discrete.treatment_type_ == "discrete"
    np.testing.assert_array_equal(discrete.effect(X, T0=0, T1=2), before[0])
    assert discrete.first_stage_log_likelihood(X, levels, z) == before[1]
    assert discrete.causal_validation_loss(X, y, z) == before[2]

    before = (continuous.effect(X), continuous.marginal_effect(X, T=t),
              continuous.predict_outcome(X, t))
    continuous.set_params(treatment_type="discrete")
    np.testing.assert_array_equal(continuous.effect(X), before[0])
    np.testing.assert_array_equal(continuous.marginal_effect(X, T=t), before[1])
    np.testing.assert_array_equal(continuous.predict_outcome(X, t), before[2])
    # the new value takes effect at the next fit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        continuous.fit(X, y, treatment=levels, instrument=z)
    assert continuous.treatment_type_ == "discrete"


def test_deconfounder_predicts_with_the_fitted_outcome_model():
    y, A = cause_data()
    for fitted, other in (("linear", "neural"), ("neural", "linear")):
        extra = NEURAL_DECONF if fitted == "neural" else {}
        est = Deconfounder(**TINY_DECONF, **extra, random_state=0).fit(None, y, treatment=A)
        before = (est.effect(None, observed_causes=A), est.cause_effects(),
                  est.predict_outcome(None, A), est.score(None, y, treatment=A))
        est.set_params(outcome_model=other)
        assert est.outcome_model_ == fitted
        np.testing.assert_array_equal(est.effect(None, observed_causes=A), before[0])
        np.testing.assert_array_equal(est.cause_effects(), before[1])
        np.testing.assert_array_equal(est.predict_outcome(None, A), before[2])
        assert est.score(None, y, treatment=A) == before[3]


# ---- random_state=None: NumPy's global RandomState, as in scikit-learn ------------------

def test_random_state_none_draws_from_numpys_global_random_state():
    X, y, t, _ = simulate(n=60, seed=4)
    state = np.random.get_state()
    try:
        np.random.seed(5)
        first = TARNet(**TINY).fit(X, y, treatment=t).effect(X)
        np.random.seed(5)
        second = TARNet(**TINY).fit(X, y, treatment=t).effect(X)
    finally:
        np.random.set_state(state)
    np.testing.assert_array_equal(first, second)


# ---- array-likes that only convert (``__array__``) --------------------------------------

class _TreatmentFromFirstColumn(TARNet):
    """sklearn's checks call ``fit(X, y)``: the treatment is X's first column above its
    median (read through ``__array__``, as the estimator must)."""

    def fit(self, X, y, treatment=None):
        first = np.asarray(X)[:, 0]
        return super().fit(X, y, treatment=(first > np.median(first)).astype(float))


def test_sklearn_check_regressor_data_not_an_array():
    check_regressor_data_not_an_array(
        "TARNet", _TreatmentFromFirstColumn(**TINY, random_state=0))


def test_not_an_array_inputs_fit_and_predict_as_arrays():
    # _NotAnArray converts through __array__ and refuses every NumPy function
    X, y, t, _ = simulate(n=60, seed=5)
    ref = TARNet(**TINY, random_state=0).fit(X, y, treatment=t)
    est = TARNet(**TINY, random_state=0).fit(_NotAnArray(X), _NotAnArray(y),
                                             treatment=_NotAnArray(t))
    np.testing.assert_array_equal(est.predict(_NotAnArray(X)), ref.predict(X))

    X, y, t, z = iv_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = DeepIV(**TINY_IV, random_state=0).fit(X, y, treatment=t, instrument=z)
        est = DeepIV(**TINY_IV, random_state=0).fit(
            _NotAnArray(X), _NotAnArray(y), treatment=_NotAnArray(t),
            instrument=_NotAnArray(z))
    np.testing.assert_array_equal(est.effect(_NotAnArray(X)), ref.effect(X))

    y, A = cause_data()
    X0 = np.random.RandomState(0).randn(len(y), 2)
    ref = Deconfounder(**TINY_DECONF, random_state=0).fit(X0, y, treatment=A)
    est = Deconfounder(**TINY_DECONF, random_state=0).fit(
        _NotAnArray(X0), _NotAnArray(y), treatment=_NotAnArray(A))
    np.testing.assert_array_equal(est.coef_, ref.coef_)


def test_complex_input_is_still_refused():
    X, y, t, _ = simulate(n=40)
    frame = pd.DataFrame(X).assign(c=X[:, 0] + 1j)
    for X_bad, y_bad in ((X + 0j, y), (frame, y), (X, y + 0j), (X.tolist(), y + 0j)):
        with pytest.raises(ValueError, match="holds complex numbers"):
            TARNet(**TINY).fit(X_bad, y_bad, treatment=t)
