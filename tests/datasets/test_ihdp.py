import numpy as np
import pandas as pd
import pytest

from causalnn.datasets import load_ihdp, make_ihdp

N, P = 747, 25


def test_load_ihdp_shapes_and_types():
    data = load_ihdp(1)
    assert data.X.shape == (N, P)
    assert data.X.dtype == np.float64
    for key in ("treatment", "y", "y_cf", "mu0", "mu1", "ite"):
        assert data[key].shape == (N,), key
    assert data.treatment.dtype.kind == "i"
    assert set(np.unique(data.treatment)) == {0, 1}
    assert int(data.treatment.sum()) == 139
    assert data.feature_names == [f"x{j}" for j in range(1, 26)]
    assert isinstance(data.ate, float)
    assert "Hill" in data.DESCR and "Shalit" in data.DESCR
    assert data.replication == 1
    assert data.frame is None


def test_load_ihdp_covariate_coding():
    X = load_ihdp(3).X
    # x7..x25 binary, x14 recoded from {1, 2} to {0, 1}
    for j in range(6, P):
        assert set(np.unique(X[:, j])) <= {0.0, 1.0}, f"x{j + 1}"
    assert set(np.unique(X[:, 13])) == {0.0, 1.0}
    # x1..x6 continuous, standardized
    np.testing.assert_allclose(X[:, :6].mean(axis=0), 0.0, atol=1e-6)


def test_load_ihdp_effects_match_file():
    data = load_ihdp(1)
    np.testing.assert_allclose(data.ite, data.mu1 - data.mu0)
    assert data.ate == pytest.approx(np.mean(data.mu1 - data.mu0))
    assert data.ate == pytest.approx(4.0162, abs=1e-3)
    # first row of ihdp_npci_1.csv
    assert data.treatment[0] == 1
    assert data.y[0] == pytest.approx(5.59991628549083)
    assert data.y_cf[0] == pytest.approx(4.31877968420119)
    assert data.mu0[0] == pytest.approx(3.26825638455712)
    assert data.mu1[0] == pytest.approx(6.8544566863328)
    # CATT of the NPCI simulation of surface B is 4
    assert data.ite[data.treatment == 1].mean() == pytest.approx(4.0, abs=1e-6)


@pytest.mark.parametrize("replication", [1, 7, 10])
def test_load_ihdp_split(replication):
    data = load_ihdp(replication)
    tr, va, te = data.train_index, data.valid_index, data.test_index
    assert (len(tr), len(va), len(te)) == (471, 202, 74)
    all_idx = np.concatenate([tr, va, te])
    assert len(np.unique(all_idx)) == N
    np.testing.assert_array_equal(np.sort(all_idx), np.arange(N))
    # deterministic, from RandomState(replication)
    perm = np.random.RandomState(replication).permutation(N)
    np.testing.assert_array_equal(tr, np.sort(perm[:471]))
    np.testing.assert_array_equal(te, np.sort(perm[673:]))
    np.testing.assert_array_equal(load_ihdp(replication).test_index, te)


def test_load_ihdp_replications_differ():
    a, b = load_ihdp(1), load_ihdp(2)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.treatment, b.treatment)
    assert not np.allclose(a.y, b.y)
    assert not np.array_equal(a.test_index, b.test_index)


def test_load_ihdp_returns_copies():
    a = load_ihdp(1)
    a.X[0, 0] = 123.0
    a.y[0] = 123.0
    b = load_ihdp(1)
    assert b.X[0, 0] != 123.0 and b.y[0] != 123.0


def test_load_ihdp_as_frame():
    data = load_ihdp(2, as_frame=True)
    assert isinstance(data.X, pd.DataFrame)
    assert list(data.X.columns) == [f"x{j}" for j in range(1, 26)]
    np.testing.assert_array_equal(data.X.to_numpy(), load_ihdp(2).X)
    assert list(data.frame.columns[-2:]) == ["treatment", "y"]
    np.testing.assert_array_equal(data.frame["treatment"], data.treatment)


@pytest.mark.parametrize("bad", [0, 11, -1, 1.0, "1", None, True, 2.5])
def test_load_ihdp_invalid_replication(bad):
    with pytest.raises(ValueError, match="replication"):
        load_ihdp(bad)


def test_load_ihdp_accepts_numpy_int():
    assert load_ihdp(np.int64(4)).replication == 4


def test_make_ihdp_fields_and_catt():
    reps = make_ihdp(4, random_state=0)
    assert len(reps) == 4
    X = load_ihdp(1).X
    t = load_ihdp(1).treatment
    for k, rep in enumerate(reps, start=1):
        assert rep.replication == k
        np.testing.assert_array_equal(rep.X, X)
        np.testing.assert_array_equal(rep.treatment, t)
        for key in ("y", "y_cf", "mu0", "mu1", "ite"):
            assert rep[key].shape == (N,)
        treated = rep.treatment == 1
        assert rep.ite[treated].mean() == pytest.approx(4.0, abs=1e-8)
        np.testing.assert_allclose(rep.ite, rep.mu1 - rep.mu0)
        assert rep.ate == pytest.approx(rep.ite.mean())
        assert (len(rep.train_index), len(rep.valid_index), len(rep.test_index)) == (
            471,
            202,
            74,
        )
        idx = np.concatenate([rep.train_index, rep.valid_index, rep.test_index])
        np.testing.assert_array_equal(np.sort(idx), np.arange(N))


def test_make_ihdp_response_surface_b():
    rep = make_ihdp(1, random_state=3)[0]
    X = rep.X
    # log mu0 = (X + 0.5) beta and mu1 = X beta - omega: recover beta
    A = np.c_[X, np.ones(N)]
    coef0 = np.linalg.lstsq(A, np.log(rep.mu0), rcond=None)[0]
    coef1 = np.linalg.lstsq(A, rep.mu1, rcond=None)[0]
    beta = coef0[:P]
    np.testing.assert_allclose(coef1[:P], beta, atol=1e-8)
    np.testing.assert_allclose(beta, np.round(beta, 1), atol=1e-8)
    assert set(np.round(beta, 1)) <= {0.0, 0.1, 0.2, 0.3, 0.4}
    assert coef0[P] == pytest.approx(0.5 * beta.sum(), abs=1e-8)
    # unit-variance noise around the surfaces
    treated = rep.treatment == 1
    y1 = np.where(treated, rep.y, rep.y_cf)
    y0 = np.where(treated, rep.y_cf, rep.y)
    resid = np.r_[y1 - rep.mu1, y0 - rep.mu0]
    assert abs(resid.mean()) < 0.1
    assert resid.std() == pytest.approx(1.0, abs=0.1)


def test_make_ihdp_reproducible():
    a = make_ihdp(2, random_state=42)
    b = make_ihdp(2, random_state=np.random.RandomState(42))
    for ra, rb in zip(a, b):
        for key in ("y", "y_cf", "mu0", "mu1", "train_index", "test_index"):
            np.testing.assert_array_equal(ra[key], rb[key])
    c = make_ihdp(2, random_state=43)
    assert not np.allclose(a[0].y, c[0].y)
    assert not np.allclose(a[0].y, a[1].y)


def test_make_ihdp_does_not_touch_global_rng():
    before = np.random.get_state()
    make_ihdp(1, random_state=1)
    after = np.random.get_state()
    np.testing.assert_array_equal(after[1], before[1])
    assert after[2] == before[2]


def test_make_ihdp_as_frame():
    rep = make_ihdp(1, random_state=0, as_frame=True)[0]
    assert isinstance(rep.X, pd.DataFrame)
    assert rep.X.shape == (N, P)


@pytest.mark.parametrize("bad", [0, -2, 1.5, "3", None, True])
def test_make_ihdp_invalid_n_replications(bad):
    with pytest.raises(ValueError, match="n_replications"):
        make_ihdp(bad)
