"""DeepIV's causal validation loss (Hartford et al. 2017, Sec. 3) and its scorer: on the
demand simulation it ranks the structural function above the confounded regression that
the factual R^2 prefers; it matches a closed form with the exact first stage; it works
per fold in GridSearchCV; bad input is refused."""
import copy
import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from causalnn import DeepIV
from causalnn.datasets import make_demand
from causalnn.datasets._demand import H_MEAN, H_STD, _psi, _raw_h
from causalnn.metrics import causal_validation_scorer, factual_r2_scorer

RHO = 0.9
# y in other units than make_demand's, so that the loss's units are checked too
UNIT, OFFSET = 50.0, 7.0


def _torch_psi(time):
    return 2.0 * ((time - 5) ** 4 / 600 + torch.exp(-4 * (time - 5) ** 2) + time / 10 - 2)


def _raw_covariates(est, x):
    """The covariates ``X`` back from the network's standardised input (on its device:
    with a GPU, device="auto" fits and scores on CUDA)."""
    def tensor(a):
        return torch.as_tensor(a, dtype=x.dtype, device=x.device)

    x = x * tensor(est.x_scale_) + tensor(est.x_mean_)
    return x * tensor(est.X_scale_) + tensor(est.X_offset_)


class DemandFunction(torch.nn.Module):
    """A known ``h(p, x)`` on the outcome network's scales: the structural demand, or
    with ``confounded=True`` the regression ``E[y | p, x] = h + rho E[v | p, x]`` that a
    fit ignoring the instrument converges to (``v | p, t ~`` Gaussian, so
    ``E[v | p, t] = (p - 25 - 3 psi) / (psi^2 + 1)``)."""

    def __init__(self, est, confounded):
        super().__init__()
        self.est, self.confounded = est, confounded

    def forward(self, inputs):
        est = self.est
        p = inputs[..., 0] * est.t_scale_[0] + est.t_mean_[0]
        X = _raw_covariates(est, inputs[..., 1:])
        time, kind = X[..., 0], X[..., 1:].argmax(-1) + 1.0
        psi = _torch_psi(time)
        h = (100 + (10 + p) * kind * psi - 2 * p - H_MEAN) / H_STD
        if self.confounded:
            h = h + RHO * (p - 25 - 3 * psi) / (psi ** 2 + 1)
        return ((UNIT * h + OFFSET - est.y_mean_) / est.y_scale_)[..., None]


class ExactPriceModel(torch.nn.Module):
    """The true first stage ``F(p | x, z) = N(25 + (z + 3) psi(t), 1)`` on the
    standardised price scale, as a one-component mixture."""

    def __init__(self, est):
        super().__init__()
        self.est = est

    def forward(self, context):
        est = self.est
        n_x = len(est.x_mean_)
        time = _raw_covariates(est, context[:, :n_x])[:, 0]
        z = context[:, n_x] * est.z_scale_[0] + est.z_mean_[0]
        loc = (25 + (z + 3) * _torch_psi(time) - est.t_mean_[0]) / est.t_scale_[0]
        loc = loc[:, None, None]
        return MixtureSameFamily(Categorical(probs=torch.ones_like(loc[..., 0])),
                                 Independent(Normal(loc, 1.0 / est.t_scale_[0]), 1))


def _demand(n, seed):
    data = make_demand(n, rho=RHO, random_state=seed)
    data.y = UNIT * data.y + OFFSET
    return data


def _true_h(X, p, confounded):
    """The two candidate functions in the user's units, in NumPy."""
    psi = _psi(X[:, 0])
    h = (_raw_h(p, X[:, 0], X[:, 1:].argmax(1) + 1.0) - H_MEAN) / H_STD
    if confounded:
        h = h + RHO * (p - 25 - 3 * psi) / (psi ** 2 + 1)
    return UNIT * h + OFFSET


@pytest.fixture(scope="module")
def demand_fit():
    """DeepIV whose first stage is fitted on 1000 rows (its own outcome network is
    replaced by the known candidates below), and 4000 held-out rows."""
    train = _demand(1000, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = DeepIV(first_stage_layers=(64,), outcome_layers=(4,), n_components=3,
                     max_epochs=20, patience=None, random_state=0)
        est.fit(train.X, train.y, treatment=train.treatment, instrument=train.instrument)
    return est, _demand(4000, 1)


def _with(est, h_confounded, exact_first_stage=False):
    """A copy of ``est`` with a known outcome function (and the true first stage)."""
    est = copy.deepcopy(est)
    est.module_ = DemandFunction(est, h_confounded)
    if exact_first_stage:
        est.first_stage_module_ = ExactPriceModel(est)
    return est


def test_exact_first_stage_gives_the_closed_form_loss_and_the_causal_ranking(demand_fit):
    """With the true F both candidates are linear in p given x, so E_F h = h(E[p|x,z], x)
    and the loss is mean (y - h(E[p|x,z], x))^2 in closed form. R^2 prefers the
    confounded regression; the causal validation loss prefers the structural h."""
    est, test = demand_fit
    mean_price = 25 + (test.instrument[:, 0] + 3) * _psi(test.X[:, 0])
    r2, loss = {}, {}
    for confounded in (False, True):
        model = _with(est, confounded, exact_first_stage=True)
        exact = np.mean((test.y - _true_h(test.X, mean_price, confounded)) ** 2)
        loss[confounded] = model.causal_validation_loss(test.X, test.y, test.instrument)
        # in the user's squared units; 100 draws per row, Monte-Carlo error < 0.2%
        assert loss[confounded] == pytest.approx(exact, rel=2e-3)
        r2[confounded] = model.score(test.X, test.y, treatment=test.treatment)
    assert r2[True] > r2[False] + 0.05       # the audit's ordering: 0.55 against 0.46
    assert loss[False] < loss[True] - 0.05 * UNIT ** 2  # 0.875 against 0.977 (units^2)


def test_fitted_first_stage_ranks_the_structural_function_first(demand_fit):
    """The same comparison with DeepIV's own fitted first stage (held-out rows)."""
    est, test = demand_fit
    true_h, confounded_h = _with(est, False), _with(est, True)
    assert (confounded_h.score(test.X, test.y, treatment=test.treatment)
            > true_h.score(test.X, test.y, treatment=test.treatment) + 0.05)
    assert (true_h.causal_validation_loss(test.X, test.y, test.instrument)
            < confounded_h.causal_validation_loss(test.X, test.y, test.instrument)
            - 0.1 * UNIT ** 2)


def test_monte_carlo_bias_is_removed_and_draws_are_seeded(demand_fit):
    """Two draws per row: the plain mean of (y - hbar)^2 is biased up by the mean of
    var(h | x, z) / 2; the corrected loss is not. The draws follow random_state."""
    est, test = demand_fit
    model = _with(est, True, exact_first_stage=True)
    mean_price = 25 + (test.instrument[:, 0] + 3) * _psi(test.X[:, 0])
    exact = np.mean((test.y - _true_h(test.X, mean_price, True)) ** 2)
    # h is linear in p and var(p | x, z) = 1, so var(h | x, z) is its squared slope
    slope = _true_h(test.X, mean_price + 1, True) - _true_h(test.X, mean_price, True)
    bias = np.mean(slope ** 2) / 2          # 2.5% of the loss
    two = [model.causal_validation_loss(test.X, test.y, test.instrument, n_draws=2,
                                        random_state=seed) for seed in range(8)]
    # the mean of 8 seeds has a Monte-Carlo sd of about bias / 15
    assert np.mean(two) == pytest.approx(exact, abs=bias / 3)
    again = model.causal_validation_loss(test.X, test.y, test.instrument, n_draws=2,
                                         random_state=0)
    assert again == two[0] and len(set(two)) == 8


def test_discrete_treatment_uses_the_exact_sum():
    """Against a hand computation from the public API: the first stage's class
    probabilities (first_stage_log_likelihood, row by row) and h at each level."""
    rng = np.random.RandomState(0)
    n = 300
    x, z, u = rng.randn(n, 1), rng.randn(n, 1), rng.randn(n)
    t = np.digitize(z[:, 0] + u, [-0.5, 0.5])
    y = t + x[:, 0] + u + 0.3 * rng.randn(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = DeepIV(treatment_type="discrete", first_stage_layers=(16,),
                     outcome_layers=(16,), max_epochs=5, patience=None,
                     random_state=0).fit(x, y, treatment=t, instrument=z)
    rows = slice(0, 40)
    probs = np.array([[np.exp(est.first_stage_log_likelihood(x[[i]], [k], z[[i]]))
                       for k in range(3)] for i in range(40)])
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-10)
    h = np.column_stack([est.predict_outcome(x[rows], k) for k in range(3)])
    expected = np.mean((y[rows] - (probs * h).sum(1)) ** 2)
    assert est.causal_validation_loss(x[rows], y[rows], z[rows]) == pytest.approx(
        expected, rel=1e-10)


def _linear(n=300, seed=0):
    rng = np.random.RandomState(seed)
    x, z, u = rng.randn(n, 1), rng.randn(n, 1), rng.randn(n)
    t = z[:, 0] + x[:, 0] + 2.0 * u + 0.3 * rng.randn(n)
    return x, 2.0 * t + x[:, 0] + 3.0 * u + 0.3 * rng.randn(n), t, z


SMALL = dict(first_stage_layers=(16,), outcome_layers=(16,), n_components=2,
             max_epochs=2, patience=None, batch_size=64, random_state=0)


def test_gridsearch_scores_each_fold_by_its_own_instruments():
    """Each split's score is minus the loss of that fold's model on that fold's held-out
    rows and instruments, computed by hand."""
    x, y, t, z = _linear()
    cv = KFold(2)
    grid = {"n_components": [1, 2]}
    with sklearn.config_context(enable_metadata_routing=True), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = GridSearchCV(DeepIV(**SMALL), grid, cv=cv,
                              scoring=causal_validation_scorer)
        search.fit(x, y, treatment=t, instrument=z)
        for c, components in enumerate(grid["n_components"]):
            for f, (train, test) in enumerate(cv.split(x)):
                est = DeepIV(**{**SMALL, "n_components": components}).fit(
                    x[train], y[train], treatment=t[train], instrument=z[train])
                expected = -est.causal_validation_loss(x[test], y[test], z[test])
                assert search.cv_results_[f"split{f}_test_score"][c] == expected
        # beside the factual R^2 (which needs the treatment instead), in a Pipeline
        pipe = Pipeline([("scale", StandardScaler()), ("iv", DeepIV(**SMALL))])
        result = cross_validate(
            pipe, x, y, cv=cv,
            scoring={"causal": causal_validation_scorer, "r2": factual_r2_scorer},
            params={"treatment": t, "instrument": z})
    assert np.all(result["test_causal"] < 0) and np.all(np.isfinite(result["test_r2"]))


def test_instrument_cols_need_no_routing():
    x, y, t, z = _linear()
    frame = pd.DataFrame({"x": x[:, 0], "z": z[:, 0]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = DeepIV(**SMALL, instrument_cols="z").fit(frame, y, treatment=t)
    loss = est.causal_validation_loss(frame, y)
    assert loss == est.causal_validation_loss(frame[["x"]], y, z)
    assert causal_validation_scorer(est, frame, y) == -loss


@pytest.fixture(scope="module")
def small_fit():
    x, y, t, z = _linear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DeepIV(**SMALL).fit(x, y, treatment=t, instrument=z), (x, y, t, z)


def _with_nan(v):
    v = v.copy()
    v[3] = np.nan
    return v


@pytest.mark.parametrize("bad, message", [
    (lambda x, y, z: dict(X=x, y=y), r"instrument is required: pass "
     r"causal_validation_loss\(X, y, instrument=z\)"),
    (lambda x, y, z: dict(X=x, y=y, instrument=z[:-1]),
     "instrument has 299 rows but X has 300"),
    (lambda x, y, z: dict(X=x, y=y, instrument=np.hstack([z, z])),
     "instrument has 2 columns but had 1"),
    (lambda x, y, z: dict(X=x, y=y, instrument=_with_nan(z)), "instrument contains 1 NaN"),
    (lambda x, y, z: dict(X=pd.DataFrame(x), y=y,
                          instrument=pd.Series(z[:, 0], index=np.arange(len(z))[::-1])),
     "instrument is a pandas Series whose index"),
    (lambda x, y, z: dict(X=x, y=y[:-1], instrument=z), "y has 299"),
    (lambda x, y, z: dict(X=x, y=_with_nan(y), instrument=z), "y contains 1 NaN"),
    (lambda x, y, z: dict(X=x, y=y, instrument=z, n_draws=1),
     "n_draws must be an integer >= 2"),
    (lambda x, y, z: dict(X=x, y=y, instrument=z, n_draws=2.5),
     "n_draws must be an integer >= 2"),
])
def test_bad_input_is_refused(small_fit, bad, message):
    est, (x, y, t, z) = small_fit
    with pytest.raises(ValueError, match=message):
        est.causal_validation_loss(**bad(x, y, z))


def test_scorer_refuses_missing_instruments_and_unfitted_estimators(small_fit):
    est, (x, y, t, z) = small_fit
    with pytest.raises(ValueError, match="needs the instruments.*enable metadata routing"):
        causal_validation_scorer(est, x, y)
    with pytest.raises(ValueError, match="y_true is a pandas"):
        causal_validation_scorer(est, pd.DataFrame(x),
                                 pd.Series(y, index=np.arange(len(y)) + 1), instrument=z)
    with pytest.raises(NotFittedError):
        clone(est).causal_validation_loss(x, y, z)
