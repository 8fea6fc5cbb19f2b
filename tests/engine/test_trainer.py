"""The training engine on problems with known answers."""
import warnings

import numpy as np
import pytest
import torch

from causalnn.engine import Callback, Trainer, make_generator, stratified_split
from causalnn.exceptions import ConvergenceWarning, StopTraining


def _linear_problem(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 3, generator=g)
    w = torch.tensor([1.0, -2.0, 0.5])
    return {"X": X, "y": X @ w + 0.01 * torch.randn(n, generator=g)}, w


def _mse(module, batch):
    return {"loss": (module(batch["X"]).squeeze(1) - batch["y"]).pow(2).mean()}


def test_fits_a_linear_model():
    data, w = _linear_problem()
    module = torch.nn.Linear(3, 1)
    trainer = Trainer(loss_fn=_mse, learning_rate=0.05, batch_size=32, max_epochs=200,
                      patience=20, generator=make_generator(0))
    history = trainer.fit(module, data)
    torch.testing.assert_close(module.weight.detach()[0], w, atol=0.02, rtol=0)
    assert history[-1]["epoch"] == len(history)


def test_early_stopping_restores_the_best_weights():
    data, _ = _linear_problem()
    snapshots = {}

    class Snapshot(Callback):
        def on_epoch_end(self, trainer, record):
            snapshots[record["epoch"]] = trainer.module.weight.detach().clone()

    module = torch.nn.Linear(3, 1)
    trainer = Trainer(loss_fn=_mse, learning_rate=0.5, batch_size=16, max_epochs=300,
                      patience=5, generator=make_generator(1), callbacks=[Snapshot()])
    history = trainer.fit(module, data)
    best = min(history, key=lambda r: r["valid_loss"])["epoch"]
    assert trainer.early_stopping.best_epoch == best
    assert len(history) < 300  # stopped early
    torch.testing.assert_close(module.weight.detach(), snapshots[best])


def test_callback_can_stop_training():
    data, _ = _linear_problem()

    class StopAtThree(Callback):
        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 3:
                raise StopTraining

    trainer = Trainer(loss_fn=_mse, max_epochs=50, patience=None,
                      generator=make_generator(0), callbacks=[StopAtThree()])
    assert len(trainer.fit(torch.nn.Linear(3, 1), data)) == 3


def test_every_row_is_used_once_per_epoch():
    data, _ = _linear_problem(n=103)
    data["row"] = torch.arange(103, dtype=torch.float32)
    seen = []

    def loss(module, batch):
        if module.training:
            seen.append(batch["row"].long())
        return _mse(module, batch)

    trainer = Trainer(loss_fn=loss, batch_size=10, max_epochs=1, patience=None,
                      validation_fraction=0.0, generator=make_generator(0))
    trainer.fit(torch.nn.Linear(3, 1), data)
    rows = torch.cat(seen)
    assert sorted(rows.tolist()) == list(range(103))
    assert min(len(b) for b in seen) >= 9  # near-equal batches, no tiny remainder


def test_stratified_split_keeps_both_arms_in_validation():
    labels = np.array([0] * 95 + [1] * 5)
    train, valid = stratified_split(100, 0.2, make_generator(0), stratify=labels)
    assert len(set(train.tolist()) & set(valid.tolist())) == 0
    assert len(train) + len(valid) == 100
    assert set(labels[valid.numpy()]) == {0, 1}


def test_max_epochs_without_early_stop_warns():
    data, _ = _linear_problem()
    trainer = Trainer(loss_fn=_mse, max_epochs=2, patience=50, generator=make_generator(0))
    with pytest.warns(ConvergenceWarning):
        trainer.fit(torch.nn.Linear(3, 1), data)


def test_verbose_prints_progress(capsys):
    data, _ = _linear_problem()
    Trainer(loss_fn=_mse, max_epochs=3, patience=None, verbose=2,
            generator=make_generator(0)).fit(torch.nn.Linear(3, 1), data)
    err = capsys.readouterr().err
    assert "epoch    3/3" in err and "train" in err and "valid" in err


def test_validation_loss_in_chunks_equals_the_full_mean():
    # 1500 validation rows are scored in two chunks; a row-wise loss must not notice
    data, _ = _linear_problem(n=3000)
    gen = make_generator(3)
    module = torch.nn.Linear(3, 1)
    trainer = Trainer(loss_fn=_mse, max_epochs=2, patience=None, batch_size=256,
                      validation_fraction=0.5, generator=gen)
    history = trainer.fit(module, data)
    _, valid = stratified_split(3000, 0.5, make_generator(3))
    with torch.no_grad():
        full = float(_mse(module, {k: v[valid] for k, v in data.items()})["loss"])
    assert history[-1]["valid_loss"] == pytest.approx(full, rel=1e-5)


def test_predict_in_batches_keeps_float64_and_upcasts_bfloat16():
    """float64 networks (DeepIV) must not be rounded to float32 on the way out; bfloat16
    outputs, which NumPy cannot hold, come back as float32."""
    from causalnn.engine import predict_in_batches
    x = torch.linspace(0, 1, 10, dtype=torch.float64) + 1e-12
    out = predict_in_batches(lambda v: v, [x], device=torch.device("cpu"), batch_size=3)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, x.numpy())
    half = predict_in_batches(lambda v: v.to(torch.bfloat16), [x], device=torch.device("cpu"))
    assert half.dtype == np.float32


def test_prediction_chunks_fit_the_device_and_change_predictions_by_round_off_only(monkeypatch):
    """A CPU predicts in cache-sized chunks (~2**19 activation floats), a GPU in large
    ones (~2**26), within [64, 2**20] rows. The chunk size moves a row's effect by
    float32 round-off at most (a product over another number of rows may add up in
    another order: up to 1.8e-7 for the default TARNet on 12,000 rows), never more."""
    from causalnn import TARNet
    from causalnn.engine import prediction_chunk_rows
    from causalnn.estimators.representation import _common
    assert prediction_chunk_rows(torch.device("cpu"), 200) == 2**19 // 200
    assert prediction_chunk_rows(torch.device("cuda"), 200) == 2**26 // 200
    assert prediction_chunk_rows("cpu", 10**9) == 64
    assert prediction_chunk_rows("cuda", 1) == 2**20
    rng = np.random.RandomState(0)
    X = rng.randn(700, 3)
    t = np.arange(700) % 2
    est = TARNet(representation_layers=(16,), head_layers=(8,), n_members=2, max_epochs=2,
                 batch_size=128, random_state=0, device="cpu").fit(X, X[:, 0] + t,
                                                                   treatment=t)
    chunks = []

    def rows(device, floats_per_row):
        chunks.append(rows.size)
        return rows.size
    monkeypatch.setattr(_common, "prediction_chunk_rows", rows)
    effects = {}
    for rows.size in (64, 300, 700):
        effects[rows.size] = est.effect(X, members=True)
    assert chunks == [64, 300, 700]
    # a chunk is sized by the wider of the members' activations and the input rows
    asked = []
    monkeypatch.setattr(_common, "prediction_chunk_rows",
                        lambda device, floats: asked.append(floats) or 64)
    est.effect(X)
    assert asked == [2 * 16]
    wide = TARNet(representation_layers=(16,), head_layers=(8,), max_epochs=1,
                  random_state=0, device="cpu").fit(np.tile(X, 100), X[:, 0] + t,
                                                    treatment=t)
    wide.effect(np.tile(X, 100))
    assert asked[-1] == 300
    scale = np.abs(effects[700]).max()
    for size in (64, 300):
        np.testing.assert_allclose(effects[size], effects[700], rtol=0,
                                   atol=1e-6 * scale)


class _HoldsAModule:
    module = torch.nn.Linear(1, 2)  # member-major: one output per member of two


def test_early_stopping_counts_only_improvements_larger_than_min_delta():
    """With min_delta=0.1, 1.0 -> 0.95 -> 0.94 are no improvements (best stays at
    epoch 1, two stale epochs stop a patience of 2); 1.0 -> 0.85 is one. The same rule
    holds per member when the score is a list."""
    from causalnn.engine import EarlyStopping
    trainer = _HoldsAModule()
    stop = EarlyStopping(patience=2, min_delta=0.1, load_best=False)
    stop.on_train_begin(trainer)
    stop.on_epoch_end(trainer, {"valid_loss": 1.0, "epoch": 1})
    stop.on_epoch_end(trainer, {"valid_loss": 0.95, "epoch": 2})
    with pytest.raises(StopTraining):
        stop.on_epoch_end(trainer, {"valid_loss": 0.94, "epoch": 3})
    assert stop.best_epoch == 1 and stop.best_score == 1.0
    stop = EarlyStopping(patience=5, min_delta=0.1, load_best=False)
    stop.on_train_begin(trainer)
    for epoch, score in enumerate([1.0, 0.95, 0.85, 0.8], start=1):
        stop.on_epoch_end(trainer, {"valid_loss": score, "epoch": epoch})
    assert stop.best_epoch == 3 and stop.best_score == 0.85
    members = EarlyStopping(patience=5, min_delta=0.1)
    members.on_train_begin(trainer)
    for epoch, scores in enumerate([[1.0, 1.0], [0.95, 0.85], [0.94, 0.84]], start=1):
        members.on_epoch_end(trainer, {"valid_loss": scores, "epoch": epoch})
    np.testing.assert_array_equal(members.best_epoch, [1, 2])


@pytest.mark.skipif(tuple(int(p) for p in torch.__version__.split(".")[:2]) < (2, 4),
                    reason="torch < 2.4 has no fused Adam for CPU tensors")
@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_fused_adam_on_the_cpu_moves_results_by_round_off_only(monkeypatch, optimizer):
    """The fused kernel (on the CPU since torch 2.4) runs the per-parameter update in
    another order of operations: the same fit to float32 round-off, and repeatable."""
    from causalnn import TARNet
    from causalnn.engine import trainer as trainer_module
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    t = (rng.random(300) < 0.5).astype(float)
    y = X[:, 0] + 2 * t + rng.normal(size=300)
    made = []
    original = Trainer._make_optimizer

    def spy(self, module):
        made.append(original(self, module))
        return made[-1]

    monkeypatch.setattr(Trainer, "_make_optimizer", spy)

    def fit(fused):
        monkeypatch.setattr(trainer_module, "_FUSED_ADAM_ON_CPU", fused)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est = TARNet(representation_layers=(32,), head_layers=(16,), max_epochs=15,
                         patience=None, optimizer=optimizer, random_state=0,
                         device="cpu").fit(X, y, treatment=t)
        assert [bool(group["fused"]) for group in made[-1].param_groups] == [fused] * 2
        return est.effect(X)

    per_parameter, fused, again = fit(False), fit(True), fit(True)
    np.testing.assert_array_equal(fused, again)
    assert not np.array_equal(fused, per_parameter)  # the fused kernel did run
    np.testing.assert_allclose(fused, per_parameter, rtol=1e-4, atol=1e-4)
