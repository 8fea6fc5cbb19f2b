"""Ensembles (n_members), bootstrap members, fit_many and feature scaling."""
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from causalnn import CFRNet, Dragonnet, TARNet

from conftest import ESTIMATORS, SMALL, simulate

X, Y, T, TAU = simulate(n=300, d=4)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_members_effects_and_their_mean(name):
    est = ESTIMATORS[name](n_members=3, random_state=0).fit(X, Y, treatment=T)
    per_member = est.effect(X, members=True)
    assert per_member.shape == (3, len(X))
    assert est.n_members_ == 3
    np.testing.assert_allclose(est.effect(X), per_member.mean(axis=0))
    # independent initial weights: the members disagree
    assert np.std(per_member, axis=0).mean() > 1e-3
    assert len(est.history_[0]["valid_member_loss"]) == 3
    assert np.asarray(est.best_epoch_).shape == (3,)


def test_single_member_effect_shape():
    est = TARNet(**SMALL, random_state=0).fit(X, Y, treatment=T)
    assert est.effect(X, members=True).shape == (1, len(X))
    assert isinstance(est.best_epoch_, int)


def test_members_are_seed_deterministic():
    kw = dict(SMALL, n_members=3, random_state=5)
    a = CFRNet(ipm="wasserstein", alpha=0.1, **kw).fit(X, Y, treatment=T)
    b = CFRNet(ipm="wasserstein", alpha=0.1, **kw).fit(X, Y, treatment=T)
    np.testing.assert_array_equal(a.effect(X, members=True), b.effect(X, members=True))


def test_bootstrap_members_differ_and_recover_the_effect():
    kw = dict(SMALL, max_epochs=30, random_state=0)
    plain = TARNet(n_members=4, **kw).fit(X, Y, treatment=T)
    boot = TARNet(n_members=4, bootstrap=True, **kw).fit(X, Y, treatment=T)
    spread = boot.effect(X, members=True).std(axis=0).mean()
    assert spread > plain.effect(X, members=True).std(axis=0).mean()
    assert abs(boot.ate(X) - TAU.mean()) < 0.25


def test_dragonnet_has_one_epsilon_per_member():
    est = Dragonnet(**SMALL, n_members=3, random_state=0).fit(X, Y, treatment=T)
    assert np.shape(est.epsilon_) == (3,)
    assert np.isfinite(est.ate(X, targeted=True))
    assert est.predict_propensity(X).shape == (len(X),)


def test_fit_many_of_one_dataset_equals_fit():
    kw = dict(SMALL, n_members=2, random_state=3)
    single = TARNet(**kw).fit(X, Y, treatment=T)
    (many,) = TARNet(**kw).fit_many(X, Y[None], treatment=T)
    np.testing.assert_allclose(many.effect(X, members=True),
                               single.effect(X, members=True), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("member_validation", ["shared", "own"])
@pytest.mark.parametrize("cls", [TARNet, Dragonnet], ids=lambda c: c.__name__)
def test_fit_many_fits_each_dataset(cls, member_validation):
    """Three datasets with the same X and treatment and effects 1, 5 and -3 (in
    outcomes of different scales) trained as one fit; with member_validation="own"
    each of the six members holds out its own rows."""
    shifts = np.array([0.0, 4.0, -4.0])
    scales = np.array([1.0, 10.0, 0.1])
    Ys = np.stack([s * (Y + d * T) for s, d in zip(scales, shifts)])
    ests = cls(**dict(SMALL, max_epochs=40), n_members=2, random_state=0,
               member_validation=member_validation).fit_many(X, Ys, treatment=T)
    assert len(ests) == 3
    for est, s, d in zip(ests, scales, shifts):
        assert est.n_members_ == 2 and est.effect(X, members=True).shape == (2, len(X))
        expected = s * (TAU.mean() + d)
        assert est.ate(X) == pytest.approx(expected, abs=0.3 * s + 0.15 * abs(expected))
        restored = pickle.loads(pickle.dumps(est))
        np.testing.assert_array_equal(restored.effect(X), est.effect(X))


def test_fit_many_checks_its_outcomes():
    with pytest.raises(ValueError, match="n_datasets"):
        TARNet(**SMALL).fit_many(X, Y, treatment=T)


def _frames(index):
    Xdf = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])], index=index)
    Ydf = pd.DataFrame({"rep1": Y, "rep2": 3 * Y - 2 * T}, index=index)
    return Xdf, Ydf


def test_fit_many_checks_the_index_of_each_pandas_outcome():
    """fit refuses a y sorted apart from X; fit_many does the same per dataset."""
    Xdf, Ydf = _frames(np.arange(len(X))[::-1] * 10)
    shuffled = Ydf["rep1"].sample(frac=1, random_state=0)
    with pytest.raises(ValueError, match=r"^Y\[0\] is a pandas Series whose index has "
                                         r"the same labels as X.index in another order"):
        TARNet(**SMALL).fit_many(Xdf, [shuffled, Ydf["rep2"]], treatment=T)
    with pytest.raises(ValueError, match=r"^Y\[1\] is a pandas Series whose index has "
                                         r"labels that differ"):
        TARNet(**SMALL).fit_many(Xdf, [Ydf["rep1"], Ydf["rep2"].reset_index(drop=True)],
                                 treatment=T)
    with pytest.raises(ValueError, match="^Y is a pandas DataFrame whose index"):
        TARNet(**SMALL).fit_many(Xdf, Ydf.sample(frac=1, random_state=0), treatment=T)


def test_fit_many_takes_a_dataframe_with_one_column_per_dataset():
    """The pandas layout (n_samples, n_datasets), and a list of aligned Series, fit
    exactly as the (n_datasets, n_samples) array does."""
    Xdf, Ydf = _frames(np.arange(len(X)) + 100)
    kw = dict(SMALL, max_epochs=2, random_state=0)
    expected = [est.effect(X) for est in
                TARNet(**kw).fit_many(X, Ydf.to_numpy().T, treatment=T)]
    for outcomes in (Ydf, [Ydf["rep1"], Ydf["rep2"]]):
        fits = TARNet(**kw).fit_many(Xdf, outcomes, treatment=T)
        assert len(fits) == 2
        for est, effect in zip(fits, expected):
            np.testing.assert_array_equal(est.effect(Xdf), effect)


def test_fit_many_names_the_expected_shape_of_a_transposed_outcome():
    Xdf, Ydf = _frames(None)
    with pytest.raises(ValueError, match=r"one outcome vector per dataset, of shape "
                                         r"\(n_datasets, n_samples\), with n_samples=300 "
                                         r".*got shape \(300, 2\). It looks transposed"):
        TARNet(**SMALL).fit_many(X, Ydf.to_numpy(), treatment=T)
    with pytest.raises(ValueError, match=r"a DataFrame with one column per dataset, of "
                                         r"shape \(n_samples, n_datasets\).*got shape "
                                         r"\(2, 300\). It looks transposed"):
        TARNet(**SMALL).fit_many(Xdf, Ydf.T, treatment=T)


def test_pickling_leaves_the_estimator_unchanged():
    est = TARNet(**SMALL, n_members=2, random_state=0).fit(X, Y, treatment=T)
    module = est.module_
    before = est.effect(X)
    pickle.dumps(est)
    assert est.module_ is module
    np.testing.assert_array_equal(est.effect(X), before)


@pytest.mark.parametrize("name", ["TARNet", "Dragonnet", "CFRNet-wasserstein"])
def test_effects_do_not_depend_on_the_units_of_continuous_features(name):
    """X scaling inside the estimator: continuous columns x 1000, same effects. The
    0/1 column is left as it is."""
    Xb = np.column_stack([X, (X[:, 0] > 0).astype(float)])
    scaled = Xb.copy()
    scaled[:, :4] *= 1000.0
    kw = dict(random_state=0)
    a = ESTIMATORS[name](**kw).fit(Xb, Y, treatment=T)
    b = ESTIMATORS[name](**kw).fit(scaled, Y, treatment=T)
    # equal up to float32 rounding of the scaled inputs (also on a GPU)
    np.testing.assert_allclose(b.effect(scaled), a.effect(Xb), rtol=1e-2, atol=1e-2)
    assert a.X_offset_[4] == 0.0 and a.X_scale_[4] == 1.0
    np.testing.assert_allclose(b.X_scale_[:4], 1000.0 * a.X_scale_[:4])


@pytest.mark.parametrize("constant", [2024.0, 0.1, 0.3, 1e-30])
def test_a_constant_feature_changes_nothing(constant):
    """A column constant in training (a year, or a value whose mean is not exact in
    float64, where std is a 1e-17 residue) is centred on its value with scale 1: the
    network sees zeros, so the fit equals that with a column of zeros, and another
    value at prediction enters as its difference (before: 2024 entered raw, and 0.1
    as ~1e16)."""
    kw = dict(SMALL, random_state=0)
    X0 = np.column_stack([X, np.zeros(len(X))])
    zeros = TARNet(**kw).fit(X0, Y, treatment=T)
    Xc = np.column_stack([X, np.full(len(X), constant)])
    with_it = TARNet(**kw).fit(Xc, Y, treatment=T)
    assert with_it.X_offset_[-1] == constant and with_it.X_scale_[-1] == 1.0
    np.testing.assert_array_equal(with_it.effect(Xc), zeros.effect(X0))
    moved = Xc.copy()
    moved[:, -1] = constant + 1.0
    np.testing.assert_allclose(with_it.effect(moved),
                               zeros.effect(np.column_stack([X, np.ones(len(X))])),
                               rtol=1e-6, atol=1e-6)


def test_feature_scaling_can_be_turned_off():
    est = TARNet(**SMALL, scale_features=False, random_state=0).fit(1000 * X, Y,
                                                                    treatment=T)
    np.testing.assert_array_equal(est.X_scale_, 1.0)
    np.testing.assert_array_equal(est.X_offset_, 0.0)


def test_bfloat16_training_runs_and_recovers_the_effect():
    est = TARNet(**dict(SMALL, max_epochs=30), precision="bfloat16",
                 random_state=0).fit(X, Y, treatment=T)
    assert abs(est.ate(X) - TAU.mean()) < 0.3


def test_ipm_on_a_balanced_subbatch_for_large_batches():
    kw = dict(SMALL, batch_size=256, ipm="wasserstein", alpha=0.1, random_state=0)
    whole = CFRNet(ipm_batch_size=1024, **kw).fit(X, Y, treatment=T)
    sub = CFRNet(ipm_batch_size=32, **kw).fit(X, Y, treatment=T)
    assert np.isfinite(sub.history_[-1]["train_ipm"])
    assert abs(sub.ate(X) - whole.ate(X)) < 0.3


@pytest.mark.parametrize("ipm", ["wasserstein", "mmd_rbf", "mmd_linear"])
def test_a_members_loss_ignores_the_rows_outside_its_weight(ipm):
    """A member's own validation split, cross-fitting fold or bootstrap resample: its
    IPM, like its factual loss, sees only the rows it trains on."""
    est = CFRNet(**dict(SMALL, max_epochs=1), ipm=ipm, alpha=1.0, n_members=2,
                 random_state=0).fit(X, Y, treatment=T)
    n = 80
    device = est.device_  # the fitted module's device (CUDA with a GPU present)
    left_out = torch.zeros(2, n, dtype=torch.bool, device=device)
    left_out[0, ::3] = True  # member 0 does not train on every third row
    batch = {"X": torch.tensor(X[:n], dtype=torch.float32, device=device),
             "y": torch.tensor(Y[:n], dtype=torch.float32, device=device),
             "t": torch.tensor(T[:n], dtype=torch.float32, device=device),
             "w": torch.ones(n, device=device), "member_weight": (~left_out).float()}
    moved = dict(batch, X=batch["X"] + 3.0 * left_out[0, :, None],
                 t=torch.where(left_out[0], 1.0 - batch["t"], batch["t"]))
    with torch.no_grad():
        before = est._compute_loss(est.module_, batch)
        after = est._compute_loss(est.module_, moved)
    assert torch.all(before["ipm"] != 0.0)  # one IPM per member
    torch.testing.assert_close(after["member_loss"][0], before["member_loss"][0])
    assert abs(float(after["member_loss"][1] - before["member_loss"][1])) > 1e-3


@pytest.mark.slow
def test_compiled_training_matches_eager():
    """compile=True (torch.compile of the loss) trains the same network; minutes of
    compilation on a CPU, hence slow."""
    kw = dict(SMALL, n_members=2, ipm="wasserstein", random_state=0)
    eager = CFRNet(**kw).fit(X, Y, treatment=T)
    compiled = CFRNet(compile=True, **kw).fit(X, Y, treatment=T)
    np.testing.assert_allclose(compiled.effect(X), eager.effect(X), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_validation_rows_do_not_depend_on_the_network_size(name, held_out_rows):
    """One random_state holds out the same rows for every network size, so model
    selection by validation loss compares fits on the same rows; another random_state
    holds out other rows."""
    held_out = held_out_rows
    kw = dict(SMALL, max_epochs=2)
    ESTIMATORS[name](**kw, random_state=3).fit(X, Y, treatment=T)
    ESTIMATORS[name](**{**kw, "representation_layers": (7, 5), "head_layers": (3,)},
                     random_state=3).fit(X, Y, treatment=T)
    ESTIMATORS[name](**kw, n_members=2, random_state=3).fit(X, Y, treatment=T)
    ESTIMATORS[name](**kw, random_state=4).fit(X, Y, treatment=T)
    assert held_out[0] == held_out[1] == held_out[2] != held_out[3]


def test_own_member_validation_with_one_member_is_the_shared_split():
    kw = dict(SMALL, random_state=2)
    a = TARNet(**kw).fit(X, Y, treatment=T)
    b = TARNet(**kw, member_validation="own").fit(X, Y, treatment=T)
    np.testing.assert_array_equal(a.effect(X), b.effect(X))


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_own_member_validation_fits_members_on_different_rows(name):
    shared = ESTIMATORS[name](n_members=3, random_state=0).fit(X, Y, treatment=T)
    own = ESTIMATORS[name](n_members=3, member_validation="own", random_state=0).fit(
        X, Y, treatment=T)
    assert own.effect(X, members=True).shape == (3, len(X))
    assert not np.allclose(own.effect(X), shared.effect(X))
    # the simulated effect is recovered either way
    assert np.corrcoef(own.effect(X), TAU)[0, 1] > 0.5
    res = ESTIMATORS[name](n_members=2, member_validation="own", random_state=0) \
        .ate_inference(X, Y, treatment=T, cv=2)
    assert np.isfinite(res.point_estimate) and res.stderr > 0


@pytest.mark.parametrize("ipm", ["mmd_rbf", "mmd_linear", "wasserstein"])
def test_bfloat16_ipm_is_the_float32_ipm_of_the_representation(ipm):
    """Under bfloat16 autocast the network runs in bfloat16, but CFR's IPM is computed
    in float32 from its representation: in bfloat16 the MMDs, small differences of
    kernel means, were off by a median 9% (mmd_rbf)."""
    from causalnn.losses import IPMS
    est = CFRNet(**dict(SMALL, max_epochs=2), ipm=ipm, alpha=1.0, precision="bfloat16",
                 random_state=0).fit(X, Y, treatment=T)
    n = 256  # below ipm_batch_size: the IPM uses the whole batch
    device = est.device_  # the fitted module's device (CUDA with a GPU present)
    batch = {"X": torch.tensor(est._scale_features(X[:n]), dtype=torch.float32,
                               device=device),
             "y": torch.tensor(Y[:n], dtype=torch.float32, device=device),
             "t": torch.tensor(T[:n], dtype=torch.float32, device=device),
             "w": torch.ones(n, device=device)}
    # the autocast of the fit's device: CPU autocast leaves CUDA tensors in float32
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
        losses = est._compute_loss(est.module_, batch)
        hidden = est.module_["net"].representation(batch["X"])
        phi = est.module_["net"](batch["X"]).representation[0]
    # the network ran in bfloat16; the unit-norm scaling that follows it (CFR's
    # default) stays in bfloat16 under CPU autocast, but CUDA autocast computes norms
    # in float32, so there phi comes out in float32
    assert hidden.dtype == torch.bfloat16
    assert phi.dtype == (torch.float32 if device.type == "cuda" else torch.bfloat16)
    expected = IPMS[ipm](phi.float(), batch["t"])  # float32, no autocast
    assert losses["ipm"].dtype == torch.float32
    # float32 round-off apart: the loss takes the IPM's per-member weighted form, summed
    # in another order, and mmd_rbf's cancellation enlarges the difference (5e-6
    # relative on the CPU; a GPU sums in other orders). An IPM in bfloat16 is off by
    # 5e-4 (mmd_linear) to 9% (mmd_rbf) relative here.
    assert float(losses["ipm"].reshape(-1)[0]) == pytest.approx(float(expected), rel=5e-5,
                                                           abs=1e-8)


@pytest.mark.parametrize("validation_fraction", [0.3, 0.0])
def test_fit_many_histories_hold_each_datasets_own_members(validation_fraction):
    """Each estimator of fit_many reports its own members' losses and terms: dataset 0's
    history does not change when dataset 1's outcomes do (here 100 times noisier), its
    means are those of its own members, and one dataset's history is that of fit."""
    kw = dict(SMALL, max_epochs=3, ipm="mmd_rbf", n_members=2, random_state=0,
              validation_fraction=validation_fraction)
    noise = 100 * np.random.RandomState(1).randn(len(Y))
    with_noise = CFRNet(**kw).fit_many(X, np.stack([Y, noise]), treatment=T)
    with_effect = CFRNet(**kw).fit_many(X, np.stack([Y, Y + 4 * T]), treatment=T)
    alone = CFRNet(**kw).fit(X, Y, treatment=T)
    (many_of_one,) = CFRNet(**kw).fit_many(X, Y[None], treatment=T)

    def without_dur(history):
        return [{k: v for k, v in record.items() if k != "dur"} for record in history]

    assert without_dur(with_noise[0].history_) == without_dur(with_effect[0].history_)
    for est in with_noise + with_effect:
        for record in est.history_:
            for prefix in ("train", "valid") if validation_fraction else ("train",):
                for term in ("loss", "factual", "ipm"):
                    own = record[f"{prefix}_member_{term}"]
                    assert len(own) == 2
                    assert record[f"{prefix}_{term}"] == pytest.approx(np.mean(own))
    # the noisy dataset's losses are not the first dataset's
    assert with_noise[1].history_[-1]["train_loss"] != pytest.approx(
        with_noise[0].history_[-1]["train_loss"], rel=1e-3)
    assert set(many_of_one.history_[0]) == set(alone.history_[0])
    for got, expected in zip(without_dur(many_of_one.history_),
                             without_dur(alone.history_)):
        for key, value in expected.items():
            np.testing.assert_allclose(got[key], value, rtol=1e-5, err_msg=key)


def test_fit_many_gives_each_dataset_its_own_members_terms():
    """Dragonnet logs its named terms per member, so each dataset's history holds its
    own members' factual, propensity and targeted losses (and their mean), whatever
    the other datasets are."""
    def last_records(second):
        fits = Dragonnet(**dict(SMALL, max_epochs=2), n_members=2,
                         random_state=0).fit_many(X, np.stack([Y, second]), treatment=T)
        return [est.history_[-1] for est in fits]

    first, other = last_records(100 * Y)
    first_beside_noise = last_records(np.random.default_rng(1).normal(size=len(Y)))[0]
    first.pop("dur"), first_beside_noise.pop("dur")  # wall-clock seconds
    assert first == first_beside_noise
    for record in (first, other):
        for prefix in ("train", "valid"):
            for term in ("loss", "factual", "propensity", "targeted"):
                members = record[f"{prefix}_member_{term}"]
                assert len(members) == 2
                assert record[f"{prefix}_{term}"] == pytest.approx(np.mean(members))