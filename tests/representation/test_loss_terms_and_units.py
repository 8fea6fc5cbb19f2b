"""Terms of the representation models' losses and their units that an earlier bug could
drop silently (found by mutation testing): each member's propensity term weighted by its
own rows (a cross-fitting fold's model must not train its propensity on the fold it
predicts), Dragonnet's influence_curve_mean_ in the units of y, each fit_many dataset's
own best epochs, and an ensemble's overlap share from the members' mean propensity."""
import warnings

import numpy as np
import torch

from causalnn import Dragonnet, TARNet

SMALL = dict(representation_layers=(32,), head_layers=(16,), batch_size=64)


def _data(n=200, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, 5)
    T = (rng.rand(n) < 0.5).astype(float)
    Y = X[:, 0] + T + rng.randn(n)
    return X, Y, T


def test_a_dragonnet_members_loss_ignores_the_rows_outside_its_weight():
    X, Y, T = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = Dragonnet(**SMALL, max_epochs=1, n_members=2, random_state=0).fit(
            X, Y, treatment=T)
    n = 80
    left_out = torch.zeros(2, n, dtype=torch.bool)
    left_out[0, ::3] = True  # member 0 does not train on every third row
    batch = {"X": torch.tensor(X[:n], dtype=torch.float32),
             "y": torch.tensor(Y[:n], dtype=torch.float32),
             "t": torch.tensor(T[:n], dtype=torch.float32),
             "member_weight": (~left_out).float()}
    moved = dict(batch, t=torch.where(left_out[0], 1.0 - batch["t"], batch["t"]),
                 y=torch.where(left_out[0], batch["y"] + 5.0, batch["y"]))
    # on the fitted model's device (CUDA under device="auto" with a GPU present)
    batch, moved = ({k: v.to(est.device_) for k, v in b.items()} for b in (batch, moved))
    with torch.no_grad():
        before = est._compute_loss(est.module_, batch)
        after = est._compute_loss(est.module_, moved)
    for term in ("member_loss", "propensity", "factual", "targeted"):
        torch.testing.assert_close(after[term][0], before[term][0])
        assert abs(float(after[term][1] - before[term][1])) > 1e-4



def test_dragonnet_influence_curve_mean_is_in_the_units_of_y():
    rng = np.random.RandomState(0)
    n = 300
    X = rng.randn(n, 3)
    t = (rng.rand(n) < 1 / (1 + np.exp(-X[:, 0]))).astype(float)
    y = 50.0 * (X[:, 1] + t + rng.randn(n))  # y_scale_ far from 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = Dragonnet(targeted_regularization=False, representation_layers=(16,),
                        head_layers=(16,), max_epochs=5, patience=None,
                        random_state=0).fit(X, y, treatment=t)
    g = est.predict_propensity(X)  # the squeezed g that H divides by
    h = t / g - (1 - t) / (1 - g)
    mu = est.predict_outcome(X, t)  # epsilon_ = 0: Q~ = Q
    expected = np.mean(h * (y - mu))
    assert abs(expected) > 1.0  # not solved: the check has teeth
    np.testing.assert_allclose(est.influence_curve_mean_, expected, rtol=1e-4)


def test_each_fit_many_dataset_keeps_its_own_best_epochs():
    rng = np.random.RandomState(0)
    n = 300
    X = rng.randn(n, 3)
    t = (rng.rand(n) < 1 / (1 + np.exp(-X[:, 0]))).astype(float)
    # a learnable outcome (keeps improving) and pure noise (stops at once)
    Y = np.stack([np.sin(3 * X[:, 1]) + t + 0.05 * rng.randn(n), rng.randn(n)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = TARNet(n_members=2, max_epochs=40, patience=3, representation_layers=(16,),
                      head_layers=(16,), random_state=0).fit_many(X, Y, treatment=t)
    for fit in fits:
        # each member's best epoch is the epoch of its lowest validation loss up to its
        # stop (best + patience); a stopped member trains on with the others and may
        # reach a lower loss later, which it must not take
        valid = np.array([r["valid_member_loss"] for r in fit.history_])
        lowest = [valid[:best + 3, m].argmin() + 1 for m, best in enumerate(fit.best_epoch_)]
        np.testing.assert_array_equal(fit.best_epoch_, lowest)
    assert not np.array_equal(fits[0].best_epoch_, fits[1].best_epoch_)


def test_dragonnet_ensemble_overlap_share_is_that_of_the_members_mean_propensity():
    rng = np.random.RandomState(1)
    n = 400
    X = rng.randn(n, 3)
    t = (rng.rand(n) < 1 / (1 + np.exp(-6 * X[:, 0]))).astype(float)  # poor overlap
    y = X[:, 1] + t + rng.randn(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = Dragonnet(n_members=4, max_epochs=60, patience=None, learning_rate=1e-2,
                        representation_layers=(16,), head_layers=(16,),
                        random_state=0).fit(X, y, treatment=t)
    c = est.propensity_clip
    raw = (est.predict_propensity(X) - c) / (1 - 2 * c)  # undo the affine squeeze
    expected = np.mean((raw < 0.01) | (raw > 0.99))
    assert 0 < expected < 1
    assert abs(est.overlap_share_ - expected) < 1e-9
