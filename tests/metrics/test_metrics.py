import copy
import pickle

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.base import BaseEstimator
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score, cross_validate
from sklearn.utils.metadata_routing import get_routing_for_object

from causalnn.metrics import (
    ate_error,
    causal_validation_scorer,
    factual_mse_scorer,
    factual_r2_scorer,
    get_scorer,
    get_scorer_names,
    pehe,
    pehe_scorer,
)

# --------------------------------------------------------------------------
# pehe / ate_error
# --------------------------------------------------------------------------


def test_pehe_hand_computed():
    # errors 0, 0, 3 -> sqrt(9 / 3)
    assert pehe([1.0, 2.0, 3.0], [1.0, 2.0, 6.0]) == pytest.approx(np.sqrt(3.0))
    # errors 1, -1, 2, -2 -> sqrt(10 / 4)
    assert pehe(np.array([0.0, 0.0, 0.0, 0.0]), [1.0, -1.0, 2.0, -2.0]) == pytest.approx(
        np.sqrt(2.5)
    )
    assert pehe([4.0, 4.0], [4.0, 4.0]) == 0.0
    assert isinstance(pehe([1.0], [2.0]), float)


def test_pehe_accepts_series():
    assert pehe(pd.Series([1.0, 2.0]), pd.Series([2.0, 4.0])) == pytest.approx(
        np.sqrt(2.5)
    )


def test_ate_error_hand_computed():
    assert ate_error([1.0, 2.0, 3.0], [2.0, 2.0, 5.0]) == pytest.approx(1.0)
    assert ate_error([1.0, 2.0, 3.0], 2.5) == pytest.approx(0.5)
    assert ate_error(4.0, [3.0, 4.0, 8.0]) == pytest.approx(1.0)
    assert ate_error(4.0, 3.25) == pytest.approx(0.75)
    assert isinstance(ate_error(1.0, 1.0), float)


@pytest.mark.parametrize(
    "true_effect, estimated, name",
    [
        ([1.0, 2.0], [1.0, 2.0, 3.0], "estimated_effect"),
        ([1.0, np.nan], [1.0, 2.0], "true_effect"),
        ([1.0, 2.0], [1.0, np.inf], "estimated_effect"),
        ([[1.0], [2.0]], [1.0, 2.0], "true_effect"),
        ([1.0, 2.0], [[1.0, 2.0]], "estimated_effect"),
        ([], [], "true_effect"),
        (["a", "b"], [1.0, 2.0], "true_effect"),
    ],
)
@pytest.mark.parametrize("metric", [pehe, ate_error])
def test_metric_validation(metric, true_effect, estimated, name):
    with pytest.raises(ValueError, match=name):
        metric(true_effect, estimated)


def test_pehe_rejects_scalar():
    with pytest.raises(ValueError, match="true_effect"):
        pehe(1.0, [1.0, 2.0])
    with pytest.raises(ValueError, match="estimated_effect"):
        pehe([1.0, 2.0], 1.0)


# --------------------------------------------------------------------------
# Scorers
# --------------------------------------------------------------------------


class ArmMeanEstimator(BaseEstimator):
    """Tiny fake causal estimator: per-arm means of y plus ``slope * x0``."""

    __metadata_request__fit = {"treatment": True}
    __metadata_request__score = {"treatment": True}

    def __init__(self, slope=0.0, treatment_col=None):
        self.slope = slope
        self.treatment_col = treatment_col

    def _split(self, X, treatment):
        if self.treatment_col is not None:
            treatment = X[self.treatment_col].to_numpy()
            X = X.drop(columns=self.treatment_col)
        return np.asarray(X, dtype=float), np.asarray(treatment).astype(int)

    def fit(self, X, y, treatment=None):
        X, t = self._split(X, treatment)
        y = np.asarray(y, dtype=float)
        self.means_ = np.array([y[t == 0].mean(), y[t == 1].mean()])
        return self

    def predict_outcome(self, X, treatment):
        X, t = self._split(X, treatment)
        return self.means_[t] + self.slope * t * X[:, 0]

    def predict(self, X):
        X, _ = self._split(X, np.zeros(len(X)))
        return self.means_[1] - self.means_[0] + self.slope * X[:, 0]

    def score(self, X, y, treatment=None):
        return 0.0


def _toy_data(n=30, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 3))
    t = np.tile([0, 1], n // 2)
    tau = 1.0 + 0.5 * X[:, 0]
    y = X[:, 1] + t * tau + 0.1 * rng.normal(size=n)
    return X, t, y, tau


def _expected_fold_scores(X, t, y, tau, slope, cv):
    r2, mse, neg_pehe = [], [], []
    for train, test in cv.split(X):
        m0 = y[train][t[train] == 0].mean()
        m1 = y[train][t[train] == 1].mean()
        tt = t[test]
        mu = np.where(tt == 1, m1 + slope * X[test, 0], m0)
        resid = y[test] - mu
        r2.append(1 - np.sum(resid**2) / np.sum((y[test] - y[test].mean()) ** 2))
        mse.append(-np.mean(resid**2))
        tau_hat = m1 - m0 + slope * X[test, 0]
        neg_pehe.append(-np.sqrt(np.mean((tau[test] - tau_hat) ** 2)))
    return np.array(r2), np.array(mse), np.array(neg_pehe)


def test_scorers_in_cross_validate_with_routing():
    X, t, y, tau = _toy_data()
    cv = KFold(3, shuffle=False)
    est = ArmMeanEstimator(slope=0.3)
    with sklearn.config_context(enable_metadata_routing=True):
        res = cross_validate(
            est,
            X,
            y,
            cv=cv,
            scoring={
                "r2": factual_r2_scorer,
                "mse": factual_mse_scorer,
                "pehe": pehe_scorer,
            },
            params={"treatment": t, "true_effect": tau},
        )
    r2, mse, neg_pehe = _expected_fold_scores(X, t, y, tau, 0.3, cv)
    np.testing.assert_allclose(res["test_r2"], r2)
    np.testing.assert_allclose(res["test_mse"], mse)
    np.testing.assert_allclose(res["test_pehe"], neg_pehe)
    assert np.all(res["test_pehe"] < 0) and np.all(res["test_mse"] < 0)


@pytest.mark.parametrize(
    "scoring, which", [("factual_r2", 0), ("neg_factual_mse", 1), ("neg_pehe", 2)]
)
def test_single_scorer_cross_val_score_with_routing(scoring, which):
    X, t, y, tau = _toy_data(seed=1)
    cv = KFold(3, shuffle=False)
    params = {"treatment": t}
    if scoring == "neg_pehe":
        params["true_effect"] = tau
    with sklearn.config_context(enable_metadata_routing=True):
        scores = cross_val_score(
            ArmMeanEstimator(slope=-0.2),
            X,
            y,
            cv=cv,
            scoring=get_scorer(scoring),
            params=params,
        )
    expected = _expected_fold_scores(X, t, y, tau, -0.2, cv)[which]
    np.testing.assert_allclose(scores, expected)


def test_factual_scorer_uses_treatment_col_without_routing():
    X, t, y, tau = _toy_data(seed=2)
    cv = KFold(3, shuffle=False)
    df = pd.DataFrame(X, columns=["a", "b", "c"]).assign(w=t)
    est = ArmMeanEstimator(slope=0.3, treatment_col="w")
    res = cross_validate(
        est,
        df,
        y,
        cv=cv,
        scoring={"r2": factual_r2_scorer, "mse": factual_mse_scorer},
    )
    r2, mse, _ = _expected_fold_scores(X, t, y, tau, 0.3, cv)
    np.testing.assert_allclose(res["test_r2"], r2)
    np.testing.assert_allclose(res["test_mse"], mse)


def test_grid_search_selects_by_pehe():
    X, t, y, tau = _toy_data(n=40, seed=3)
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(
            ArmMeanEstimator(),
            {"slope": [-1.0, 0.0, 0.5, 2.0]},
            scoring=pehe_scorer,
            cv=KFold(4, shuffle=False),
        )
        search.fit(X, y, treatment=t, true_effect=tau)
    # the true effect slope on x0 is 0.5
    assert search.best_params_ == {"slope": 0.5}


def test_direct_call():
    X, t, y, tau = _toy_data()
    est = ArmMeanEstimator(slope=0.5).fit(X, y, treatment=t)
    mu = est.predict_outcome(X, t)
    assert factual_mse_scorer(est, X, y, treatment=t) == pytest.approx(
        -np.mean((y - mu) ** 2)
    )
    assert pehe_scorer(est, X, y, true_effect=tau) == pytest.approx(
        -pehe(tau, est.predict(X))
    )


def test_factual_scorer_without_treatment_raises():
    X, t, y, _ = _toy_data()
    est = ArmMeanEstimator().fit(X, y, treatment=t)
    with pytest.raises(ValueError, match="treatment"):
        factual_r2_scorer(est, X, y)


def test_pehe_scorer_without_true_effect_raises():
    X, t, y, _ = _toy_data()
    est = ArmMeanEstimator().fit(X, y, treatment=t)
    with pytest.raises(ValueError, match="true_effect"):
        pehe_scorer(est, X, y)


def test_scorer_rejects_unknown_metadata():
    X, t, y, tau = _toy_data()
    est = ArmMeanEstimator().fit(X, y, treatment=t)
    with pytest.raises(TypeError, match="sample_weight"):
        factual_r2_scorer(est, X, y, treatment=t, sample_weight=np.ones(len(y)))


def test_metadata_requests():
    assert get_routing_for_object(factual_r2_scorer).score.requests == {
        "treatment": True
    }
    assert get_routing_for_object(factual_mse_scorer).score.requests == {
        "treatment": True
    }
    assert get_routing_for_object(pehe_scorer).score.requests == {
        "true_effect": True
    }


def test_set_score_request_on_copy():
    scorer = get_scorer("neg_pehe").set_score_request(true_effect="tau")
    assert get_routing_for_object(scorer).score.requests == {"true_effect": "tau"}
    # module-level scorer unchanged
    assert get_routing_for_object(pehe_scorer).score.requests == {
        "true_effect": True
    }
    with pytest.raises(ValueError, match="weight"):
        scorer.set_score_request(weight=True)

    X, t, y, tau = _toy_data()
    cv = KFold(3, shuffle=False)
    with sklearn.config_context(enable_metadata_routing=True):
        scores = cross_val_score(
            ArmMeanEstimator(), X, y, cv=cv, scoring=scorer,
            params={"treatment": t, "tau": tau},
        )
    np.testing.assert_allclose(scores, _expected_fold_scores(X, t, y, tau, 0.0, cv)[2])


def test_get_scorer():
    assert get_scorer_names() == ["factual_r2", "neg_causal_validation_loss",
                                  "neg_factual_mse", "neg_pehe"]
    assert isinstance(get_scorer("neg_causal_validation_loss"),
                      type(causal_validation_scorer))
    s = get_scorer("neg_factual_mse")
    assert s is not factual_mse_scorer
    assert repr(s) == "causalnn.metrics.get_scorer('neg_factual_mse')"
    # scikit-learn names are delegated
    assert get_scorer("r2") is not None
    assert get_scorer(pehe_scorer) is pehe_scorer
    with pytest.raises(ValueError, match="not a valid scorer"):
        get_scorer("nope")


def test_scorers_pickle_and_copy():
    for scorer in (factual_r2_scorer, factual_mse_scorer, pehe_scorer):
        for clone in (pickle.loads(pickle.dumps(scorer)), copy.deepcopy(scorer)):
            assert repr(clone) == repr(scorer)


# --------------------------------------------------------------------------
# The factual scorers score what the estimator's own `score` scores
# --------------------------------------------------------------------------


def _multi_cause_fit(outcome_model):
    from causalnn import Deconfounder
    from causalnn.datasets import make_multi_cause

    data = make_multi_cause(n_samples=200, n_causes=8, n_factors=2, confounding=2.0,
                            random_state=0)
    X = np.random.RandomState(5).normal(size=(200, 2))
    y = data.y + X[:, 0]
    est = Deconfounder(n_factors=2, outcome_model=outcome_model, predictive_check=False,
                       factor_max_epochs=30, outcome_layers=(16,), max_epochs=100,
                       random_state=0).fit(X, y, treatment=data.treatment)
    return est, X, y, data.treatment


@pytest.mark.filterwarnings("ignore::causalnn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("outcome_model", ["linear", "neural"])
def test_factual_scorers_equal_deconfounder_score(outcome_model):
    # Deconfounder.score predicts each unit at its observed causes and its own
    # substitute confounder, predict_outcome(X, A, observed_causes=A); plain
    # predict_outcome(X, A) averages over other rows' z_hat, an interventional mean
    est, X, y, A = _multi_cause_fit(outcome_model)
    factual = est.predict_outcome(X, A, observed_causes=A)
    assert factual_r2_scorer(est, X, y, treatment=A) == est.score(X, y, treatment=A)
    assert est.score(X, y, treatment=A) == pytest.approx(
        1 - np.sum((y - factual) ** 2) / np.sum((y - y.mean()) ** 2), rel=1e-12)
    assert factual_mse_scorer(est, X, y, treatment=A) == pytest.approx(
        -np.mean((y - factual) ** 2), rel=1e-12)
    # the interventional mean is another, worse fit to the observed outcomes
    interventional = est.predict_outcome(X, A)
    assert np.mean((y - interventional) ** 2) > 1.05 * np.mean((y - factual) ** 2)


def test_factual_scorer_in_cross_validate_equals_default_score_for_deconfounder():
    est, X, y, A = _multi_cause_fit("linear")
    cv = KFold(3, shuffle=True, random_state=0)
    with sklearn.config_context(enable_metadata_routing=True):
        default = cross_validate(est, X, y, cv=cv, params={"treatment": A})
        factual = cross_validate(est, X, y, cv=cv, params={"treatment": A},
                                 scoring=factual_r2_scorer)
    np.testing.assert_array_equal(factual["test_score"], default["test_score"])


# --------------------------------------------------------------------------
# Pandas rows: the scorers refuse what `score` refuses
# --------------------------------------------------------------------------


def test_scorers_refuse_pandas_targets_indexed_unlike_X():
    X, t, y, tau = _toy_data()
    index = np.arange(100, 100 + len(y))
    df = pd.DataFrame(X, columns=["a", "b", "c"], index=index)
    est = ArmMeanEstimator(slope=0.5).fit(df, y, treatment=t)
    y_aligned, tau_aligned = pd.Series(y, index=index), pd.Series(tau, index=index)
    shuffled = np.random.RandomState(0).permutation(len(y))
    # aligned Series score as their arrays do
    assert factual_r2_scorer(est, df, y_aligned, treatment=t) == pytest.approx(
        factual_r2_scorer(est, X, y, treatment=t))
    assert pehe_scorer(est, df, y, true_effect=tau_aligned) == pytest.approx(
        pehe_scorer(est, X, y, true_effect=tau))
    for scorer in (factual_r2_scorer, factual_mse_scorer):
        with pytest.raises(ValueError, match=r"y_true is a pandas Series whose index has "
                                             r"the same labels as X\.index in another"):
            scorer(est, df, y_aligned.iloc[shuffled], treatment=t)
        with pytest.raises(ValueError, match=r"y_true is a pandas Series whose index has "
                                             r"labels that differ from X\.index"):
            scorer(est, df, pd.Series(y), treatment=t)
        with pytest.raises(ValueError, match=r"treatment is a pandas Series"):
            scorer(est, df, y, treatment=pd.Series(t, index=index).iloc[shuffled])
    with pytest.raises(ValueError, match=r"true_effect is a pandas Series whose index"):
        pehe_scorer(est, df, y, true_effect=tau_aligned.iloc[shuffled])
    # a Pipeline's transformers drop the index: the scorer checks before them
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipe = make_pipeline(StandardScaler(), ArmMeanEstimator()).fit(
        df, y, armmeanestimator__treatment=t)
    with pytest.raises(ValueError, match=r"y_true is a pandas Series"):
        factual_r2_scorer(pipe, df, y_aligned.iloc[shuffled], treatment=t)


def test_factual_scorer_refuses_y_indexed_unlike_the_cause_matrix_without_X():
    # the Deconfounder may have no covariates: its cause matrix carries the row labels
    from causalnn import Deconfounder
    from causalnn.datasets import make_multi_cause

    data = make_multi_cause(n_samples=120, n_causes=6, n_factors=1, random_state=0)
    index = np.arange(len(data.y))[::-1]
    A, y = pd.DataFrame(data.treatment, index=index), pd.Series(data.y, index=index)
    est = Deconfounder(n_factors=1, predictive_check=False, factor_max_epochs=20,
                       random_state=0).fit(None, y, treatment=A)
    assert factual_r2_scorer(est, None, y, treatment=A) == est.score(None, y, treatment=A)
    with pytest.raises(ValueError, match=r"y_true is a pandas Series whose index has the "
                                         r"same labels as treatment\.index"):
        factual_r2_scorer(est, None, y.sort_index(), treatment=A)


# --------------------------------------------------------------------------
# causal_validation_scorer (instrumental-variable estimators)
# --------------------------------------------------------------------------


class ReducedFormIV(BaseEstimator):
    """Tiny fake IV estimator: its causal validation loss is the held-out squared error
    of the least-squares line of y on the instrument fitted in ``fit``."""

    __metadata_request__fit = {"treatment": True, "instrument": True}

    def __init__(self, instrument_cols=None):
        self.instrument_cols = instrument_cols

    def fit(self, X, y, treatment=None, instrument=None):
        z = np.asarray(instrument, dtype=float).ravel()
        self.coef_ = np.polyfit(z, np.asarray(y, dtype=float), 1)
        return self

    def predict(self, X):
        return np.zeros(len(X))

    def causal_validation_loss(self, X, y, instrument=None):
        if instrument is None:
            instrument = X[self.instrument_cols]
        z = np.asarray(instrument, dtype=float).ravel()
        return float(np.mean((np.asarray(y) - np.polyval(self.coef_, z)) ** 2))


def test_causal_validation_scorer_gets_each_folds_instruments():
    X, t, y, _ = _toy_data()
    z = X[:, 2] + np.arange(len(y)) / 10
    cv = KFold(3, shuffle=False)
    expected = []
    for train, test in cv.split(X):
        coef = np.polyfit(z[train], y[train], 1)
        expected.append(-np.mean((y[test] - np.polyval(coef, z[test])) ** 2))
    assert get_routing_for_object(causal_validation_scorer).score.requests == {
        "instrument": True}
    with sklearn.config_context(enable_metadata_routing=True):
        scores = cross_val_score(ReducedFormIV(), X, y, cv=cv,
                                 scoring=causal_validation_scorer,
                                 params={"treatment": t, "instrument": z})
    np.testing.assert_allclose(scores, expected, rtol=1e-12)
    # instruments as a DataFrame column need no routing
    frame = pd.DataFrame({"x": X[:, 0], "z": z})
    scores = cross_val_score(ReducedFormIV(instrument_cols="z"), frame, y, cv=cv,
                             scoring=causal_validation_scorer,
                             params={"treatment": t, "instrument": z})
    np.testing.assert_allclose(scores, expected, rtol=1e-12)


def test_causal_validation_scorer_errors_and_copies():
    X, t, y, _ = _toy_data()
    z = X[:, 2]
    iv = ReducedFormIV().fit(X, y, instrument=z)
    with pytest.raises(ValueError, match=r"needs the instruments: set `instrument_cols`"):
        causal_validation_scorer(iv, X, y)
    with pytest.raises(TypeError, match=r"needs an instrumental-variable estimator"):
        causal_validation_scorer(ArmMeanEstimator().fit(X, y, treatment=t), X, y,
                                 instrument=z)
    with pytest.raises(TypeError, match=r"unexpected metadata \['treatment'\]"):
        causal_validation_scorer(iv, X, y, instrument=z, treatment=t)
    with pytest.raises(ValueError, match=r"instrument is a pandas Series"):
        causal_validation_scorer(iv, pd.DataFrame(X), y,
                                 instrument=pd.Series(z, index=np.arange(len(z)) + 1))
    for clone in (pickle.loads(pickle.dumps(causal_validation_scorer)),
                  copy.deepcopy(causal_validation_scorer)):
        assert repr(clone) == "causalnn.metrics.causal_validation_scorer"
        assert clone(iv, X, y, instrument=z) == causal_validation_scorer(
            iv, X, y, instrument=z)


def test_factual_scorer_on_a_pipeline_scores_its_last_step_on_transformed_rows():
    """A Pipeline has no ``predict_outcome``: the scorer runs X through the pipeline's
    transformers and scores the last step on the result, exactly what the fitted
    pipeline would predict. With ``slope=1`` the prediction reads the *scaled* x0, so
    scoring the last step on the raw rows would give another number."""
    from sklearn.metrics import mean_squared_error, r2_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.RandomState(0)
    X = 5.0 + 3.0 * rng.randn(200, 2)
    t = (rng.rand(200) < 0.5).astype(float)
    y = t * (X[:, 0] - 5.0) / 3.0 + rng.randn(200)
    pipe = make_pipeline(StandardScaler(), ArmMeanEstimator(slope=1.0)).fit(
        X, y, armmeanestimator__treatment=t)
    expected = pipe[-1].predict_outcome(pipe[0].transform(X), t)
    assert factual_r2_scorer(pipe, X, y, treatment=t) == pytest.approx(
        r2_score(y, expected), rel=1e-12)
    assert factual_mse_scorer(pipe, X, y, treatment=t) == pytest.approx(
        -mean_squared_error(y, expected), rel=1e-12)
