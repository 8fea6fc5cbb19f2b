"""Trainer(compact_members=True): members that have stopped leave the batched fit.

The members still training must compute what they would have computed beside the
stopped ones (up to the round-off of batched products whose blocking depends on the
member count), every member must end with its own best weights, and the module, the
history and the estimators' fitted state must look as they do without compaction.
"""
import warnings

import numpy as np
import pytest
import torch

from causalnn import CFRNet, Dragonnet, TARNet
from causalnn.engine import Callback, Trainer, make_generator
from causalnn.estimators.representation._common import RepresentationEstimator
from causalnn.nets import MLP, init_weights


def _member_mse(module, batch):
    pred = module(batch["X"]).squeeze(-1)  # (M, batch)
    member_loss = (pred - batch["y"]).pow(2).mean(dim=1)
    return {"loss": member_loss.sum(), "member_loss": member_loss,
            "scale": pred.abs().mean(dim=1)}  # a term logged per member


def _data():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(240, 4, generator=g)
    signal = torch.sin(2 * X[:, 0]) + X[:, 1] * X[:, 2]
    # four datasets whose noise differs by a factor 30: their members stall at very
    # different epochs
    noise = torch.tensor([0.05, 0.3, 1.0, 1.5])[:, None]
    return X, signal + noise * torch.randn(4, 240, generator=g)


def _fit(compact, callbacks=()):
    X, Y = _data()
    module = init_weights(MLP(4, (16, 16), out_features=1, n_members=4),
                          torch.Generator().manual_seed(0))
    trainer = Trainer(loss_fn=_member_mse, learning_rate=0.01, batch_size=32,
                      max_epochs=150, patience=5, generator=make_generator(1),
                      n_members=4, compact_members=compact, callbacks=callbacks)
    history = trainer.fit(module, {"X": X}, member_data={"y": Y})
    return module, trainer, history


def test_members_that_stop_leave_and_the_rest_train_as_before():
    held = []

    class Held(Callback):
        def on_epoch_end(self, trainer, record):
            held.append((len(trainer.active_members),
                         trainer.module[0].weight.shape[0]))

    whole, whole_trainer, whole_history = _fit(False)
    module, trainer, history = _fit(True, [Held()])
    stops = np.asarray(trainer.early_stopping.best_epoch) + 5
    assert len(set(stops.tolist())) > 1, "the design: members stop at different epochs"
    np.testing.assert_array_equal(trainer.early_stopping.best_epoch,
                                  whole_trainer.early_stopping.best_epoch)
    assert len(history) == len(whole_history)
    # members left: the module held fewer of them, its layers' member axis with it
    assert min(h for h, _ in held) < 4 and all(h == w for h, w in held)
    # whole again afterwards, every member with its own best weights
    assert trainer.active_members.tolist() == [0, 1, 2, 3]
    assert all(getattr(m, "n_members", 4) == 4 for m in module.modules())
    for (name, p), q in zip(module.named_parameters(), whole.parameters()):
        assert p.shape == q.shape, name
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)
    assert all(p.grad is None for p in module.parameters())


def test_a_member_that_left_records_nan_and_means_are_over_the_rest():
    _, trainer, history = _fit(True)
    _, _, whole_history = _fit(False)
    stops = np.asarray(trainer.early_stopping.best_epoch) + 5
    for record, whole in zip(history, whole_history):
        epoch = record["epoch"]
        gone = stops < epoch  # left at the end of their last epoch
        for key in ("train_member_loss", "valid_member_loss", "train_member_scale"):
            values = np.asarray(record[key])
            assert np.isnan(values[gone]).all() and np.isfinite(values[~gone]).all()
            np.testing.assert_allclose(values[~gone], np.asarray(whole[key])[~gone],
                                       rtol=1e-4)
        assert record["valid_loss"] == pytest.approx(
            np.mean(np.asarray(record["valid_member_loss"])[~gone]))
        assert record["train_scale"] == pytest.approx(
            np.mean(np.asarray(record["train_member_scale"])[~gone]), rel=1e-6)


def test_the_optimizer_state_leaves_with_its_member():
    """Adam's moments are sliced with the weights: a member still training takes the
    same steps as beside all (its weights track the uncompacted fit's epoch by epoch)."""
    snapshots = {True: [], False: []}

    def snapshot(compact):
        class Snap(Callback):
            def on_epoch_end(self, trainer, record):
                # member 3 is the noisiest: it is still training when others left
                rows = trainer.module[0].weight.detach()
                at = int(np.searchsorted(trainer.active_members, 3))
                if at < len(trainer.active_members) and trainer.active_members[at] == 3:
                    snapshots[compact].append(rows[at].clone())
        return Snap()

    _fit(False, [snapshot(False)])
    _, trainer, _ = _fit(True, [snapshot(True)])
    n = len(snapshots[True])
    assert n > 1
    for a, b in zip(snapshots[True], snapshots[False][:n]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_sgd_momentum_and_no_validation_split_compact_too():
    X, Y = _data()
    results = {}
    for compact in (False, True):
        module = init_weights(MLP(4, (8,), out_features=1, n_members=4),
                              torch.Generator().manual_seed(0))
        trainer = Trainer(loss_fn=_member_mse, optimizer="sgd", learning_rate=0.01,
                          batch_size=32, max_epochs=60, patience=3,
                          validation_fraction=0.0, generator=make_generator(2),
                          n_members=4, compact_members=compact)
        trainer.fit(module, {"X": X}, member_data={"y": Y})
        results[compact] = [p.detach().clone() for p in module.parameters()]
    for a, b in zip(results[True], results[False]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_compile_keeps_every_member():
    trainer = Trainer(loss_fn=_member_mse, n_members=2, compact_members=True,
                      compile=True)
    assert trainer.compile  # documented: ignored there (a new shape compiles anew)


def _simulation(n=400, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, 5)
    t = (rng.rand(n) < 1 / (1 + np.exp(-X[:, 0]))).astype(float)
    y = X[:, 1] + t * (1 + X[:, 2]) + 0.5 * rng.randn(n)
    return X, y, t


@pytest.mark.parametrize("make", [
    lambda: TARNet(n_members=4, bootstrap=True),
    lambda: CFRNet(ipm="mmd_rbf", n_members=3, member_validation="own"),
    lambda: Dragonnet(n_members=3),
], ids=["tarnet-bootstrap", "cfr-own-validation", "dragonnet"])
def test_estimators_compact_and_give_the_effects_of_the_whole_fit(make, monkeypatch):
    X, y, t = _simulation()
    small = dict(representation_layers=(16, 16), head_layers=(8,), max_epochs=80,
                 patience=4, batch_size=64, random_state=0, device="cpu")
    fits = {}
    for compact in (False, True):
        monkeypatch.setattr(RepresentationEstimator, "_compact_members", compact)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits[compact] = make().set_params(**small).fit(X, y, treatment=t)
    whole, compacted = fits[False], fits[True]
    np.testing.assert_array_equal(compacted.best_epoch_, whole.best_epoch_)
    assert np.isnan(compacted.history_[-1]["valid_member_loss"]).any()
    assert not np.isnan(whole.history_[-1]["valid_member_loss"]).any()
    np.testing.assert_allclose(compacted.effect(X, members=True),
                               whole.effect(X, members=True), rtol=1e-4, atol=1e-5)
    assert compacted.module_["net"].n_members == whole.n_members_
    if isinstance(whole, Dragonnet):
        np.testing.assert_allclose(compacted.epsilon_, whole.epsilon_, atol=1e-6)


def test_fit_many_histories_average_over_the_members_still_training():
    X, y, t = _simulation()
    Y = np.stack([y, y + 3 * np.random.RandomState(1).randn(len(y))])
    est = TARNet(n_members=2, representation_layers=(16,), head_layers=(8,),
                 max_epochs=80, patience=3, random_state=0, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = est.fit_many(X, Y, treatment=t)
    for fit in fits:
        for record in fit.history_:
            values = np.asarray(record["valid_member_loss"])
            if np.isnan(values).all():
                assert np.isnan(record["valid_loss"])
            else:
                assert record["valid_loss"] == pytest.approx(np.nanmean(values))


def test_the_module_is_whole_again_after_an_error_mid_fit():
    """The restore runs in a ``finally``: a fit that diverges (or is interrupted) after
    members left still leaves a module of every member, not a sliced one."""
    from causalnn.exceptions import TrainingDivergedError
    X, Y = _data()
    calls = {"epochs_seen": 0}

    class Diverge(Callback):
        def on_epoch_end(self, trainer, record):
            if len(trainer.active_members) < 4:
                calls["epochs_seen"] += 1

    def loss(module, batch):
        losses = _member_mse(module, batch)
        if calls["epochs_seen"] >= 2:  # two epochs after the first member left
            losses["loss"] = losses["loss"] * float("nan")
        return losses

    module = init_weights(MLP(4, (16, 16), out_features=1, n_members=4),
                          torch.Generator().manual_seed(0))
    trainer = Trainer(loss_fn=loss, learning_rate=0.01, batch_size=32, max_epochs=150,
                      patience=5, generator=make_generator(1), n_members=4,
                      compact_members=True, callbacks=[Diverge()])
    with pytest.raises(TrainingDivergedError):
        trainer.fit(module, {"X": X}, member_data={"y": Y})
    assert calls["epochs_seen"] >= 2
    assert module[0].weight.shape[0] == 4 and module[0].n_members == 4
    assert trainer.active_members.tolist() == [0, 1, 2, 3]
    assert torch.isfinite(module(X)).all()  # every member's best weights, restored


def test_a_buffer_outside_the_state_is_not_sliced():
    """A non-persistent buffer is no member state (e.g. column indices shared by every
    member, as causalnn.nets.vae.ProxyDecoder keeps): slicing it as members left cut
    it down and broke the forward pass."""
    class Columns(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mlp = MLP(4, (16,), out_features=1, n_members=4)
            self.register_buffer("columns", torch.tensor([0, 1, 2, 3]), persistent=False)

        def forward(self, x):
            return self.mlp(x[:, self.columns])

    X, Y = _data()
    fitted = []
    for compact in (False, True):
        module = init_weights(Columns(), torch.Generator().manual_seed(0))
        trainer = Trainer(loss_fn=_member_mse, learning_rate=0.01, batch_size=32,
                          max_epochs=150, patience=5, generator=make_generator(1),
                          n_members=4, compact_members=compact)
        trainer.fit(module, {"X": X}, member_data={"y": Y})
        assert module.columns.tolist() == [0, 1, 2, 3]
        fitted.append(module(X).detach())
    torch.testing.assert_close(fitted[1], fitted[0], rtol=1e-4, atol=1e-6)
