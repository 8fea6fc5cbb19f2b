"""The next epoch's batch order drawn ahead in a background thread (GPU fits): the same
numbers from the same generator as a draw made when the epoch begins, or none at all."""
import numpy as np
import pytest
import torch

from causalnn import TARNet
from causalnn.engine import Trainer
from causalnn.engine import trainer as trainer_module
from causalnn.engine.random import PermutationAhead


def _generator(seed=0):
    return torch.Generator().manual_seed(seed)


def test_taken_draw_is_the_draw_itself_and_moves_the_generator_on_as_it_would():
    direct, ahead_source = _generator(), _generator()
    expected = torch.randperm(1000, generator=direct)
    ahead = PermutationAhead(ahead_source, 1000, pin_memory=False)
    assert torch.equal(ahead_source.get_state(), _generator().get_state())  # only read
    assert torch.equal(ahead.take(ahead_source, 1000), expected)
    assert torch.equal(ahead_source.get_state(), direct.get_state())
    # the next draws agree too
    assert torch.equal(torch.randperm(50, generator=ahead_source),
                       torch.randperm(50, generator=direct))


def test_a_draw_from_the_generator_in_between_or_another_size_discards_it():
    generator = _generator()
    ahead = PermutationAhead(generator, 100, pin_memory=False)
    torch.rand(3, generator=generator)  # e.g. a loss sharing the generator
    state = generator.get_state()
    assert ahead.take(generator, 100) is None
    assert torch.equal(generator.get_state(), state)  # untouched by the discarded draw

    generator = _generator()
    ahead = PermutationAhead(generator, 100, pin_memory=False)
    assert ahead.take(generator, 99) is None
    assert torch.equal(generator.get_state(), _generator().get_state())


def test_a_discarded_draw_leaves_the_generator_as_it_was():
    generator = _generator()
    ahead = PermutationAhead(generator, 10_000, pin_memory=False)
    ahead.discard()
    assert not ahead._thread.is_alive()
    assert torch.equal(generator.get_state(), _generator().get_state())


def _draw_ahead_everywhere(monkeypatch):
    """Draw ahead on any device and for any number of rows (the tests' tables are
    small; on a GPU only tables of _DRAW_AHEAD_MIN_ROWS rows or more do)."""
    monkeypatch.setattr(trainer_module, "_DRAW_AHEAD_ON", {"cpu", "cuda"})
    monkeypatch.setattr(trainer_module, "_DRAW_AHEAD_MIN_ROWS", 0)


def _batch_orders(device, monkeypatch=None, shared_draws=False):
    """The rows of every training batch of a 4-epoch fit, as the loss saw them."""
    seen = []
    generator = _generator(3)
    weight = torch.nn.Linear(1, 1).to(device)

    def loss_fn(module, batch):
        seen.append(batch["row"].long().cpu().numpy())
        if shared_draws:  # a loss that draws from the trainer's own generator
            torch.rand(2, generator=generator)
        return {"loss": module(batch["row"][:, None]).pow(2).mean()}

    Trainer(loss_fn=loss_fn, batch_size=16, max_epochs=4, patience=None,
            validation_fraction=0.2, device=torch.device(device),
            generator=generator).fit(weight, {"row": torch.arange(100.0)})
    return np.concatenate(seen), generator.get_state()


@pytest.mark.parametrize("shared_draws", [False, True])
def test_fits_with_draws_ahead_see_the_batches_of_fits_without(monkeypatch, shared_draws):
    taken = []
    original = PermutationAhead.take

    def counting_take(self, generator, n):
        result = original(self, generator, n)
        taken.append(result is not None)
        return result

    without, state_without = _batch_orders("cpu", shared_draws=shared_draws)
    _draw_ahead_everywhere(monkeypatch)
    monkeypatch.setattr(PermutationAhead, "take", counting_take)
    with_ahead, state_with = _batch_orders("cpu", shared_draws=shared_draws)
    np.testing.assert_array_equal(with_ahead, without)
    assert torch.equal(state_with, state_without)  # no draw left over after the fit
    assert len(taken) == 3  # epochs 2 to 4 were offered the draw made ahead
    # taken when nothing else drew from the generator; refused when the loss did
    assert all(taken) if not shared_draws else not any(taken)


def test_an_estimators_fit_with_draws_ahead_is_the_same_to_the_bit(monkeypatch):
    rng = np.random.RandomState(0)
    X = rng.randn(200, 4)
    t = (rng.rand(200) < 0.5).astype(float)
    y = X[:, 0] + t + 0.1 * rng.randn(200)
    params = dict(max_epochs=4, batch_size=32, n_members=2, random_state=0, device="cpu")
    before = TARNet(**params).fit(X, y, treatment=t).effect(X)
    _draw_ahead_everywhere(monkeypatch)
    np.testing.assert_array_equal(TARNet(**params).fit(X, y, treatment=t).effect(X), before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_a_gpu_fit_sees_the_batches_of_a_cpu_fit(monkeypatch):
    monkeypatch.setattr(trainer_module, "_DRAW_AHEAD_MIN_ROWS", 0)
    cpu, cpu_state = _batch_orders("cpu")
    gpu, gpu_state = _batch_orders("cuda")  # draws ahead on a GPU
    np.testing.assert_array_equal(gpu, cpu)
    assert torch.equal(gpu_state, cpu_state)


def test_a_trainer_copied_mid_fit_leaves_the_draw_ahead_behind(monkeypatch):
    # e.g. a checkpointing callback: a thread cannot be copied; the copy draws as usual
    import copy
    from causalnn.engine import Callback
    _draw_ahead_everywhere(monkeypatch)
    copies = []

    class Checkpoint(Callback):
        def on_epoch_end(self, trainer, record):
            copies.append(copy.deepcopy(trainer))

    Trainer(loss_fn=lambda module, batch: {"loss": module(batch["x"]).pow(2).mean()},
            batch_size=8, max_epochs=2, patience=None, callbacks=[Checkpoint()],
            generator=_generator()).fit(torch.nn.Linear(1, 1), {"x": torch.randn(40, 1)})
    assert len(copies) == 2 and all(c._ahead is None for c in copies)
    # the copy's generator is its own, in the state the original's was in
    first, again = copies[0].generator, copy.deepcopy(copies[0]).generator
    assert isinstance(first, torch.Generator) and first is not copies[1].generator
    assert first is not again
    assert torch.equal(torch.randperm(40, generator=first),
                       torch.randperm(40, generator=again))


def test_an_interrupted_fit_waits_for_the_draw_it_was_taking(monkeypatch):
    # an interrupt while take() waits must leave the draw to fit's clean-up, which
    # joins its thread: no draw outlives its fit
    _draw_ahead_everywhere(monkeypatch)
    discarded, taking = [], []

    def interrupted_take(self, generator, n):
        taking.append(self)
        raise KeyboardInterrupt

    original_discard = PermutationAhead.discard

    def recording_discard(self):
        discarded.append(self)
        original_discard(self)

    monkeypatch.setattr(PermutationAhead, "take", interrupted_take)
    monkeypatch.setattr(PermutationAhead, "discard", recording_discard)
    with pytest.raises(KeyboardInterrupt):
        Trainer(loss_fn=lambda module, batch: {"loss": module(batch["x"]).pow(2).mean()},
                batch_size=8, max_epochs=3, patience=None, generator=_generator()).fit(
            torch.nn.Linear(1, 1), {"x": torch.randn(40, 1)})
    assert taking and taking[0] in discarded
    assert not taking[0]._thread.is_alive()


def test_small_tables_draw_as_usual(monkeypatch):
    monkeypatch.setattr(trainer_module, "_DRAW_AHEAD_ON", {"cpu", "cuda"})
    started = []
    monkeypatch.setattr(PermutationAhead, "__init__", lambda self, *a, **k: started.append(1))
    _batch_orders("cpu")  # 80 training rows: fewer than _DRAW_AHEAD_MIN_ROWS
    assert not started
