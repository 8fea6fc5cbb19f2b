"""ate_inference, intervals and overlap checks on the binary-treatment estimators."""
import warnings

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedKFold

from causalnn import CEVAE, CFRNet, Dragonnet, TARNet
from causalnn.inference import aggregate_repeats

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
        epochs = 30 if cls is Dragonnet else TINY["max_epochs"]
        res = cls(**dict(TINY, max_epochs=epochs), random_state=0).ate_inference(
            X, y, treatment=t, cv=2)
    # TARNet/CFR: the default propensity model (logistic on standardised X) is the true
    # one's form, so the cross-fitted AIPW estimate is consistent whatever the outcome
    # networks; Dragonnet's own propensity head needs training too (after 5 epochs both
    # its nuisances were off: 4.4 s.e.). The estimate must lie within 4 standard
    # errors of the simulated ATE of 2.
    assert abs(res.point_estimate - 2.0) < 4 * res.stderr
    # about sqrt(E[1/e + 1/(1-e)] / n) = 0.12 for unit noise; 0.5 would be a broken SE
    assert 0 < res.stderr < 0.5
    assert res.cv == 2 and res.n_samples == 300
    frame = res.summary_frame()
    assert frame.index[0] == "ATE (aipw)"


CEVAE_TINY = dict(latent_dim=2, hidden_layers=(16,), max_epochs=5, batch_size=64,
                  patience=None, n_samples=10)
CROSS_FITTED = {"TARNet": lambda: TARNet(**TINY, random_state=0),
                "Dragonnet": lambda: Dragonnet(**TINY, random_state=0),
                "CEVAE": lambda: CEVAE(**CEVAE_TINY, random_state=0)}


@pytest.mark.parametrize("name", list(CROSS_FITTED) + ["TARNet, early stopping"])
def test_cross_fitting_keeps_each_fold_out_of_its_model(name):
    # binary outcome: no outcome standardisation, so a fold's own outcomes can reach
    # its predictions only through training, which the member weights exclude; two
    # partitions (n_repeats=2), each checked on its own fold 0. With early stopping a
    # fold's member must also not take a new best while the others (which train on
    # its fold) run on.
    X, t, y = data(binary=True)
    if name == "TARNet, early stopping":
        est = TARNet(**dict(TINY, max_epochs=40, patience=2), random_state=0)
    else:
        est = CROSS_FITTED[name]()
    splits = list(RepeatedStratifiedKFold(n_splits=2, n_repeats=2, random_state=0)
                  .split(X, t))
    fold0 = [splits[0][1], splits[2][1]]
    # partition 0 is StratifiedKFold's, as with n_repeats=1
    np.testing.assert_array_equal(
        fold0[0], list(StratifiedKFold(2, shuffle=True, random_state=0).split(X, t))[0][1])
    flipped = np.intersect1d(fold0[0], fold0[1])[:40]
    y2 = y.copy()
    y2[flipped] = 1 - y2[flipped]
    model = est._propensity_model(None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = est._nuisances_cross_fitted(X, y, t, model, 2, n_repeats=2)
        b = est._nuisances_cross_fitted(X, y2, t, model, 2, n_repeats=2)
    for r in range(2):
        for nuisance in range(3):  # mu0, mu1 and the propensity
            np.testing.assert_allclose(a[r][nuisance][fold0[r]],
                                       b[r][nuisance][fold0[r]], rtol=1e-6)
        others = np.setdiff1d(np.arange(len(y)), fold0[r])
        assert not np.allclose(a[r][1][others], b[r][1][others])  # fold 1 saw them
    # rows of partition 1's fold 0 outside partition 0's: partition 0's fold-0 model
    # trained on them, so partition 1 borrowing partition 0's models would show
    only_second = np.setdiff1d(fold0[1], fold0[0])[:40]
    y3 = y.copy()
    y3[only_second] = 1 - y3[only_second]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = est._nuisances_cross_fitted(X, y3, t, model, 2, n_repeats=2)
    for nuisance in range(2):  # mu0, mu1
        np.testing.assert_allclose(a[1][nuisance][fold0[1]], c[1][nuisance][fold0[1]],
                                   rtol=1e-6)


def test_repeated_cross_fitting_aggregates_by_the_median_rule():
    X, t, y = data(seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = TARNet(**TINY, random_state=0).ate_inference(X, y, treatment=t, cv=2,
                                                            n_repeats=3)
    assert res.n_repeats == 3 and len(res.repeats) == 3
    estimates = np.array([r.point_estimate for r in res.repeats])
    stderrs = np.array([r.stderr for r in res.repeats])
    assert len(set(estimates)) == 3  # three partitions, three estimates
    assert res.point_estimate == np.median(estimates)
    assert res.stderr == pytest.approx(np.sqrt(np.median(
        stderrs ** 2 + (estimates - np.median(estimates)) ** 2)))
    assert res.stderr >= np.min(stderrs)
    assert res.summary_frame()["n_repeats"].iloc[0] == 3
    with pytest.raises(ValueError, match="one target and method"):
        aggregate_repeats([res.repeats[0], TARNet(**TINY, random_state=0).ate_inference(
            X, y, treatment=t, cv=2, target="att")])
    with pytest.raises(ValueError, match="at least one result"):
        aggregate_repeats([])
    with pytest.raises(ValueError, match="n_repeats must be an integer >= 1"):
        TARNet(**TINY).ate_inference(X, y, treatment=t, n_repeats=0)
    with pytest.raises(ValueError, match="n_repeats must be an integer >= 1; got True"):
        TARNet(**TINY).ate_inference(X, y, treatment=t, n_repeats=True)
    with pytest.raises(ValueError, match="cv must be an integer >= 2 or None; got True"):
        TARNet(**TINY).ate_inference(X, y, treatment=t, cv=True)
    with pytest.raises(ValueError, match="needs cv folds"):
        TARNet(**TINY).ate_inference(X, y, treatment=t, cv=None, n_repeats=2)


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
    # method="percentile" (8 members are too few for its 5% tails: it warns)
    with pytest.warns(UserWarning, match="n_members=8"):
        lo, hi = est.ate_interval(X, alpha=0.1, method="percentile")
    members = est.effect(X, members=True).mean(axis=1)
    assert lo <= np.median(members) <= hi
    assert lo == pytest.approx(np.quantile(members, 0.05))
    with pytest.warns(UserWarning, match="n_members=8"):
        lo_i, hi_i = est.effect_interval(X[:10], alpha=0.1, method="percentile")
    assert lo_i.shape == (10,) and np.all(lo_i <= hi_i)
    # per row, the alpha/2 and 1 - alpha/2 quantiles of the members' effects
    row_members = est.effect(X[:10], members=True)
    np.testing.assert_allclose(lo_i, np.quantile(row_members, 0.05, axis=0))
    np.testing.assert_allclose(hi_i, np.quantile(row_members, 0.95, axis=0))
    # one row: the per-row interval and the interval of the mean describe the same
    # thing, for either method
    for method in ("percentile", "normal"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lo_i, hi_i = est.effect_interval(X[:1], alpha=0.1, method=method)
            assert (lo_i[0], hi_i[0]) == pytest.approx(
                est.ate_interval(X[:1], alpha=0.1, method=method))
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


def test_default_propensity_model_does_not_depend_on_the_units_of_X():
    """The default propensity model is penalised logistic regression on standardised
    columns, so a column given in other units (x 1e-4, as kg to tonnes) changes no
    propensity: overlap summaries and the in-sample inference agree."""
    X, t, y = data(n=200, seed=6)
    units = np.array([1e-4, 1.0, 1.0, 1.0])
    est = TARNet(**TINY, random_state=0)
    a, b = est.overlap_summary(X, t), est.overlap_summary(X * units, t)
    np.testing.assert_allclose(b.to_numpy(dtype=float), a.to_numpy(dtype=float),
                               rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res_a = est.fit(X, y, treatment=t).ate_inference(X, y, treatment=t, cv=None)
        res_b = est.fit(X * units, y, treatment=t).ate_inference(X * units, y,
                                                                 treatment=t, cv=None)
    np.testing.assert_allclose(res_b.propensity, res_a.propensity, rtol=1e-6)


def test_overlap_summary_on_estimator():
    X, t, y = data(n=100)
    summary = TARNet(**TINY).overlap_summary(X, t)
    assert list(summary.index) == ["control", "treated", "all"]
    assert summary.loc["all", "n"] == 100


def test_overlap_summary_uses_the_propensities_of_ate_inference():
    """With a propensity model, overlap_summary cross-fits it on ate_inference's
    (shuffled, stratified) folds and agrees with its result's summary. The shipped IHDP
    rows are sorted by site: unshuffled folds held out whole sites and reported 23.7% of
    rows outside [0.01, 0.99] against the 1.3% ate_inference used."""
    from causalnn.datasets import load_ihdp
    d = load_ihdp(1)
    est = TARNet(**dict(TINY, max_epochs=1), random_state=0)
    summary = est.overlap_summary(d.X, d.treatment)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = est.ate_inference(d.X, d.y, treatment=d.treatment)
    np.testing.assert_allclose(summary.to_numpy(), res.overlap_summary().to_numpy())
    assert summary.loc["all", "share_outside"] < 0.05


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


def test_misaligned_pandas_y_or_treatment_is_refused():
    """fit refuses a Series whose index is X's in another order; ate_inference and
    overlap_summary must too (they once paired such rows by position, silently)."""
    pd = pytest.importorskip("pandas")
    X, t, y = data(n=80)
    index = np.arange(100, 180)
    Xf = pd.DataFrame(X, index=index, columns=list("abcd"))
    shuffled = np.random.default_rng(0).permutation(index)
    ys = pd.Series(y, index=index).loc[shuffled]
    ts = pd.Series(t, index=index).loc[shuffled]
    est = TARNet(**TINY, random_state=0)
    with pytest.raises(ValueError, match="y is a pandas Series whose index"):
        est.ate_inference(Xf, ys, treatment=t)
    with pytest.raises(ValueError, match="treatment is a pandas Series whose index"):
        est.ate_inference(Xf, y, treatment=ts)
    with pytest.raises(ValueError, match="treatment is a pandas Series whose index"):
        est.overlap_summary(Xf, ts)


def test_tmle_takes_the_outcome_type_of_the_y_it_is_given():
    """A cross-fitted TMLE fits clones on the y passed now, so an earlier fit of the
    same estimator on a binary y must not change it (it once squashed the continuous
    outcome into [0, 1])."""
    X, t, y = data(n=200, seed=3)
    _, _, y01 = data(n=200, seed=3, binary=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fresh = TARNet(**TINY, random_state=0).ate_inference(X, y, treatment=t,
                                                             method="tmle", cv=2)
        reused = TARNet(**TINY, random_state=0).fit(X, y01, treatment=t)
        assert reused.outcome_type_ == "binary"
        again = reused.ate_inference(X, y, treatment=t, method="tmle", cv=2)
        assert again.point_estimate == fresh.point_estimate
        assert again.stderr == fresh.stderr
        with pytest.raises(ValueError, match="fitted on a binary one"):
            reused.ate_inference(X, y, treatment=t, cv=None)


def test_a_users_propensity_model_sees_the_dataframe_as_passed():
    """A pipeline that selects columns by name works, in ate_inference and in
    overlap_summary, and both describe the same propensity model."""
    pd = pytest.importorskip("pandas")
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    X, t, y = data(n=200, seed=4)
    Xf = pd.DataFrame(X * [1.0, 1e4, 1.0, 1.0], columns=["a", "income", "c", "d"])
    model = make_pipeline(ColumnTransformer([("keep", "passthrough", ["a", "income"])]),
                          LogisticRegression(C=0.01, max_iter=1000))
    est = TARNet(**TINY, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = est.ate_inference(Xf, y, treatment=t, cv=2, propensity_model=model)
        expected = LogisticRegression(C=0.01, max_iter=1000).fit(
            Xf[["a", "income"]], t).predict_proba(Xf[["a", "income"]])[:, 1]
        in_sample = est.fit(Xf, y, treatment=t).ate_inference(
            Xf, y, treatment=t, cv=None, propensity_model=model)
    assert np.isfinite(res.point_estimate)
    np.testing.assert_allclose(in_sample.propensity, expected)
    summary = est.overlap_summary(Xf, t, propensity_model=model)
    assert summary.loc["treated", "max"] < 0.99


def test_clip_and_trim_are_checked_before_any_fit():
    X, t, y = data(n=60)
    est = TARNet(**TINY)
    for kw in ({"propensity_clip": None}, {"propensity_clip": "0.01"},
               {"propensity_clip": 0.7}, {"trim": 0.6}):
        with pytest.raises(ValueError, match="must be a number"):
            est.ate_inference(X, y, treatment=t, **kw)
        assert not hasattr(est, "module_")


def test_an_arm_too_small_for_every_fold_model_is_refused():
    """With 3 treated rows, cv=2 and a 30% validation split, a fold model may train on
    no treated row at all (2 outside its fold, 1 held out for validation): refused up
    front. The same arm is enough for cv=2 without a validation split."""
    X, t, y = data(n=120, seed=5)
    t[:] = 0.0
    t[:3] = 1.0
    with pytest.raises(ValueError, match=r"cv=2 folds need more rows in treatment arm 1"):
        TARNet(**TINY).ate_inference(X, y, treatment=t, cv=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = TARNet(**TINY, validation_fraction=0.0).ate_inference(X, y, treatment=t,
                                                                    cv=2)
    assert np.isfinite(res.point_estimate)
