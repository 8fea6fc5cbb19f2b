"""The deconfounder (Wang & Blei 2019) against simulations with known effects."""
import importlib.util
import pickle
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import (check_get_params_invariance,
                                            check_no_attributes_set_in_init,
                                            check_set_params)

from causalnn import Deconfounder
from causalnn.datasets import make_multi_cause
from causalnn.estimators.latent import PredictiveCheckWarning

FAST = dict(n_replicates=20, factor_max_epochs=150)
NEURAL = dict(outcome_model="neural", outcome_layers=(16,), max_epochs=30, patience=5)


def rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


@pytest.fixture(scope="module")
def confounded():
    return make_multi_cause(n_samples=1500, n_causes=60, n_factors=3, confounding=1.0,
                            random_state=1)


@pytest.fixture(scope="module")
def small():
    return make_multi_cause(n_samples=300, n_causes=12, n_factors=2, random_state=0)


def fit_quiet(est, X, y, A):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PredictiveCheckWarning)
        return est.fit(X, y, treatment=A)


def test_deconfounder_beats_naive_under_latent_confounding(confounded):
    d = confounded
    est = Deconfounder(n_factors=3, random_state=0, **FAST).fit(None, d.y, treatment=d.treatment)
    deconfounded = rmse(est.cause_effects(), d.effects)
    naive = rmse(est.cause_effects(naive=True), d.effects)
    assert est.factor_model_kind_ == "bernoulli"
    assert deconfounded < 0.6 * naive, (deconfounded, naive)
    assert est.predictive_check_ > 0.1


def test_without_confounding_deconfounder_and_naive_agree():
    d = make_multi_cause(n_samples=1500, n_causes=40, n_factors=3, confounding=0.0,
                         random_state=2)
    est = Deconfounder(n_factors=3, random_state=0, **FAST).fit(None, d.y, treatment=d.treatment)
    gap = rmse(est.cause_effects(), est.cause_effects(naive=True))
    assert gap < 0.1, gap
    assert rmse(est.cause_effects(), d.effects) < 0.15


def _gaussian_causes(n_factors, seed=0, n=800, m=40):
    rng = np.random.RandomState(seed)
    Z = rng.randn(n, n_factors)
    return Z @ rng.randn(n_factors, m) + 0.5 * rng.randn(n, m)


def test_predictive_check_flags_too_few_factors():
    A = _gaussian_causes(n_factors=6)
    y = A[:, 0] + np.random.RandomState(1).randn(len(A))
    with pytest.warns(PredictiveCheckWarning, match="predictive check"):
        too_few = Deconfounder(factor_model="ppca", n_factors=1, random_state=0,
                               n_replicates=50).fit(None, y, treatment=A)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PredictiveCheckWarning)
        right = Deconfounder(factor_model="ppca", n_factors=6, random_state=0,
                             n_replicates=50).fit(None, y, treatment=A)
    # the missing factors spread the units' held-out p-values to both tails
    assert too_few.predictive_check_extremes_ > 0.2
    assert right.predictive_check_extremes_ < 0.2
    assert right.predictive_check_ > 0.1
    assert too_few.predictive_check_pvalues_.shape == (len(A),)


def test_films_example_ranks_the_planted_franchise_actor_first(capsys):
    path = Path(__file__).resolve().parents[2] / "examples" / "deconfounder_films.py"
    spec = importlib.util.spec_from_file_location("deconfounder_films", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    table, errors = module.main()
    assert table.index[0] == "planted"
    assert abs(table.loc["planted", "deconfounded"]) < 0.5 * table.loc["planted", "naive"]
    assert errors["deconfounded"] < errors["naive"]
    assert "planted" in capsys.readouterr().out


@pytest.mark.parametrize("factor_model", ["ppca", "bernoulli", "poisson", "deep"])
def test_factor_models_give_a_substitute_confounder_that_tracks_z(factor_model):
    rng = np.random.RandomState(0)
    n, m = 400, 15
    Z = rng.randn(n, 2)
    W = rng.randn(2, m)
    if factor_model == "poisson":
        A = rng.poisson(np.exp(0.5 + 0.5 * Z @ W)).astype(float)
    elif factor_model == "ppca":
        A = Z @ W + 0.3 * rng.randn(n, m)
    else:
        A = (rng.rand(n, m) < 1 / (1 + np.exp(-1.5 * Z @ W))).astype(float)
    y = A.sum(1) + Z[:, 0] + rng.randn(n)
    est = fit_quiet(Deconfounder(factor_model=factor_model, n_factors=2, random_state=0,
                                 factor_layers=(32,), **FAST), None, y, A)
    Z_hat = est.substitute_confounder(A)
    assert Z_hat.shape == (n, 2) and Z_hat.dtype == np.float64
    # Z_hat spans Z up to a rotation: Z is well predicted linearly from Z_hat
    design = np.column_stack([np.ones(n), Z_hat])
    resid = Z - design @ np.linalg.lstsq(design, Z, rcond=None)[0]
    assert 1 - resid.var() / Z.var() > 0.6
    assert est.cause_effects().shape == (m,)


def test_effect_api_linear(small):
    d = small
    est = Deconfounder(n_factors=2, random_state=0, **FAST).fit(None, d.y, treatment=d.treatment)
    m = d.treatment.shape[1]
    e = np.eye(m)
    # switching cause j on is its per-cause effect
    np.testing.assert_allclose(est.effect(None, T0=np.zeros((m, m)), T1=e),
                               est.cause_effects())
    assert est.effect().shape == (1,)
    np.testing.assert_allclose(est.effect(None, T0=d.treatment, T1=d.treatment), 0.0)
    np.testing.assert_allclose(est.effect(None, T0=0, T1=1), est.coef_.sum())
    assert isinstance(est.ate(None), float)
    mu = est.predict_outcome(None, d.treatment)
    assert mu.shape == (len(d.y),) and mu.dtype == np.float64
    assert 0 < est.score(None, d.y, treatment=d.treatment) <= 1
    assert est.cause_effects().dtype == np.float64


def test_neural_outcome_model_with_covariates(small):
    d = small
    rng = np.random.RandomState(0)
    X = rng.randn(len(d.y), 3)
    y = d.y + 2 * X[:, 0]
    est = fit_quiet(Deconfounder(n_factors=2, random_state=0, **FAST, **NEURAL), X, y,
                    d.treatment)
    assert est.n_features_in_ == 3 and est.history_
    effects = est.cause_effects()
    assert effects.shape == (12,) and np.all(np.isfinite(effects))
    tau = est.effect(X, T0=0, T1=d.treatment)
    assert tau.shape == (len(y),)
    np.testing.assert_allclose(est.effect(X, T0=d.treatment, T1=0), -tau, atol=1e-6)
    with pytest.raises(ValueError, match="X is None"):
        est.effect(None)
    # seeded fits repeat bit for bit
    again = fit_quiet(clone(est), X, y, d.treatment)
    np.testing.assert_array_equal(again.cause_effects(), effects)


def test_bad_input_errors(small):
    d = small
    A = d.treatment.copy()
    est = Deconfounder(n_factors=2, **FAST)
    A_nan = A.copy()
    A_nan[3, 2] = np.nan
    with pytest.raises(ValueError, match="treatment contains 1 NaN"):
        est.fit(None, d.y, treatment=A_nan)
    A_const = A.copy()
    A_const[:, 4] = 1.0
    with pytest.raises(ValueError, match=r"constant cause column.*\[4\]"):
        est.fit(None, d.y, treatment=A_const)
    frame = pd.DataFrame(A_const, columns=[f"actor{j}" for j in range(12)])
    with pytest.raises(ValueError, match="actor4"):
        est.fit(None, d.y, treatment=frame)
    with pytest.raises(ValueError, match="n_factors=12 must be smaller than the number of causes"):
        Deconfounder(n_factors=12).fit(None, d.y, treatment=A)
    with pytest.raises(ValueError, match="2-d matrix of causes"):
        est.fit(None, d.y, treatment=A[:, 0])
    with pytest.raises(ValueError, match="treatment is required"):
        est.fit(None, d.y)
    with pytest.raises(ValueError, match="rows but X has"):
        est.fit(np.zeros((10, 2)), d.y[:10], treatment=A)
    with pytest.raises(ValueError, match="factor_model='bernoulli' needs binary"):
        Deconfounder(factor_model="bernoulli", n_factors=2).fit(None, d.y, treatment=A * 2.5)
    with pytest.raises(ValueError, match="'n_factors' parameter"):
        Deconfounder(n_factors=0).fit(None, d.y, treatment=A)
    with pytest.raises(NotFittedError):
        est.cause_effects()
    fitted = est.fit(None, d.y, treatment=A)
    with pytest.raises(ValueError, match="treatment has 11 features"):
        fitted.substitute_confounder(A[:, :11])
    with pytest.raises(ValueError, match="T1 has 3 entries"):
        fitted.effect(None, T1=np.ones(3))


def test_clone_pickle_and_pipeline(small):
    d = small
    est = Deconfounder(n_factors=2, random_state=0, **FAST, **NEURAL)
    assert clone(est).get_params() == est.get_params()
    X = np.random.RandomState(0).randn(len(d.y), 2)
    fitted = fit_quiet(clone(est), X, d.y, d.treatment)
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.cause_effects(), fitted.cause_effects())
    np.testing.assert_array_equal(restored.substitute_confounder(d.treatment),
                                  fitted.substitute_confounder(d.treatment))
    pipe = Pipeline([("scale", StandardScaler()),
                     ("dcf", Deconfounder(n_factors=2, random_state=0, **FAST))])
    pipe.fit(X, d.y, dcf__treatment=d.treatment)
    assert pipe.predict(X).shape == (len(d.y),)
    np.testing.assert_allclose(pipe[-1].cause_effects(),
                               Deconfounder(n_factors=2, random_state=0, **FAST).fit(
                                   StandardScaler().fit_transform(X), d.y,
                                   treatment=d.treatment).cause_effects())


def test_cross_validate_routes_the_cause_matrix(small):
    d = small
    with sklearn.config_context(enable_metadata_routing=True):
        scores = cross_validate(Deconfounder(n_factors=2, random_state=0, **FAST),
                                np.zeros((len(d.y), 1)) + np.arange(len(d.y))[:, None] % 3,
                                d.y, cv=3, params={"treatment": d.treatment})
    assert np.all(np.isfinite(scores["test_score"]))


@pytest.mark.cuda
def test_gpu_fit_matches_shapes_and_unpickles(small):
    d = small
    est = fit_quiet(Deconfounder(factor_model="deep", n_factors=2, random_state=0,
                                 device="cuda", **FAST, **NEURAL), None, d.y, d.treatment)
    assert est.device_.type == "cuda"
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_allclose(restored.cause_effects(), est.cause_effects(), rtol=1e-5)


@pytest.mark.parametrize("check", [check_no_attributes_set_in_init,
                                   check_get_params_invariance, check_set_params],
                         ids=lambda c: c.__name__)
def test_sklearn_parameter_checks(check):
    check("Deconfounder", Deconfounder())
