"""The member axis of the engine: independent models trained as one computation."""
import numpy as np
import pytest
import torch

from causalnn.engine import (Callback, Trainer, bootstrap_counts, float32_term,
                             make_generator, member_mean, per_member, select_members,
                             stratified_split)
from causalnn.losses import mmd_linear, mmd_rbf, wasserstein
from causalnn.losses.subbatch import balanced_subbatch
from causalnn.nets import MLP, MemberLinear, RepresentationNet, init_weights


def test_member_linear_is_independent_linear_maps():
    layer = init_weights(MemberLinear(3, 4, 2), torch.Generator().manual_seed(0))
    layer.bias.data.normal_(generator=torch.Generator().manual_seed(1))
    x = torch.randn(5, 4)
    shared = layer(x)
    stacked = layer(x.expand(3, 5, 4))
    bias = layer.bias.view(3, 2)
    for m in range(3):
        expected = x @ layer.weight[m] + bias[m]
        torch.testing.assert_close(shared[m], expected)
        torch.testing.assert_close(stacked[m], expected)


def test_members_get_their_own_initial_weights():
    net = init_weights(MLP(4, (8,), out_features=1, n_members=3),
                       torch.Generator().manual_seed(0))
    weights = net[0].weight
    assert not torch.equal(weights[0], weights[1])


def _member_mse(module, batch):
    pred = module(batch["X"]).squeeze(-1)            # (M, batch)
    member_loss = (pred - batch["y"]).pow(2).mean(dim=1)
    return {"loss": member_loss.sum(), "member_loss": member_loss}


def test_members_fit_their_own_datasets_without_mixing():
    """Three linear models, each with its own outcomes (member_data), trained as one."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(300, 3, generator=g)
    w = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, 1.0], [-1.0, -1.0, -1.0]])
    Y = (w @ X.T) + 0.01 * torch.randn(3, 300, generator=g)
    module = init_weights(MemberLinear(3, 3, 1), torch.Generator().manual_seed(0))
    trainer = Trainer(loss_fn=_member_mse, learning_rate=0.05, batch_size=32,
                      max_epochs=200, patience=20, generator=make_generator(0), n_members=3)
    history = trainer.fit(module, {"X": X}, member_data={"y": Y})
    torch.testing.assert_close(module.weight.detach()[:, :, 0], w, atol=0.03, rtol=0)
    assert len(history[0]["valid_member_loss"]) == 3
    assert history[0]["valid_loss"] == pytest.approx(np.mean(history[0]["valid_member_loss"]))


def test_each_member_keeps_its_own_best_epoch_and_weights():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(200, 3, generator=g)
    Y = torch.stack([X @ torch.tensor([1.0, -2.0, 0.5])] * 2) + torch.randn(2, 200,
                                                                             generator=g)
    snapshots = {}

    class Snapshot(Callback):
        def on_epoch_end(self, trainer, record):
            snapshots[record["epoch"]] = trainer.module.weight.detach().clone()

    module = init_weights(MemberLinear(2, 3, 1), torch.Generator().manual_seed(0))
    # two members, very different step sizes through different initial scales: the
    # large learning rate makes the validation loss noisy, so best epochs differ
    trainer = Trainer(loss_fn=_member_mse, learning_rate=0.3, batch_size=8,
                      max_epochs=60, patience=6, generator=make_generator(3), n_members=2,
                      callbacks=[Snapshot()])
    history = trainer.fit(module, {"X": X}, member_data={"y": Y})
    scores = np.array([r["valid_member_loss"] for r in history])
    best = scores.argmin(axis=0) + 1
    np.testing.assert_array_equal(trainer.early_stopping.best_epoch, best)
    for m in range(2):
        torch.testing.assert_close(module.weight.detach()[m], snapshots[best[m]][m])
    # training stops only when every member has stalled for `patience` epochs
    assert len(history) == best.max() + 6 or len(history) == 60


def test_member_loss_is_required_with_n_members():
    trainer = Trainer(loss_fn=lambda m, b: {"loss": m(b["X"]).sum()}, max_epochs=1,
                      n_members=2, generator=make_generator(0))
    with pytest.raises(ValueError, match="member_loss"):
        trainer.fit(MemberLinear(2, 3, 1), {"X": torch.randn(20, 3)})


def test_member_data_shape_is_checked():
    trainer = Trainer(loss_fn=_member_mse, n_members=2, generator=make_generator(0))
    with pytest.raises(ValueError, match="member_data"):
        trainer.fit(MemberLinear(2, 3, 1), {"X": torch.randn(20, 3)},
                    member_data={"y": torch.randn(3, 20)})


def test_bootstrap_counts_resample_each_member():
    counts = bootstrap_counts(4, 50, torch.Generator().manual_seed(0), "cpu")
    assert counts.shape == (4, 50)
    np.testing.assert_array_equal(counts.sum(dim=1).numpy(), 50)
    assert not torch.equal(counts[0], counts[1])
    # about 1 - 1/e of the rows are drawn at least once
    assert 0.5 < float((counts > 0).float().mean()) < 0.75


def test_bootstrap_resamples_within_each_arm():
    """With strata (the treatment arms) every member draws exactly each arm's size from
    that arm: with 3 treated rows in 60, an unstratified resample leaves a member
    without a treated row with probability (1 - 3/60)^60 = 4.6%, and that member's
    treated head would train on nothing while its effects enter the ensemble."""
    t = np.zeros(60)
    t[:3] = 1
    counts = bootstrap_counts(200, 60, torch.Generator().manual_seed(0), "cpu", strata=t)
    np.testing.assert_array_equal(counts[:, :3].sum(dim=1).numpy(), 3)
    np.testing.assert_array_equal(counts[:, 3:].sum(dim=1).numpy(), 57)
    assert not torch.equal(counts[0], counts[1])
    plain = bootstrap_counts(200, 60, torch.Generator().manual_seed(0), "cpu")
    assert (plain[:, :3].sum(dim=1) == 0).any()  # what stratifying prevents
    # within a member's own rows (a mask) and arms together
    rows = torch.ones(200, 60)
    rows[:, 1] = 0
    counts = bootstrap_counts(200, 60, torch.Generator().manual_seed(0), "cpu",
                              rows=rows, strata=t)
    assert float(counts[:, 1].sum()) == 0.0
    np.testing.assert_array_equal(counts[:, :3].sum(dim=1).numpy(), 2)


@pytest.mark.parametrize("member_validation", ["shared", "own"])
def test_the_trainer_resamples_within_the_stratify_arms(member_validation):
    """Trainer(bootstrap=True).fit(..., stratify=t) hands the arms to the resample: every
    member's training weights hold each arm's size of that arm (the estimators pass
    their treatment as stratify)."""
    n = 80
    t = np.zeros(n)
    t[::20] = 1  # 4 treated rows
    seen = []

    def loss(module, batch):
        if module.training:
            seen.append((batch["X"][:, 0].long(), batch["member_weight"].detach().clone()))
        return _member_mse(module, {**batch, "y": batch["y"].expand(50, -1)})

    module = init_weights(MemberLinear(50, 1, 1), torch.Generator().manual_seed(0))
    trainer = Trainer(loss_fn=loss, n_members=50, bootstrap=True, max_epochs=1,
                      batch_size=n, validation_fraction=0.25, patience=None,
                      member_validation=member_validation, generator=make_generator(0))
    X = torch.arange(n, dtype=torch.float32)[:, None]
    trainer.fit(module, {"X": X, "y": torch.zeros(n)}, stratify=t)
    rows, weight = seen[0]  # the first training batch: every training row
    treated = torch.from_numpy(t[rows.numpy()] == 1)
    # 3 of the 4 treated rows and 57 of the 76 controls train (a quarter of each arm
    # is held out): every member's resample holds exactly 3 draws of treated rows
    share = weight[:, treated].sum(dim=1) / weight.sum(dim=1)
    torch.testing.assert_close(share, torch.full((50,), 3 / 60))


def test_select_members_keeps_those_members():
    net = init_weights(RepresentationNet(4, (8,), (6,), n_members=5, propensity_head=True),
                       torch.Generator().manual_seed(0))
    x = torch.randn(7, 4)
    picked = select_members(net, [3, 1], 5)
    assert picked.n_members == 2
    full, part = net(x), picked(x)
    torch.testing.assert_close(part.outcome, full.outcome[[3, 1]])
    torch.testing.assert_close(part.propensity_logit, full.propensity_logit[[3, 1]])


@pytest.mark.parametrize("ipm", [mmd_linear, wasserstein, mmd_rbf],
                         ids=lambda f: f.__name__)
def test_per_member_ipm_equals_one_member_at_a_time(ipm):
    g = torch.Generator().manual_seed(0)
    phi = torch.randn(3, 40, 5, generator=g)
    t = (torch.rand(40, generator=g) < 0.4).float()
    expected = torch.stack([ipm(p, t) for p in phi])
    torch.testing.assert_close(per_member(ipm, phi, t), expected, rtol=1e-5, atol=1e-6)
    # each member with its own row weights
    weight = (torch.rand(3, 40, generator=g) < 0.7).float() * 2.0
    expected = torch.stack([ipm(p, t, w) for p, w in zip(phi, weight)])
    torch.testing.assert_close(per_member(ipm, phi, t, member_args=(weight,)), expected,
                               rtol=1e-5, atol=1e-6)


def test_balanced_subbatch_has_fixed_size_and_both_arms():
    t = torch.tensor([1.0] * 90 + [0.0] * 10)
    phi = torch.arange(100.0).view(1, 100, 1).expand(2, 100, 1)
    weight = torch.arange(200.0).view(2, 100)
    sub_phi, sub_t, sub_weight = balanced_subbatch(phi, t, 40, weight)
    assert sub_phi.shape == (2, 40, 1) and sub_t.shape == (40,)
    # each member's weights follow the rows they belong to; the repeats of the short
    # control arm are weighted 0
    first = torch.tensor([1.0] * 10 + [0.0] * 10 + [1.0] * 20)
    assert torch.equal(sub_weight, weight.gather(1, sub_phi[..., 0].long()) * first)
    assert float(sub_t.sum()) == 20
    # the control half cycles through the 10 control rows; values match their rows
    assert set(sub_phi[0, sub_t == 0, 0].tolist()) == set(range(90, 100))
    assert torch.equal(t[sub_phi[0, :, 0].long()], sub_t)
    _, _, ones = balanced_subbatch(phi, t, 40)
    assert torch.equal(ones, first.expand(2, 40))
    one_arm, t_one, _ = balanced_subbatch(phi, torch.ones(100), 40)
    assert float(mmd_linear(one_arm[0], t_one)) == 0.0
    small_phi, small_t, no_weight = balanced_subbatch(phi[:, :30], t[:30], 40)
    assert no_weight is None
    assert small_phi.shape[1] == 30  # unchanged when the batch is small


@pytest.mark.parametrize("ipm", [mmd_linear, mmd_rbf])
def test_a_short_arm_in_the_subbatch_adds_no_self_pairs(ipm):
    """An arm with fewer rows than half the sub-batch is repeated to keep shapes fixed;
    with the repeats weighted 0 the MMD is that of the distinct rows, not a
    V-statistic biased by each row paired with its copy."""
    g = torch.Generator().manual_seed(0)
    phi = torch.randn(200, 3, generator=g)
    t = torch.zeros(200)
    t[:7] = 1.0  # 7 treated rows, sub-batch halves of 32
    sub_phi, sub_t, sub_weight = balanced_subbatch(phi, t, 64)
    order = torch.argsort(t, stable=True)
    rows = torch.cat([order[:32], order[193:]])  # the first 32 controls, the 7 treated
    kw = {"bandwidth": 1.0} if ipm is mmd_rbf else {}
    torch.testing.assert_close(ipm(sub_phi, sub_t, sub_weight, **kw),
                               ipm(phi[rows], t[rows], **kw))


def test_validation_penalty_does_not_depend_on_row_order():
    """The validation split is shuffled before chunking: with rows sorted by treatment
    a chunk would otherwise hold one arm and its IPM would be zero."""
    g = torch.Generator().manual_seed(0)
    n = 6000
    t = (torch.rand(n, generator=g) < 0.5).float()
    X = torch.randn(n, 2, generator=g) + t[:, None]  # arms differ by 1 in each column

    def loss(module, batch):
        # the IPM of the (fixed) inputs; the trained scalar only gives a gradient
        return {"loss": (module.weight * batch["X"]).pow(2).mean(),
                "ipm": mmd_linear(batch["X"], batch["t"])}

    def valid_ipm(order):
        module = torch.nn.Linear(1, 1)
        trainer = Trainer(loss_fn=loss, max_epochs=1, patience=None, batch_size=256,
                          validation_fraction=0.5, generator=make_generator(0))
        return trainer.fit(module, {"X": X[order], "t": t[order]})[0]["valid_ipm"]

    sorted_rows = torch.argsort(t, stable=True)
    shuffled = torch.randperm(n, generator=g)
    assert valid_ipm(sorted_rows) == pytest.approx(valid_ipm(shuffled), rel=0.15)
    assert valid_ipm(sorted_rows) == pytest.approx(2.0, rel=0.15)


def _weighted_member_mse(module, batch):
    pred = module(batch["X"]).squeeze(-1)            # (M, batch)
    member_loss = member_mean((pred - batch["y"]).pow(2), batch)
    return {"loss": member_loss.sum(), "member_loss": member_loss}


def test_own_validation_rows_are_never_trained_on_and_are_what_each_member_monitors():
    """member_validation="own": member m fits a constant to its own training rows only,
    and its validation loss is the mean over its own validation rows."""
    n, n_members = 200, 3
    # the trainer's first draws are the members' splits, in member order
    g = make_generator(0)
    held_out = [stratified_split(n, 0.3, g)[1] for _ in range(n_members)]
    assert not torch.equal(held_out[0], held_out[1])
    y = torch.zeros(n)
    y[held_out[0]] = 100.0                    # only member 0 never trains on these rows
    module = init_weights(MemberLinear(n_members, 1, 1), torch.Generator().manual_seed(0))
    weights = {}

    class Snapshot(Callback):
        def on_epoch_end(self, trainer, record):
            weights[record["epoch"]] = (trainer.module.weight.detach().clone(),
                                        trainer.module.bias.detach().clone())

    trainer = Trainer(loss_fn=_weighted_member_mse, learning_rate=0.5, batch_size=50,
                      max_epochs=150, patience=None, validation_fraction=0.3,
                      generator=make_generator(0), n_members=n_members,
                      member_validation="own", callbacks=[Snapshot()])
    history = trainer.fit(module, {"X": torch.ones(n, 1)},
                          member_data={"y": y.expand(n_members, n).clone()})
    fitted = (module.weight.detach().squeeze() + module.bias.detach()).numpy()
    for m in range(n_members):
        train_rows = np.setdiff1d(np.arange(n), held_out[m].numpy())
        assert fitted[m] == pytest.approx(y[train_rows].mean().item(), abs=0.5)
    assert abs(fitted[0]) < 0.5 and fitted[1] > 10 and fitted[2] > 10
    # the logged validation loss of member m at an epoch: its weights then, its rows
    w, b = weights[5]
    for m in range(n_members):
        pred = (w[m].squeeze() + b[m]).item()
        expected = ((pred - y[held_out[m]]) ** 2).mean().item()
        assert history[4]["valid_member_loss"][m] == pytest.approx(expected, rel=1e-4)


def test_member_validation_is_checked():
    with pytest.raises(ValueError, match="member_validation"):
        Trainer(loss_fn=_member_mse, n_members=2, member_validation="each")


def test_own_splits_with_bootstrap_resample_each_members_training_rows():
    n = 100
    trainer = Trainer(loss_fn=_member_mse, n_members=4, bootstrap=True,
                      validation_fraction=0.3, generator=make_generator(1),
                      member_validation="own")
    X = torch.arange(n, dtype=torch.float32)[:, None]
    train, valid = trainer._own_splits(n, lambda idx: ({"X": X}, {}, idx), None)
    counts, valid_weight = train[1]["member_weight"], valid[1]["member_weight"]
    assert torch.equal(train[2], valid[2])                     # all rows, one order
    assert not torch.any((counts > 0) & (valid_weight > 0))    # never both for a member
    np.testing.assert_array_equal(counts.sum(dim=1).numpy(), 70)  # n minus 30 held out
    np.testing.assert_allclose(valid_weight.mean(dim=1).numpy(), 1.0, rtol=1e-6)
    assert not torch.equal(valid_weight[0] > 0, valid_weight[1] > 0)


def test_a_member_out_of_patience_takes_no_new_best():
    """Member 0 stalls for `patience` epochs, then (while member 1 still trains) scores
    its lowest loss: a lone fit would have stopped before that epoch, so its best epoch
    and weights stay those of the lone fit. Cross-fitting relies on it: the other
    members train on member 0's held-out fold, so how long they run depends on it."""
    from causalnn.engine import EarlyStopping
    from causalnn.exceptions import StopTraining

    class _Trainer:
        module = MemberLinear(2, 1, 1)

    trainer = _Trainer()
    stopper = EarlyStopping(monitor="valid_member_loss", patience=2)
    stopper.on_train_begin(trainer)
    scores = [(1.0, 5.0), (2.0, 4.0), (2.0, 3.0), (0.5, 2.0), (0.4, 1.9), (0.3, 1.8)]
    weights_at = {}
    stopped_at = None
    for epoch, score in enumerate(scores, start=1):
        with torch.no_grad():
            trainer.module.weight.fill_(float(epoch))
        weights_at[epoch] = trainer.module.weight.detach().clone()
        try:
            stopper.on_epoch_end(trainer, {"epoch": epoch, "valid_member_loss": list(score)})
        except StopTraining:
            stopped_at = epoch
            break
    stopper.on_train_end(trainer)
    # member 0 ran out of patience after epoch 3; epochs 4-6 do not count for it
    np.testing.assert_array_equal(stopper.best_epoch, [1, 6])
    assert stopped_at is None
    torch.testing.assert_close(trainer.module.weight.detach()[0], weights_at[1][0])
    torch.testing.assert_close(trainer.module.weight.detach()[1], weights_at[6][1])


def test_bootstrap_on_a_shared_split_keeps_the_callers_row_weights():
    """bootstrap=True with member_data["member_weight"] (e.g. cross-fitting masks):
    the resample counts multiply the given weights, as with own splits, instead of
    replacing them (which trained members on rows their mask excludes)."""
    n = 60
    seen = []

    def loss(module, batch):
        seen.append((batch["X"][:, 0].long(), batch["member_weight"].detach().clone()))
        return _member_mse(module, {**batch, "y": batch["y"].expand(2, -1)})

    mask = torch.ones(2, n)
    mask[0, :20] = 0.0  # member 0 must never train on rows 0-19
    module = init_weights(MemberLinear(2, 1, 1), torch.Generator().manual_seed(0))
    trainer = Trainer(loss_fn=loss, n_members=2, bootstrap=True, max_epochs=1,
                      batch_size=n, validation_fraction=0.0, patience=None,
                      generator=make_generator(0))
    X = torch.arange(n, dtype=torch.float32)[:, None]
    trainer.fit(module, {"X": X, "y": torch.zeros(n)}, member_data={"member_weight": mask})
    rows, weight = seen[0]
    assert float(weight[0][rows < 20].sum()) == 0.0
    assert float(weight[1][rows < 20].sum()) > 0.0  # member 1 resamples all rows


def test_a_members_row_weights_act_through_their_proportions_only():
    """Row weights (a fold mask, an own validation split) are scaled to mean 1 per
    member, so their overall scale cannot change the fit: with weight decay, a loss
    shrunk by the mask's fraction would otherwise meet a decay of full size (a more
    regularised model than configured, e.g. 1.5x the decay for a cv=3 fold model)."""
    from causalnn.engine import member_mean

    def loss(module, batch):
        pred = module(batch["X"]).squeeze(-1)
        member_loss = member_mean((pred - batch["y"]).pow(2), batch)
        return {"loss": member_loss.sum(), "member_loss": member_loss}

    g = torch.Generator().manual_seed(2)
    X = torch.randn(120, 3, generator=g)
    y = X @ torch.tensor([1.0, -1.0, 0.5]) + 0.3 * torch.randn(120, generator=g)
    mask = (torch.rand(2, 120, generator=g) < 0.6).float()
    weights = []
    for scale in (1.0, 3.0):
        module = init_weights(MemberLinear(2, 3, 1), torch.Generator().manual_seed(0))
        Trainer(loss_fn=loss, n_members=2, weight_decay=0.1, learning_rate=0.05,
                batch_size=32, max_epochs=15, patience=None, validation_fraction=0.2,
                generator=make_generator(0)).fit(
            module, {"X": X, "y": y}, member_data={"member_weight": scale * mask})
        weights.append(module.weight.detach().clone())
    torch.testing.assert_close(weights[0], weights[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("stratify, match", [
    (np.linspace(0, 1, 40), "distinct values"),
    (np.r_[np.zeros(39), np.nan], "NaN or infinite"),
    (np.zeros(39), r"shape \(40,\)")])
def test_the_trainer_refuses_strata_that_are_not_labels(stratify, match):
    """Continuous values would make every row its own stratum: no validation rows, and
    every bootstrap count 1 (an ensemble of identical resamples); a NaN label would
    put its row in no stratum."""
    trainer = Trainer(loss_fn=_member_mse, n_members=2, bootstrap=True, max_epochs=1,
                      generator=make_generator(0))
    with pytest.raises(ValueError, match=match):
        trainer.fit(MemberLinear(2, 1, 1), {"X": torch.randn(40, 1), "y": torch.zeros(40)},
                    stratify=stratify)


def test_a_term_given_per_member_is_logged_per_member_and_as_their_mean():
    """A named term of shape (n_members,) gets ``train_member_<term>`` (each member's
    row-weighted epoch mean) beside ``train_<term>`` (their mean); a scalar term stays
    a scalar."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(90, 2, generator=g)
    Y = torch.stack([X[:, 0], 10 * X[:, 1]])

    def loss(module, batch):
        residual = (module(batch["X"]).squeeze(-1) - batch["y"]).pow(2)
        member_loss = residual.mean(dim=1)
        # each member's mean absolute outcome: known without the module
        return {"loss": member_loss.sum(), "member_loss": member_loss,
                "abs_y": batch["y"].abs().mean(dim=1), "n_rows": torch.tensor(1.0)}

    module = init_weights(MemberLinear(2, 2, 1), torch.Generator().manual_seed(0))
    history = Trainer(loss_fn=loss, batch_size=30, max_epochs=2, patience=None,
                      validation_fraction=0.0, generator=make_generator(0),
                      n_members=2).fit(module, {"X": X}, member_data={"y": Y})
    record = history[-1]
    expected = Y.abs().mean(dim=1)  # equal batches: the batch means average to this
    np.testing.assert_allclose(record["train_member_abs_y"], expected, rtol=1e-5)
    assert record["train_abs_y"] == pytest.approx(float(expected.mean()), rel=1e-5)
    assert record["train_n_rows"] == 1.0


def test_float32_term_runs_in_float32_under_bfloat16_autocast():
    """A term computed with float32_term from a bfloat16 activation equals the float32
    computation on that activation, and its gradient reaches the activation."""
    g = torch.Generator().manual_seed(0)
    x, weight = torch.randn(64, 8, generator=g), torch.randn(8, 8, generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = (x @ weight).requires_grad_()    # a bfloat16 activation
        gram = float32_term(lambda a: (a @ a.T).mean(), h)
        in_autocast = (h @ h.T).mean()
    assert h.dtype == torch.bfloat16 and gram.dtype == torch.float32
    expected = (h.detach().float() @ h.detach().float().T).mean()
    assert float(gram.detach()) == pytest.approx(float(expected), rel=1e-6)
    assert in_autocast.dtype == torch.bfloat16  # what the term would be without it
    gram.backward()
    assert h.grad is not None and h.grad.dtype == torch.bfloat16
