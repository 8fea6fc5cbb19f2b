"""ate_inference, intervals and overlap checks on the binary-treatment estimators."""
import warnings

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import StratifiedKFold

from causalnn import CFRNet, Dragonnet, TARNet

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


@pytest.mark.parametrize("cls", [TARNet, CFRNet, Dragonnet])
def test_ate_inference_result(cls):
    X, t, y = data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = cls(**TINY, random_state=0).ate_inference(X, y, treatment=t, cv=2)
    lo, hi = res.conf_int()
    assert lo < res.point_estimate < hi and res.stderr > 0
    assert res.cv == 2 and res.n_samples == 300
    frame = res.summary_frame()
    assert frame.index[0] == "ATE (aipw)"


def test_cross_fitting_keeps_each_fold_out_of_its_model():
    # binary outcome: no outcome standardisation, so a fold's own outcomes can reach
    # its predictions only through training, which the member weights exclude
    X, t, y = data(binary=True)
    est = TARNet(**TINY, random_state=0)
    fold0 = list(StratifiedKFold(2, shuffle=True, random_state=0).split(X, t))[0][1]
    y2 = y.copy()
    y2[fold0[:40]] = 1 - y2[fold0[:40]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = est._nuisances_cross_fitted(X, y, t, est._propensity_model(None), 2)
        b = est._nuisances_cross_fitted(X, y2, t, est._propensity_model(None), 2)
    np.testing.assert_allclose(a[0][fold0], b[0][fold0], rtol=1e-6)
    np.testing.assert_allclose(a[1][fold0], b[1][fold0], rtol=1e-6)
    others = np.setdiff1d(np.arange(len(y)), fold0)
    assert not np.allclose(a[1][others], b[1][others])  # fold 1's model saw them


def test_targets_methods_and_in_sample():
    X, t, y = data(seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = Dragonnet(**TINY, random_state=0).fit(X, y, treatment=t)
        for target in ("att", "atc"):
            for method in ("aipw", "tmle", "plugin"):
                res = est.ate_inference(X, y, treatment=t, target=target,
                                        method=method, cv=None)
                assert res.target == target and res.method == method
                assert res.cv is None
    assert 0 <= est.overlap_share_ <= 1


def test_bad_input_is_explained():
    X, t, y = data(n=60)
    est = TARNet(**TINY)
    with pytest.raises(ValueError, match="y"):
        est.ate_inference(X, y[:-1], treatment=t)
    with pytest.raises(ValueError, match="treatment"):
        est.ate_inference(X, y, treatment=t[:-2])
    with pytest.raises(ValueError, match="target must be one of"):
        est.ate_inference(X, y, treatment=t, target="cate")
    with pytest.raises(ValueError, match="method must be one of"):
        est.ate_inference(X, y, treatment=t, method="dml")
    with pytest.raises(ValueError, match="cv must be"):
        est.ate_inference(X, y, treatment=t, cv=1)
    with pytest.raises(TypeError, match="predict_proba"):
        est.ate_inference(X, y, treatment=t, propensity_model=LinearRegression())
    with pytest.raises(ValueError, match="treatment"):
        est.ate_inference(X, y, treatment=np.full(60, 2.0))


def test_intervals_from_bootstrap_members():
    X, t, y = data(seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = TARNet(**TINY, n_members=8, bootstrap=True, random_state=0).fit(
            X, y, treatment=t)
    lo, hi = est.ate_interval(X, alpha=0.1)
    members = est.effect(X, members=True).mean(axis=1)
    assert lo <= np.median(members) <= hi
    assert lo == pytest.approx(np.quantile(members, 0.05))
    lo_i, hi_i = est.effect_interval(X[:10], alpha=0.1)
    assert lo_i.shape == (10,) and np.all(lo_i <= hi_i)
    with pytest.raises(ValueError, match="alpha"):
        est.ate_interval(X, alpha=0)


def test_intervals_need_members():
    X, t, y = data(n=80)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = TARNet(**TINY).fit(X, y, treatment=t)
    with pytest.raises(ValueError, match="n_members >= 2"):
        est.ate_interval(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = TARNet(**TINY, n_members=3).fit(X, y, treatment=t)
    with pytest.warns(UserWarning, match="not bootstrap"):
        est.effect_interval(X)


def test_overlap_summary_on_estimator():
    X, t, y = data(n=100)
    summary = TARNet(**TINY).overlap_summary(X, t)
    assert list(summary.index) == ["control", "treated", "all"]
    assert summary.loc["all", "n"] == 100


def test_aipw_coverage_sanity():
    """40 simulated datasets: the 95% AIPW interval covers the ATE (=2) in >= 85%
    (about 10 s on one core; benchmarks/inference_coverage.py measures it at scale)."""
    covered = 0
    for k in range(40):
        X, t, y = data(n=500, seed=100 + k)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = TARNet(representation_layers=(32,), head_layers=(16,), max_epochs=30,
                         patience=5, random_state=k).ate_inference(X, y, treatment=t,
                                                                   cv=2)
        lo, hi = res.conf_int()
        covered += lo <= 2.0 <= hi
    assert covered >= 34


def test_treatment_column_of_a_dataframe():
    pd = pytest.importorskip("pandas")
    X, t, y = data(n=120, seed=3)
    frame = pd.DataFrame(X, columns=list("abcd")).assign(treat=t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = TARNet(**TINY, treatment_col="treat", random_state=0).ate_inference(
            frame, y, cv=2)
        b = TARNet(**TINY, random_state=0).ate_inference(
            frame.drop(columns="treat"), y, treatment=t, cv=2)
    assert a.point_estimate == pytest.approx(b.point_estimate)
