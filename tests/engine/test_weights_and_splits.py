"""The engine's row weights and splits against hand-computed values (found by mutation
testing): bootstrap counts multiply a caller's row weights, in the shared split as in
the members' own; a member's recorded validation loss is its mean over its own
validation rows; a small stratum still gets a validation row."""
import numpy as np
import torch

from causalnn.engine import Trainer, make_generator, stratified_split
from causalnn.nets import MemberLinear, init_weights

N = 90


def _fit(given, member_validation):
    seen = torch.zeros(2, N)

    def loss(module, batch):
        rows = batch["X"][:, 0].long()
        weight = batch["member_weight"]
        if module.training:
            seen[:, rows] = weight.detach()
        per_row = (module(batch["X"]).squeeze(-1) - batch["y"]) ** 2
        member_loss = (per_row * weight).mean(dim=-1)
        return {"loss": member_loss.sum(), "member_loss": member_loss}

    module = init_weights(MemberLinear(2, 1, 1), torch.Generator().manual_seed(0))
    trainer = Trainer(loss_fn=loss, n_members=2, bootstrap=True,
                      member_validation=member_validation, max_epochs=1, batch_size=N,
                      validation_fraction=0.3, patience=None, generator=make_generator(0))
    t = (np.arange(N) % 3 == 0).astype(float)
    trainer.fit(module, {"X": torch.arange(N, dtype=torch.float32)[:, None],
                         "y": torch.zeros(N)}, stratify=t,
                member_data={"member_weight": given})
    return trainer, seen


def test_bootstrap_counts_multiply_the_callers_row_weights():
    mask = torch.tensor([[float(i % 2) for i in range(N)],
                         [float(i % 2 == 0) for i in range(N)]])
    given = mask * (1 + torch.arange(N) % 4).float()  # weights 1..4 inside each fold
    for member_validation in ("shared", "own"):
        trainer, seen = _fit(given, member_validation)
        train_w = trainer.train_row_weight
        inside = given > 0
        counts = train_w[inside] / given[inside]
        # the counts are whole numbers of draws ...
        assert torch.equal(counts, counts.round()), member_validation
        # ... and the loss saw weights proportional to counts * given
        assert torch.equal(seen > 0, train_w > 0)
        torch.testing.assert_close(seen / seen.sum(1, keepdim=True),
                                   train_w / train_w.sum(1, keepdim=True))


def test_recorded_valid_member_loss_is_the_mean_over_the_members_validation_rows():
    def loss(module, batch):
        weight = batch.get("member_weight")
        per_row = (module(batch["X"]).squeeze(-1) - batch["y"]) ** 2
        member_loss = (per_row * weight).mean(dim=-1)
        return {"loss": member_loss.sum(), "member_loss": member_loss}

    folds = torch.tensor([[float(i % 2) for i in range(N)],
                          [float(i % 2 == 0) for i in range(N)]])
    module = init_weights(MemberLinear(2, 1, 1), torch.Generator().manual_seed(0))
    X = torch.linspace(-1, 1, N)[:, None]
    y = 3 * X[:, 0] + 1
    trainer = Trainer(loss_fn=loss, n_members=2, max_epochs=1, batch_size=N,
                      validation_fraction=0.3, patience=None,
                      generator=make_generator(0))
    t = (np.arange(N) % 3 == 0).astype(float)
    history = trainer.fit(module, {"X": X, "y": y}, stratify=t,
                          member_data={"member_weight": folds})
    with torch.no_grad():
        per_row = (module(X).squeeze(-1) - y) ** 2  # (2, N), the last epoch's weights
    vw = trainer.valid_row_weight
    expected = (per_row * vw).sum(dim=1) / vw.sum(dim=1)
    np.testing.assert_allclose(history[-1]["valid_member_loss"], expected.numpy(),
                               rtol=1e-5)


def test_a_small_arm_still_gets_one_validation_row():
    labels = np.r_[np.zeros(97), np.ones(3)]  # round(0.1 * 3) = 0 rows: at least 1
    train, valid = stratified_split(100, 0.1, make_generator(0), stratify=labels)
    assert (labels[valid.numpy()] == 1).sum() == 1
    assert (labels[train.numpy()] == 1).sum() == 2
    assert len(np.intersect1d(train.numpy(), valid.numpy())) == 0
