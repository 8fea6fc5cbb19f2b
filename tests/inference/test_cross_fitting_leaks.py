"""Cross-fitting must predict every row from models that never saw it: in every
partition of n_repeats, and for the propensity model too (kills B06, B09)."""
import warnings

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier

from causalnn import TARNet

TINY = dict(representation_layers=(16,), head_layers=(8,), max_epochs=5,
            batch_size=64, patience=None)


def data(n=300, seed=0, binary=False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    t = rng.binomial(1, 1 / (1 + np.exp(-0.8 * X[:, 0]))).astype(float)
    if binary:
        y = rng.binomial(1, 1 / (1 + np.exp(-(X[:, 0] + t)))).astype(float)
    else:
        y = X[:, 0] + 2 * t + rng.normal(size=n)
    return X, t, y


def test_propensity_model_is_cross_fitted_on_the_folds():
    # a 5-nearest-neighbour propensity counts a row's own treatment among its
    # neighbours when it was fitted on that row: the cross-fitted values must be those
    # of clones fitted on the other folds of partition 0, documented as
    # StratifiedKFold(cv, shuffle=True, random_state=random_state) (kills A23 too)
    X, t, y = data(n=200)
    knn = KNeighborsClassifier(n_neighbors=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = TARNet(**TINY, random_state=3).ate_inference(
            X, y, treatment=t, cv=2, propensity_model=knn)
    expected = np.empty(len(t))
    for train, test in StratifiedKFold(2, shuffle=True, random_state=3).split(X, t):
        expected[test] = clone(knn).fit(X[train], t[train]).predict_proba(X[test])[:, 1]
    np.testing.assert_allclose(res.propensity, expected)


def test_every_repeat_predicts_a_row_from_models_without_it():
    # flip the outcomes of rows in partition 1's fold 0 that partition 0's fold 0 does
    # not hold: partition 1's predictions of its fold 0 must not move (partition 0's
    # fold-0 model did train on those rows, so borrowing it would show)
    X, t, y = data(binary=True)
    est = TARNet(**TINY, random_state=0)
    splits = list(RepeatedStratifiedKFold(n_splits=2, n_repeats=2, random_state=0)
                  .split(X, t))
    fold0_p0, fold0_p1 = splits[0][1], splits[2][1]
    flipped = np.setdiff1d(fold0_p1, fold0_p0)[:40]
    y2 = y.copy()
    y2[flipped] = 1 - y2[flipped]
    model = est._propensity_model(None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = est._nuisances_cross_fitted(X, y, t, model, 2, n_repeats=2)
        b = est._nuisances_cross_fitted(X, y2, t, model, 2, n_repeats=2)
    for nuisance in range(2):  # mu0, mu1 of partition 1
        np.testing.assert_allclose(a[1][nuisance][fold0_p1], b[1][nuisance][fold0_p1],
                                   rtol=1e-6)
