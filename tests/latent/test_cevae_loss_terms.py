"""CEVAE's loss terms (found by mutation testing): every term of a member's loss is
weighted by its own rows (q(t | x) is the cross-fitted propensity of ate_inference, so an
unweighted term would train a fold's model on the fold it predicts), and the auxiliary
q(y | x, t) of each arm is fitted to that arm's outcomes (Louizos et al. 2017, eq. 4-5)."""
import warnings

import numpy as np
import torch

from causalnn import CEVAE


def test_a_cevae_members_loss_ignores_the_rows_outside_its_weight():
    rng = np.random.RandomState(0)
    n = 200
    X = rng.randn(n, 4)
    t = (rng.rand(n) < 0.5).astype(float)
    y = X[:, 0] + t + rng.randn(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = CEVAE(latent_dim=2, hidden_layers=(16, 16), max_epochs=2, patience=None,
                    n_samples=5, n_members=2, random_state=0).fit(X, y, treatment=t)
    rows = 80
    est._step, est._warmup_steps = 0, 0
    Xs = est._scale_X(est._validate_X(X))
    left_out = torch.zeros(2, rows, dtype=torch.bool)
    left_out[0, ::3] = True  # member 0 does not train on every third row
    batch = {"X": torch.tensor(Xs[:rows], dtype=torch.float32),
             "t": torch.tensor(t[:rows], dtype=torch.float32),
             "y": torch.tensor((y[:rows] - est.y_mean_) / est.y_scale_, dtype=torch.float32),
             "member_weight": (~left_out).float()}
    moved = dict(batch, t=torch.where(left_out[0], 1.0 - batch["t"], batch["t"]),
                 y=torch.where(left_out[0], batch["y"] + 3.0, batch["y"]))
    # on the fitted model's device (CUDA under device="auto" with a GPU present)
    batch, moved = ({k: v.to(est.device_) for k, v in b.items()} for b in (batch, moved))
    est.module_.eval()
    est._validation_noise = torch.Generator().manual_seed(0)
    est._validation_noise_start = est._validation_noise.get_state()
    losses = []
    with torch.no_grad():
        for b in (batch, moved):
            est._validation_pass_begins = True  # the same noise for both
            losses.append(est._compute_loss(est.module_, b)["member_loss"])
    torch.testing.assert_close(losses[1][0], losses[0][0])
    assert abs(float(losses[1][1] - losses[0][1])) > 1e-3


def test_auxiliary_outcome_model_of_each_arm_fits_that_arms_outcomes():
    rng = np.random.RandomState(0)
    n = 400
    X = rng.randn(n, 3)
    t = (rng.rand(n) < 0.5).astype(float)
    y = 4.0 * t + 0.3 * rng.randn(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = CEVAE(latent_dim=2, hidden_layers=(16, 16), max_epochs=60, batch_size=64,
                    patience=None, n_samples=5, learning_rate=1e-2,
                    random_state=0).fit(X, y, treatment=t)
    module = est.module_.eval()
    weight = next(module.parameters())
    x = torch.as_tensor(est._scale_X(X), dtype=weight.dtype, device=weight.device)
    with torch.no_grad():
        loc = {a: module.auxiliary_y(x, torch.full((n,), float(a), device=x.device))
               .loc.squeeze(-1)
               .double().mean().item() for a in (0, 1)}
    for a in (0, 1):  # on the training scale of y
        target = (y[t == a].mean() - est.y_mean_) / est.y_scale_
        assert abs(loc[a] - target) < 0.1, (a, loc[a], target)
