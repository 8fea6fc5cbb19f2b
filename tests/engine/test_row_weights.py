"""The trainer exposes each member's row weights: the rows (and bootstrap counts) that
its training and validation losses actually used, for steps after training that must
use the same rows (Dragonnet's targeting step)."""
import numpy as np
import pytest
import torch

from causalnn.engine import Trainer, make_generator
from causalnn.nets import MemberLinear, init_weights

N = 90


def _fit_and_record(n_members, member_validation="shared", bootstrap=False, given=None,
                    validation_fraction=0.3):
    """Fit one epoch with the whole split in one batch; return the trainer and, per
    member and row, the weight its training and validation losses saw."""
    seen = {True: torch.zeros(n_members or 1, N), False: torch.zeros(n_members or 1, N)}

    def loss(module, batch):
        rows = batch["X"][:, 0].long()
        weight = batch.get("member_weight")
        seen[module.training][:, rows] = (torch.ones(len(rows)) if weight is None
                                          else weight.detach())
        pred = module(batch["X"]).squeeze(-1)
        per_row = (pred - batch["y"]) ** 2
        member_loss = (per_row * (1.0 if weight is None else weight)).mean(dim=-1)
        if n_members is None:
            return {"loss": member_loss.mean()}
        return {"loss": member_loss.sum(), "member_loss": member_loss}

    module = init_weights(MemberLinear(n_members or 1, 1, 1),
                          torch.Generator().manual_seed(0))
    trainer = Trainer(loss_fn=loss, n_members=n_members, bootstrap=bootstrap,
                      member_validation=member_validation, max_epochs=1, batch_size=N,
                      validation_fraction=validation_fraction, patience=None,
                      generator=make_generator(0))
    t = (np.arange(N) % 3 == 0).astype(float)
    member_data = None if given is None else {"member_weight": given}
    trainer.fit(module, {"X": torch.arange(N, dtype=torch.float32)[:, None],
                         "y": torch.zeros(N)}, stratify=t, member_data=member_data)
    return trainer, seen[True], seen[False]


def _proportional(exposed, seen):
    """Same rows, same proportions: the engine scales each member's weights to mean 1
    over its split before the loss sees them."""
    assert torch.equal(exposed > 0, seen > 0)
    torch.testing.assert_close(exposed / exposed.sum(dim=1, keepdim=True),
                               seen / seen.sum(dim=1, keepdim=True))


FOLD_MASK = torch.tensor([[float(i % 2) for i in range(N)],
                          [float(i % 2 == 0) for i in range(N)]])


@pytest.mark.parametrize("n_members, member_validation, bootstrap, given", [
    (None, "shared", False, None), (3, "shared", False, None), (3, "shared", True, None),
    (3, "own", False, None), (3, "own", True, None), (2, "shared", True, FOLD_MASK),
    (2, "own", False, FOLD_MASK), (2, "own", True, FOLD_MASK)],
    ids=["one-model", "shared", "shared-bootstrap", "own", "own-bootstrap",
         "folds-bootstrap", "folds-own", "folds-own-bootstrap"])
def test_the_exposed_row_weights_are_those_the_losses_used(n_members, member_validation,
                                                           bootstrap, given):
    trainer, trained, validated = _fit_and_record(n_members, member_validation,
                                                  bootstrap, given)
    train_w, valid_w = trainer.train_row_weight, trainer.valid_row_weight
    assert train_w.shape == valid_w.shape == (n_members or 1, N)
    _proportional(train_w, trained)
    _proportional(valid_w, validated)
    assert not torch.any((train_w > 0) & (valid_w > 0))  # a member's rows: one role
    inside = torch.ones(n_members or 1, N) if given is None else given
    if bootstrap:  # counts: a resample of as many draws as the member's training rows
        assert torch.equal(train_w, train_w.round())
        on_training_rows = (inside > 0) & (valid_w == 0)
        torch.testing.assert_close(train_w.sum(dim=1),
                                   on_training_rows.sum(dim=1).float())
    else:  # training and validation rows together: every row inside the given weight
        torch.testing.assert_close(train_w + valid_w, inside)


def test_without_validation_every_row_is_a_training_row():
    trainer, _, _ = _fit_and_record(2, validation_fraction=0.0)
    assert torch.equal(trainer.train_row_weight, torch.ones(2, N))
    assert torch.equal(trainer.valid_row_weight, torch.zeros(2, N))
