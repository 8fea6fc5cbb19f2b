"""Cross-fitting must predict every row from models that never saw it: the propensity
model too (every partition of n_repeats: test_estimators.py)."""
import warnings

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier

from causalnn import TARNet
# pytest's default (prepend) import mode puts this folder on sys.path
from test_estimators import TINY, data


def test_propensity_model_is_cross_fitted_on_the_folds():
    # a 5-nearest-neighbour propensity counts a row's own treatment among its
    # neighbours when it was fitted on that row: the cross-fitted values must be those
    # of clones fitted on the other folds of partition 0, documented as
    # StratifiedKFold(cv, shuffle=True, random_state=random_state)
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
