"""The estimators inside sklearn's tools, with the treatment travelling with the data."""
import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from causalnn import CFRNet, Dragonnet, TARNet

from conftest import SMALL, simulate

X, Y, T, TAU = simulate(n=240, d=4)
FAST = {**SMALL, "max_epochs": 3}


@pytest.fixture
def routing():
    with sklearn.config_context(enable_metadata_routing=True):
        yield


def test_pipeline_with_gridsearch_routes_treatment(routing):
    pipe = Pipeline([("scale", StandardScaler()), ("net", CFRNet(**FAST, random_state=0))])
    search = GridSearchCV(pipe, {"net__head_layers": [(8,), (16, 16)]}, cv=2)
    search.fit(X, Y, treatment=T)
    assert search.best_params_["net__head_layers"] in [(8,), (16, 16)]
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.predict(X).shape == (len(X),)


def test_cross_validate_splits_treatment_per_fold(routing):
    seen = []

    class Recording(TARNet):
        def fit(self, X, y, *, treatment=None):
            seen.append(len(treatment))
            return super().fit(X, y, treatment=treatment)

    scores = cross_validate(Recording(**FAST, random_state=0), X, Y, cv=KFold(3),
                            params={"treatment": T})
    assert seen == [160, 160, 160]
    assert np.all(np.isfinite(scores["test_score"]))


def test_cross_validate_scores_with_the_fold_treatment(routing):
    """The default score must equal a hand-computed factual R^2 on each test fold."""
    est = TARNet(**FAST, random_state=0)
    result = cross_validate(est, X, Y, cv=KFold(2), params={"treatment": T},
                            return_estimator=True, return_indices=True)
    for fitted, test, score in zip(result["estimator"], result["indices"]["test"],
                                   result["test_score"]):
        assert score == pytest.approx(fitted.score(X[test], Y[test], treatment=T[test]))


def test_cross_val_score_with_treatment_col_needs_no_routing():
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])]).assign(t=T)
    scores = cross_val_score(Dragonnet(**FAST, treatment_col="t", random_state=0),
                             frame, Y, cv=3)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))


def test_treatment_col_drops_the_column_from_the_covariates():
    frame = pd.DataFrame(X, columns=list("abcd")).assign(t=T)
    est = TARNet(**FAST, treatment_col="t", random_state=0).fit(frame, Y)
    assert list(est.feature_names_in_) == list("abcd")
    # effect ignores the treatment column; predict_outcome reads it
    np.testing.assert_allclose(est.effect(frame), est.effect(frame.drop(columns="t")))
    np.testing.assert_allclose(est.predict_outcome(frame),
                               est.predict_outcome(frame.drop(columns="t"), T))


def test_pipeline_without_routing_takes_step_parameters():
    pipe = Pipeline([("scale", StandardScaler()), ("net", TARNet(**FAST, random_state=0))])
    pipe.fit(X, Y, net__treatment=T)
    direct = TARNet(**FAST, random_state=0).fit(StandardScaler().fit_transform(X), Y,
                                                treatment=T)
    np.testing.assert_allclose(pipe.predict(X), direct.effect(StandardScaler().fit(X).transform(X)),
                               rtol=1e-5, atol=1e-6)


def test_column_transformer_pipeline(routing):
    frame = pd.DataFrame(X, columns=list("abcd"))
    prep = ColumnTransformer([("scale", StandardScaler(), ["a", "b"])], remainder="passthrough")
    pipe = Pipeline([("prep", prep), ("net", CFRNet(**FAST, ipm="mmd_linear", random_state=0))])
    pipe.fit(frame, Y, treatment=T)
    assert pipe.predict(frame).shape == (len(frame),)


def test_score_without_treatment_explains_the_routes():
    est = TARNet(**FAST, random_state=0).fit(X, Y, treatment=T)
    with pytest.raises(ValueError, match="enable_metadata_routing"):
        est.score(X, Y)


def test_pehe_scorer_on_simulated_effects(routing):
    from causalnn.metrics import get_scorer, pehe
    result = cross_validate(TARNet(**FAST, random_state=0), X, Y, cv=KFold(2),
                            scoring={"pehe": get_scorer("neg_pehe"),
                                     "r2": get_scorer("factual_r2")},
                            params={"treatment": T, "true_effect": TAU},
                            return_estimator=True, return_indices=True)
    for fitted, test, score in zip(result["estimator"], result["indices"]["test"],
                                   result["test_pehe"]):
        assert score == pytest.approx(-pehe(TAU[test], fitted.effect(X[test])))
    np.testing.assert_allclose(result["test_r2"], [
        f.score(X[te], Y[te], treatment=T[te])
        for f, te in zip(result["estimator"], result["indices"]["test"])])


def test_factual_scorer_on_a_pipeline(routing):
    from causalnn.metrics import factual_r2_scorer
    pipe = Pipeline([("scale", StandardScaler()), ("net", TARNet(**FAST, random_state=0))])
    scores = cross_val_score(pipe, X, Y, cv=KFold(2), scoring=factual_r2_scorer,
                             params={"treatment": T})
    assert np.all(np.isfinite(scores))
