"""Checks every estimator must pass: sklearn conventions and causal invariants."""
import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import estimator_checks as _estimator_checks
from sklearn.utils.estimator_checks import (
    check_complex_data, check_dont_overwrite_parameters,
    check_estimators_pickle, check_fit2d_1sample,
    check_fit2d_predict1d, check_fit_idempotent, check_get_params_invariance,
    check_n_features_in, check_n_features_in_after_fitting,
    check_no_attributes_set_in_init, check_requires_y_none, check_set_params,
    check_supervised_y_2d)

from causalnn import CFRNet, Dragonnet, TARNet

from conftest import SMALL


class _TreatmentFromFeature:
    """Adapter for sklearn's checks, which call ``fit(X, y)``: the treatment is derived
    from the sign of the first feature (both arms present in any sklearn test data)."""

    @staticmethod
    def treatment(X):
        try:
            X = np.asarray(X)
            if X.dtype.kind == "c":
                return None  # complex X: the estimator refuses it by name
            X = X.astype(float)
            return (X[:, 0] > np.median(X[:, 0])).astype(float)
        except (TypeError, ValueError, IndexError):
            return None  # malformed X: let the estimator's own checks report it


class _AdapterMixin:
    def fit(self, X, y, treatment=None):
        return super().fit(X, y, treatment=_TreatmentFromFeature.treatment(X))

    def score(self, X, y, treatment=None):
        return super().score(X, y, treatment=_TreatmentFromFeature.treatment(X))


# module-level classes so that sklearn's pickle check can pickle them
class AdaptedTARNet(_AdapterMixin, TARNet):
    pass


class AdaptedCFRNet(_AdapterMixin, CFRNet):
    pass


class AdaptedDragonnet(_AdapterMixin, Dragonnet):
    pass


ADAPTED = {TARNet: AdaptedTARNet, CFRNet: AdaptedCFRNet, Dragonnet: AdaptedDragonnet}


SKLEARN_CHECKS = [check_no_attributes_set_in_init, check_get_params_invariance,
                  check_set_params, check_dont_overwrite_parameters, check_fit_idempotent,
                  check_estimators_pickle, check_n_features_in,
                  check_n_features_in_after_fitting, check_complex_data,
                  *[getattr(_estimator_checks, name) for name in (
                      # sklearn >= 1.6 splits check_estimator_sparse_data in two
                      "check_estimator_sparse_array", "check_estimator_sparse_matrix",
                      "check_estimator_sparse_data") if hasattr(_estimator_checks, name)],
                  check_fit2d_predict1d, check_fit2d_1sample, check_requires_y_none,
                  check_supervised_y_2d]


@pytest.mark.parametrize("cls", [TARNet, CFRNet, Dragonnet], ids=lambda c: c.__name__)
@pytest.mark.parametrize("check", SKLEARN_CHECKS, ids=lambda c: c.__name__)
def test_sklearn_checks(cls, check):
    est = ADAPTED[cls](**{**SMALL, "max_epochs": 2}, random_state=0, validation_fraction=0.2)
    check(cls.__name__, est)


def test_clone_keeps_parameters(make_estimator):
    est = make_estimator(random_state=3, learning_rate=5e-3)
    assert clone(est).get_params() == est.get_params()


def test_seeded_fit_is_bit_for_bit_repeatable(make_estimator, data):
    X, y, t, _ = data
    a = make_estimator(random_state=7).fit(X, y, treatment=t).effect(X)
    b = make_estimator(random_state=7).fit(X, y, treatment=t).effect(X)
    c = make_estimator(random_state=8).fit(X, y, treatment=t).effect(X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_output_shapes_and_api(make_estimator, data):
    X, y, t, _ = data
    est = make_estimator(random_state=0).fit(X, y, treatment=t)
    n = len(X)
    assert est.effect(X).shape == (n,)
    np.testing.assert_allclose(est.predict(X), est.effect(X))
    mu0, mu1 = est.predict_outcome(X, 0), est.predict_outcome(X, 1)
    np.testing.assert_allclose(est.effect(X), mu1 - mu0, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(est.effect(X, T0=1, T1=0), -(mu1 - mu0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(est.predict_outcome(X, t), np.where(t == 1, mu1, mu0))
    assert isinstance(est.ate(X, T0=0, T1=1), float)
    assert isinstance(est.score(X, y, treatment=t), float)
    assert est.n_features_in_ == X.shape[1]
    assert est.history_ and {"epoch", "train_loss", "valid_loss"} <= set(est.history_[0])


def test_pickle_roundtrip_gives_identical_effects(make_estimator, data):
    X, y, t, _ = data
    est = make_estimator(random_state=0).fit(X, y, treatment=t)
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(restored.effect(X), est.effect(X))


def test_not_fitted_errors(make_estimator, data):
    X = data[0]
    est = make_estimator()
    for method in (est.effect, est.predict, est.ate):
        with pytest.raises(NotFittedError):
            method(X)


def test_recovers_known_effect(make_estimator):
    # confounded simulation with tau(x) = 1 + x1: the ATE is 1
    from conftest import simulate
    X, y, t, tau = simulate(n=800, seed=1)
    est = make_estimator(random_state=0, max_epochs=60, patience=15,
                         representation_layers=(64, 64), head_layers=(32,))
    est.fit(X, y, treatment=t)
    assert abs(est.ate(X) - tau.mean()) < 0.15
    assert np.sqrt(np.mean((est.effect(X) - tau) ** 2)) < 0.45


@pytest.mark.parametrize("cls", [TARNet, CFRNet, Dragonnet], ids=lambda c: c.__name__)
def test_docstring_documents_every_parameter(cls):
    import re
    documented = set(re.findall(r"^    (\w+) :", cls.__doc__, flags=re.M))
    missing = set(cls().get_params()) - documented
    assert not missing and "%(" not in cls.__doc__
