"""Model selection for a causal estimator with scikit-learn tools.

A causalnn estimator takes the treatment as ``fit(X, y, treatment=t)``. scikit-learn's
``Pipeline``, ``GridSearchCV`` and ``cross_validate`` forward it, split per fold like
``X``, once metadata routing is enabled. Alternatively the treatment can travel as a
column of a DataFrame ``X`` named by the estimator's ``treatment_col``, which needs no
routing at all.

The scores are the R^2 of the *factual* outcome predictions (the estimators' ``score``):
observed outcomes are all that model selection can use on real data. On the IHDP
benchmark the true effects are known, so the selected model's sqrt(PEHE) on the test
rows is printed as well.

Few epochs and small networks keep the script to well under a minute on two CPU cores;
drop ``SMALL`` for real use.
"""
import time
import warnings

import numpy as np
import pandas as pd
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from causalnn import CFRNet, TARNet
from causalnn.datasets import load_ihdp
from causalnn.exceptions import ConvergenceWarning
from causalnn.metrics import pehe

# short training and small networks for a quick demonstration
SMALL = dict(max_epochs=30, representation_layers=(64, 64), head_layers=(32, 32),
             random_state=0)
CV = KFold(n_splits=3, shuffle=True, random_state=0)


def grid_search(X, y, t):
    """Tune CFR's balancing weight ``alpha`` inside a scaling pipeline."""
    pipe = Pipeline([("scale", StandardScaler()), ("net", CFRNet(**SMALL))])
    search = GridSearchCV(pipe, {"net__alpha": [0.1, 1.0]}, cv=CV)
    # routing sends `treatment` to CFRNet.fit and CFRNet.score, split like X
    search.fit(X, y, treatment=t)
    return search


def cross_validate_with_routing(X, y, t):
    """Out-of-fold factual R^2 of TARNet, the treatment passed as routed metadata."""
    pipe = Pipeline([("scale", StandardScaler()), ("net", TARNet(**SMALL))])
    return cross_validate(pipe, X, y, cv=CV, params={"treatment": t})


def cross_val_score_with_treatment_col(frame, y):
    """The same without routing: the treatment is a column of the DataFrame.

    The scaler must leave that column alone and hand a DataFrame on, so it scales only
    the covariates (ColumnTransformer) and outputs pandas.
    """
    covariates = [c for c in frame.columns if c != "treatment"]
    scale = ColumnTransformer([("scale", StandardScaler(), covariates)],
                              remainder="passthrough", verbose_feature_names_out=False)
    pipe = Pipeline([("scale", scale.set_output(transform="pandas")),
                     ("net", TARNet(treatment_col="treatment", **SMALL))])
    return cross_val_score(pipe, frame, y, cv=CV)


def main():
    """Run the three model-selection routes on IHDP replication 1 and print results."""
    with warnings.catch_warnings():
        # 30 epochs stop before early stopping does, on purpose here
        warnings.simplefilter("ignore", ConvergenceWarning)
        _run()


def _run():
    start = time.perf_counter()
    data = load_ihdp(1, as_frame=True)
    # model selection on the train + validation rows, the test rows for a final check
    fit_rows = np.concatenate([data.train_index, data.valid_index])
    test_rows = data.test_index
    X, y, t = data.X.iloc[fit_rows], data.y[fit_rows], data.treatment[fit_rows]

    with sklearn.config_context(enable_metadata_routing=True):
        search = grid_search(X, y, t)
        cv_results = cross_validate_with_routing(X, y, t)

    print("GridSearchCV over CFRNet's alpha (3-fold factual R^2):")
    for alpha, mean, std in zip(search.cv_results_["param_net__alpha"],
                                search.cv_results_["mean_test_score"],
                                search.cv_results_["std_test_score"]):
        print(f"  alpha={alpha:<4}  R^2 = {mean:.3f} +/- {std:.3f}")
    tau = search.predict(data.X.iloc[test_rows])  # a Pipeline's predict is the CATE
    print(f"  best: {search.best_params_}; test sqrt(PEHE) = "
          f"{pehe(data.ite[test_rows], tau):.3f}")

    print("\ncross_validate(TARNet pipeline, params={'treatment': t}):")
    print(f"  factual R^2 per fold: {np.round(cv_results['test_score'], 3).tolist()}")

    frame = pd.concat([X, pd.Series(t, index=X.index, name="treatment")], axis=1)
    scores = cross_val_score_with_treatment_col(frame, y)
    print("\ncross_val_score(TARNet(treatment_col='treatment'), DataFrame):")
    print(f"  factual R^2 per fold: {np.round(scores, 3).tolist()}")
    print("  (same folds, seed and data as cross_validate, so the scores match)")
    print(f"\ndone in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
