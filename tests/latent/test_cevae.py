"""CEVAE (Louizos et al. 2017): the ELBO, effects on known latent models, proxies of both
kinds, prediction by posterior sampling, and the sklearn contract."""
import pickle
import warnings

import numpy as np
import pytest
import sklearn
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from causalnn import CEVAE
from causalnn.datasets import make_proxy_confounded
from causalnn.exceptions import NotFittedError, TrainingDivergedError

from conftest import cevae_loss_batch, simulate
from test_common import SKLEARN_CHECKS, _AdapterMixin

TINY = dict(latent_dim=2, hidden_layers=(16, 16), max_epochs=4, batch_size=64,
            patience=None, n_samples=10)


def linear_gaussian_latent(n, seed, n_proxies=5):
    """z ~ N(0, 1); x_j = z + 0.5 e_j; t ~ Bern(sigmoid(1.5 z)); y = 2 t + 1.5 z + 0.3 e.

    The ATE is 2; the naive difference in means is biased by z.
    """
    rng = np.random.RandomState(seed)
    z = rng.randn(n)
    X = z[:, None] + 0.5 * rng.randn(n, n_proxies)
    t = (rng.rand(n) < 1 / (1 + np.exp(-1.5 * z))).astype(float)
    y = 2.0 * t + 1.5 * z + 0.3 * rng.randn(n)
    return X, y, t


X, Y, T, _ = simulate(n=200, d=4)


class AdaptedCEVAE(_AdapterMixin, CEVAE):
    pass


@pytest.mark.parametrize("check", SKLEARN_CHECKS, ids=lambda c: c.__name__)
def test_sklearn_checks(check):
    est = AdaptedCEVAE(**{**TINY, "max_epochs": 2}, random_state=0,
                       validation_fraction=0.2)
    check("CEVAE", est)


def test_elbo_improves_and_history_names_the_terms():
    est = CEVAE(**{**TINY, "max_epochs": 40}, random_state=0).fit(X, Y, treatment=T)
    first, last = est.history_[0], est.history_[-1]
    assert last["valid_elbo"] > first["valid_elbo"] + 1.0
    assert last["train_loss"] < first["train_loss"]
    for term in ("nll_x_continuous", "nll_t", "nll_y", "kl", "aux_t", "aux_y"):
        assert f"train_{term}" in last and f"valid_{term}" in last
    # the loss is the negative ELBO plus the auxiliary likelihood terms
    assert last["valid_loss"] == pytest.approx(
        -last["valid_elbo"] + last["valid_aux_t"] + last["valid_aux_y"], rel=1e-5)


def test_kl_warmup_weights_the_kl_term_below_one_then_one():
    est = CEVAE(**{**TINY, "max_epochs": 5}, kl_warmup_epochs=3, random_state=0).fit(
        X, Y, treatment=T)

    def kl_shortfall(record):  # mean over the epoch of (beta - 1) * KL
        return record["train_loss"] - (-record["train_elbo"] + record["train_aux_t"]
                                       + record["train_aux_y"])

    assert kl_shortfall(est.history_[0]) < -0.1 * est.history_[0]["train_kl"]
    assert kl_shortfall(est.history_[-1]) == pytest.approx(0.0, abs=1e-4)
    # validation always uses the full ELBO
    for record in est.history_:
        assert record["valid_loss"] == pytest.approx(
            -record["valid_elbo"] + record["valid_aux_t"] + record["valid_aux_y"],
            rel=1e-5)


def test_recovers_the_effect_of_a_linear_gaussian_latent_model():
    X_, y, t = linear_gaussian_latent(2000, seed=0)
    naive = y[t == 1].mean() - y[t == 0].mean()
    assert abs(naive - 2.0) > 1.0  # strongly confounded
    est = CEVAE(latent_dim=1, hidden_layers=(32, 32), max_epochs=60, patience=10,
                n_samples=30, random_state=0).fit(X_, y, treatment=t)
    # tolerance: 0.25 in effect units, an eighth of the effect
    assert abs(est.ate(X_) - 2.0) < 0.25
    assert np.sqrt(np.mean((est.effect(X_) - 2.0) ** 2)) < 0.4


def test_binary_and_continuous_proxies():
    rng = np.random.RandomState(0)
    X_ = np.column_stack([rng.randn(200), rng.randint(0, 2, 200), rng.randn(200),
                          rng.randint(0, 2, 200)]).astype(float)
    est = CEVAE(**TINY, random_state=0).fit(X_, Y, treatment=T)
    np.testing.assert_array_equal(est.continuous_columns_, [0, 2])
    np.testing.assert_array_equal(est.binary_columns_, [1, 3])
    assert {"train_nll_x_continuous", "train_nll_x_binary"} <= set(est.history_[0])
    only_gaussian = CEVAE(**TINY, proxy_types="continuous", random_state=0).fit(
        X_, Y, treatment=T)
    assert "train_nll_x_binary" not in only_gaussian.history_[0]
    given = CEVAE(**TINY, proxy_types=["continuous", "binary", "continuous", "continuous"],
                  random_state=0).fit(X_, Y, treatment=T)
    np.testing.assert_array_equal(given.binary_columns_, [1])
    with pytest.raises(ValueError, match=r"proxy_types marks columns \[0\] as 'binary'"):
        CEVAE(**TINY, proxy_types=["binary", "binary", "continuous", "binary"]).fit(
            X_, Y, treatment=T)
    with pytest.raises(ValueError, match="proxy_types has 2 entries but X has 4"):
        CEVAE(**TINY, proxy_types=["binary", "binary"]).fit(X_, Y, treatment=T)
    with pytest.raises(ValueError, match="The 'proxy_types' parameter of CEVAE"):
        CEVAE(**TINY, proxy_types="poisson").fit(X_, Y, treatment=T)


def test_gaussian_columns_are_scale_free():
    """Gaussian proxies are standardised inside, so rescaling them changes nothing."""
    a = CEVAE(**TINY, random_state=0).fit(X, Y, treatment=T).effect(X)
    b = CEVAE(**TINY, random_state=0).fit(X * 1000 + 5, Y, treatment=T).effect(
        X * 1000 + 5)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_binary_outcome_effects_are_probability_differences():
    data = make_proxy_confounded(400, random_state=0)
    est = CEVAE(**TINY, random_state=0).fit(data.X, data.y, treatment=data.treatment)
    assert est.outcome_type_ == "binary"
    mu0, mu1 = est.predict_outcome(data.X, 0), est.predict_outcome(data.X, 1)
    assert np.all((mu0 > 0) & (mu0 < 1) & (mu1 > 0) & (mu1 < 1))
    np.testing.assert_allclose(est.effect(data.X), mu1 - mu0, atol=1e-9)


def test_prediction_is_float64_repeatable_and_averages_n_samples():
    est = CEVAE(**TINY, random_state=0).fit(X, Y, treatment=T)
    tau = est.effect(X)
    assert tau.dtype == np.float64 and tau.shape == (len(X),)
    np.testing.assert_array_equal(est.effect(X), tau)  # same draws on every call
    np.testing.assert_allclose(est.effect(X), est.predict_outcome(X, 1)
                               - est.predict_outcome(X, 0), rtol=1e-9, atol=1e-9)
    # more posterior draws, less Monte Carlo noise between two sampling seeds
    spread = {}
    for draws in (2, 200):
        est.set_params(n_samples=draws)
        a = est.effect(X)
        est.sampling_seed_ += 1
        spread[draws] = np.std(est.effect(X) - a)
        est.sampling_seed_ -= 1
    assert spread[200] < spread[2] / 3


@pytest.mark.parametrize("outcome, n_members", [("continuous", 1), ("binary", 2)])
def test_row_effects_do_not_depend_on_the_other_rows(outcome, n_members):
    """The posterior draws are common to all rows: a row's effect is the same alone,
    among other rows, and in a permuted X."""
    y = (Y > np.median(Y)).astype(float) if outcome == "binary" else Y
    est = CEVAE(**TINY, n_members=n_members, random_state=0).fit(X, y, treatment=T)
    tau = est.effect(X, members=True)
    alone = np.column_stack([est.effect(X[i:i + 1], members=True) for i in range(5)])
    np.testing.assert_allclose(alone, tau[:, :5], rtol=1e-6, atol=1e-9)
    perm = np.random.RandomState(0).permutation(len(X))
    np.testing.assert_allclose(est.effect(X[perm], members=True)[:, np.argsort(perm)],
                               tau, rtol=1e-6, atol=1e-9)
    assert np.std(tau) > 0  # rows still differ: their own x gives their own effect


@pytest.mark.parametrize("outcome, n_members", [("continuous", 1), ("binary", 2)])
def test_posterior_outcomes_match_the_draw_by_draw_computation(outcome, n_members):
    """q(t|x) and q(y|x,t) are evaluated once per row and arm and handed to each draw:
    the result must be the one of running every draw's own copy of the row through
    them (each draw on its own row, t and arm; a misordered expansion would give
    rows another row's propensity)."""
    import torch
    from scipy.special import ndtri
    from causalnn.estimators.latent._cevae import _row_uniforms
    y = (Y > np.median(Y)).astype(float) if outcome == "binary" else Y
    est = CEVAE(**dict(TINY, n_samples=7), n_members=n_members, random_state=0).fit(
        X, y, treatment=T)
    rows = X[:9]
    module, draws, members = est.module_, est.n_samples, est.n_members_
    scaled = est._scale_X(rows)
    n, width = len(rows), 2 + module.latent_dim
    u = _row_uniforms(scaled, est.sampling_seed_, (members, draws, width))
    u = u.transpose(1, 2, 0, 3).reshape(members, draws * n, width)
    device = est.device_  # CUDA under device="auto" with a GPU present
    normal, u = (torch.as_tensor(a, dtype=torch.float32, device=device)
                 for a in (ndtri(u), u))
    with torch.no_grad():
        x = torch.as_tensor(scaled, dtype=torch.float32, device=device).repeat(draws, 1)
        t = (u[..., :1] < module.auxiliary_t(x).probs).float().squeeze(-1)
        q_y = module.auxiliary_y(x, t)
        y_draw = ((u[..., 1:2] < q_y.probs).float() if outcome == "binary"
                  else q_y.loc + q_y.scale * normal[..., 1:2])
        q_z = module.encode(x, t, y_draw.squeeze(-1))
        z = q_z.loc + q_z.scale * normal[..., 2:]
        arms = torch.cat([arm.mean for arm in module.p_y.all_arms(z)], dim=-1)
    expected = arms.double().reshape(members, draws, n, 2).mean(1).cpu().numpy()
    np.testing.assert_allclose(est._posterior_outcomes(rows), expected, rtol=1e-5,
                               atol=1e-7)


def test_validation_loss_uses_common_random_numbers():
    """Every validation pass replays the same reparameterisation noise, so at fixed
    weights the held-out loss repeats exactly and early stopping compares epochs, not
    Monte-Carlo noise; training keeps drawing fresh noise."""
    # a learning rate of 1e-12 with plain SGD: the weights do not move between epochs
    est = CEVAE(**TINY, optimizer="sgd", learning_rate=1e-12, weight_decay=0.0,
                random_state=0, validation_fraction=0.3).fit(X, Y, treatment=T)
    losses = [record["valid_loss"] for record in est.history_]
    assert losses == [losses[0]] * len(losses)
    train = [record["train_loss"] for record in est.history_]
    assert len(set(train)) == len(train)


def test_seeded_fit_is_repeatable_and_pickles():
    a = CEVAE(**TINY, random_state=7).fit(X, Y, treatment=T)
    b = CEVAE(**TINY, random_state=7).fit(X, Y, treatment=T)
    c = CEVAE(**TINY, random_state=8).fit(X, Y, treatment=T)
    np.testing.assert_array_equal(a.effect(X), b.effect(X))
    assert not np.array_equal(a.effect(X), c.effect(X))
    restored = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(restored.effect(X), a.effect(X))
    assert clone(a).get_params() == a.get_params()
    p = a.predict_propensity(X)
    assert p.shape == (len(X),) and np.all((p > 0) & (p < 1))


def test_members_are_independent_cevaes_in_one_fit(monkeypatch):
    """Each member's loss is the loss of that CEVAE alone: member 1 of a 3-member fit,
    sliced out, gives the same loss terms on a batch; the ensemble's effect is the
    members' mean and each member has its own initial weights."""
    import torch
    from causalnn.engine import select_members
    est = CEVAE(**TINY, n_members=3, random_state=0).fit(X, Y, treatment=T)
    assert est.n_members_ == 3 and np.asarray(est.best_epoch_).shape == (3,)
    per_member = est.effect(X, members=True)
    assert per_member.shape == (3, len(X))
    np.testing.assert_allclose(est.effect(X), per_member.mean(axis=0), rtol=1e-12)
    assert np.all(np.std(per_member, axis=0) > 0)
    # z at its posterior mean: the comparison needs no shared noise
    monkeypatch.setattr(CEVAE, "_standard_normal",
                        lambda self, like, training: torch.zeros_like(like))
    batch = cevae_loss_batch(est, X, T, Y, 50)
    est.module_.eval()
    together = est._compute_loss(est.module_, batch)["member_loss"]
    alone = est._compute_loss(select_members(est.module_, [1], 3).eval(), batch)
    torch.testing.assert_close(alone["member_loss"][0], together[1], rtol=1e-5,
                               atol=1e-5)
    assert est.predict_propensity(X).shape == (len(X),)


def test_bootstrap_members_give_intervals_and_cross_fitted_inference():
    data = make_proxy_confounded(600, random_state=1)
    est = CEVAE(**TINY, n_members=4, bootstrap=True, random_state=0).fit(
        data.X, data.y, treatment=data.treatment)
    lo, hi = est.ate_interval(data.X, alpha=0.1)
    assert lo < est.ate(data.X) < hi
    lower, upper = est.effect_interval(data.X[:5])
    assert np.all(lower <= upper)
    # AIPW weights by q(t|x), a function of the proxies: it adjusts for X, not z
    with pytest.warns(UserWarning, match="adjusts for X, not for the latent z"):
        res = CEVAE(**TINY, random_state=0).ate_inference(
            data.X, data.y, treatment=data.treatment, cv=2)
    assert res.cv == 2 and res.stderr > 0
    # the paper's design is barely confounded (bias 0.012): the doubly robust estimate
    # lands near the truth although the tiny model is crude
    assert abs(res.point_estimate - data.ate) < 4 * res.stderr + 0.05
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plug = CEVAE(**TINY, random_state=0).ate_inference(
            data.X, data.y, treatment=data.treatment, cv=2, method="plugin")
    assert not [w for w in caught if "latent z" in str(w.message)]  # no warning
    assert np.isnan(plug.stderr)


def test_own_member_validation(held_out_rows, monkeypatch):
    """member_validation='own': each member holds out its own rows; one member is the
    shared fit; the KL warm-up counts the steps of an epoch over all rows."""
    one_shared = CEVAE(**TINY, random_state=2).fit(X, Y, treatment=T)
    one_own = CEVAE(**TINY, member_validation="own", random_state=2).fit(
        X, Y, treatment=T)
    np.testing.assert_array_equal(one_own.effect(X), one_shared.effect(X))
    del held_out_rows[:]
    shared = CEVAE(**TINY, n_members=3, random_state=0).fit(X, Y, treatment=T)
    assert len(held_out_rows) == 1
    own = CEVAE(**TINY, n_members=3, member_validation="own", random_state=0).fit(
        X, Y, treatment=T)
    assert len(held_out_rows) == 4 and len({tuple(r) for r in held_out_rows[1:]}) == 3
    assert own.effect(X, members=True).shape == (3, len(X))
    assert not np.allclose(own.effect(X), shared.effect(X))
    assert np.all(np.isfinite(own.history_[-1]["valid_member_loss"]))
    # warm-up over 2 epochs of ceil(200 / 64) = 4 steps each (all rows), not 3
    betas = []
    original = CEVAE._compute_loss

    def recording(self, module, batch):
        out = original(self, module, batch)
        if module.training:
            betas.append(min(1.0, self._step / self._warmup_steps))
        return out

    monkeypatch.setattr(CEVAE, "_compute_loss", recording)
    CEVAE(**{**TINY, "max_epochs": 3}, n_members=2, member_validation="own",
          kl_warmup_epochs=2, random_state=0).fit(X, Y, treatment=T)
    assert len(betas) == 12 and betas[7] == 1.0 and betas[6] < 1.0


def test_validation_rows_do_not_depend_on_the_architecture(held_out_rows):
    """Fits from one random_state hold out the same rows whatever the network sizes,
    so their validation losses compare (model selection by validation loss)."""
    held_out = held_out_rows
    CEVAE(**TINY, random_state=3).fit(X, Y, treatment=T)
    CEVAE(**{**TINY, "latent_dim": 5, "hidden_layers": (8,)}, random_state=3).fit(
        X, Y, treatment=T)
    CEVAE(**TINY, random_state=4).fit(X, Y, treatment=T)
    assert held_out[0] == held_out[1] and held_out[0] != held_out[2]


def test_not_fitted():
    for method in (CEVAE().effect, CEVAE().predict, CEVAE().ate):
        with pytest.raises(NotFittedError):
            method(X)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"treatment must be binary \(0/1\) for CEVAE"):
        CEVAE(**TINY).fit(X, Y, treatment=T * 2)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="^X contains"):
        CEVAE(**TINY).fit(bad, Y, treatment=T)
    with pytest.raises(ValueError, match="n_samples"):
        CEVAE(n_samples=0).fit(X, Y, treatment=T)
    est = CEVAE(**TINY, random_state=0).fit(X, Y, treatment=T)
    with pytest.raises(ValueError, match="X has 3 features"):
        est.effect(X[:, :3])


def test_diverging_training_stops_with_error():
    with pytest.raises(TrainingDivergedError, match="Training diverged"):
        CEVAE(**{**TINY, "max_epochs": 30}, optimizer="sgd", learning_rate=1e4,
              random_state=0).fit(X, Y * 1e3, treatment=T)


def test_pipeline_and_gridsearch_route_the_treatment():
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = Pipeline([("id", FunctionTransformer()),
                         ("cevae", CEVAE(**TINY, random_state=0))])
        search = GridSearchCV(pipe, {"cevae__latent_dim": [1, 3]}, cv=2)
        search.fit(X, Y, treatment=T)
    assert search.best_params_["cevae__latent_dim"] in (1, 3)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.predict(X).shape == (len(X),)


def test_docstring_documents_every_parameter():
    import re
    documented = set(re.findall(r"^    (\w+) :", CEVAE.__doc__, flags=re.M))
    assert not set(CEVAE().get_params()) - documented and "%(" not in CEVAE.__doc__


def test_make_proxy_confounded():
    data = make_proxy_confounded(20000, n_proxies=7, random_state=0)
    assert data.X.shape == (20000, 7)
    assert abs(data.ite.mean() - data.ate) < 0.005
    # z confounds: treated rows have z = 1 three times as often as z = 0
    assert data.z[data.treatment == 1].mean() == pytest.approx(0.75, abs=0.02)
    # less proxy noise, proxies closer to z
    sharp = make_proxy_confounded(20000, noise_scale=0.1, random_state=0)
    assert (np.corrcoef(sharp.X[:, 0], sharp.z)[0, 1]
            > np.corrcoef(data.X[:, 0], data.z)[0, 1] + 0.5)
    with pytest.raises(ValueError, match="noise_scale"):
        make_proxy_confounded(100, noise_scale=0)
    # outcome_confounding: the bias of the difference in means, in closed form
    # E[y|t=1] - E[y|t=0] - ATE with P(z=1|t=1) = 0.75 and P(z=1|t=0) = 0.25, grows
    # from 0.0118 (the paper's c = 1) to 0.1250 (c = 2)
    for c, bias in ((1.0, 0.0118), (2.0, 0.1250)):
        d = make_proxy_confounded(200000, outcome_confounding=c, random_state=1)
        naive = d.y[d.treatment == 1].mean() - d.y[d.treatment == 0].mean()
        assert naive - d.ate == pytest.approx(bias, abs=0.006)
        assert abs(d.ite.mean() - d.ate) < 0.005
    with pytest.raises(ValueError, match="outcome_confounding"):
        make_proxy_confounded(100, outcome_confounding=float("nan"))


@pytest.mark.cuda
@pytest.mark.parametrize("n_members", [1, 2])
def test_cuda_fit_agrees_with_cpu_and_unpickles_on_cpu(monkeypatch, n_members):
    import torch
    kw = dict(TINY, max_epochs=10, random_state=0, n_members=n_members)
    gpu = CEVAE(device="cuda", **kw).fit(X, Y, treatment=T)
    assert next(gpu.module_.parameters()).device.type == "cuda"
    cpu = CEVAE(device="cpu", **kw).fit(X, Y, treatment=T)
    # same weights, batches and noise draws (all from CPU generators); rounding differs
    np.testing.assert_allclose(gpu.effect(X), cpu.effect(X), atol=0.05 * np.std(Y))
    expected = gpu.effect(X)
    blob = pickle.dumps(gpu)
    np.testing.assert_array_equal(gpu.effect(X), expected)  # pickling left it intact
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    restored = pickle.loads(blob)
    assert restored.device_.type == "cpu"
    np.testing.assert_allclose(restored.effect(X), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("constant", [0.3, 2024.0])
def test_a_constant_continuous_proxy_is_centred_not_blown_up(constant):
    """Shared column scaling: a proxy constant in training (0.3 had a 6e-17 "std")
    enters as zeros, so the fit equals that with a continuous column of zeros."""
    types = ["continuous"] * 5
    zeros = CEVAE(**TINY, proxy_types=types, random_state=0).fit(
        np.column_stack([X, np.zeros(len(X))]), Y, treatment=T)
    const = CEVAE(**TINY, proxy_types=types, random_state=0).fit(
        np.column_stack([X, np.full(len(X), constant)]), Y, treatment=T)
    np.testing.assert_allclose(const.effect(np.column_stack([X, np.full(len(X), constant)])),
                               zeros.effect(np.column_stack([X, np.zeros(len(X))])),
                               atol=1e-6)
    # another value at prediction enters as its difference (before: 1 / 6e-17)
    np.testing.assert_allclose(
        const.effect(np.column_stack([X, np.full(len(X), constant + 1.0)])),
        zeros.effect(np.column_stack([X, np.ones(len(X))])), atol=1e-5)


def test_posterior_draws_take_the_treatment_from_q_t_given_x():
    """The effect's posterior draws are t ~ q(t|x), y ~ q(y|x,t), z ~ q(z|x,t,y)
    (Louizos et al. 2017, sec. 3.1): over n_samples draws per row, the share of t = 1
    that reaches the encoder is the mean propensity q(t=1|x), up to the Monte Carlo
    error of those Bernoulli draws (4 standard errors)."""
    est = CEVAE(**{**TINY, "n_samples": 50}, random_state=0).fit(X, Y, treatment=T)
    seen = []
    encode = est.module_.encode

    def recording(x, t, y):
        seen.append(t.detach().cpu().numpy().ravel())
        return encode(x, t, y)

    est.module_.encode = recording
    est.effect(X)
    draws = np.concatenate(seen)
    assert len(draws) == 50 * len(X)
    p = est.predict_propensity(X)
    assert 0.2 < p.mean() < 0.8  # t = 1 (or 0) for every draw would be far outside
    standard_error = np.sqrt(50 * np.sum(p * (1 - p))) / len(draws)
    assert abs(draws.mean() - p.mean()) < 4 * standard_error
