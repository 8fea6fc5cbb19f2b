"""CEVAE against closed forms: the ensemble propensity is the members' mean, and the
ELBO's KL term is the Gaussian KL summed over the latent dimensions."""
import warnings

import numpy as np
import pytest

from causalnn import CEVAE

from conftest import cevae_loss_batch, simulate

TINY = dict(latent_dim=2, hidden_layers=(16, 16), max_epochs=3, batch_size=64,
            patience=None, n_samples=5)


def test_ensemble_propensity_is_the_members_mean():
    """``predict_propensity`` and the in-sample ``ate_inference`` (``cv=None``, no
    clipping) both report ``q(t = 1 | x)`` of the ensemble: the mean over the members,
    as ``effect`` is the members' mean. The members' propensities differ (independent
    initial weights), so a single member's would not agree."""
    X, y, t, _ = simulate(n=200, d=4)
    est = CEVAE(**TINY, n_members=3, random_state=0).fit(X, y, treatment=t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # AIPW adjusts for X, not z: said elsewhere
        res = est.ate_inference(X, y, treatment=t, cv=None, propensity_clip=0.0)
    e = est.predict_propensity(X)
    assert e.shape == (len(X),) and np.all((e > 0) & (e < 1))
    np.testing.assert_allclose(e, res.propensity, rtol=1e-10, atol=1e-12)


def test_kl_term_is_the_closed_form_kl_summed_over_the_latent_dimensions():
    """The ELBO's KL term is ``KL(q(z | x, t, y) || N(0, I))`` of the whole latent
    vector: per row ``sum_j (mu_j^2 + s_j^2 - 1) / 2 - log s_j`` (the KL of independent
    coordinates adds up), averaged over rows."""
    import torch

    X, y, t, _ = simulate(n=200, d=4)
    est = CEVAE(**{**TINY, "latent_dim": 3}, random_state=0).fit(X, y, treatment=t)
    batch = cevae_loss_batch(est, X, t, y, 64)
    est.module_.eval()
    est._validation_pass_begins = True
    est._validation_noise = torch.Generator().manual_seed(0)
    est._validation_noise_start = est._validation_noise.get_state()
    with torch.no_grad():
        kl = est._compute_loss(est.module_, batch)["kl"]
        q = est.module_.encode(batch["X"], batch["t"], batch["y"])
        closed = (0.5 * (q.loc ** 2 + q.scale ** 2 - 1) - torch.log(q.scale)).sum(-1)
    assert q.loc.shape[-1] == 3
    assert float(kl) == pytest.approx(float(closed.mean()), rel=1e-5)


def test_binary_outcome_predictions_are_probabilities_near_the_outcome_rate():
    """A binary outcome with rate 0.9 that nothing predicts: the fitted
    ``P(y = 1 | x, t)`` is the outcome rate up to its sampling error (SE
    sqrt(0.09 / 300) = 0.017; tolerance 3 SE), and no prediction is below 1/2. The
    posterior-averaged probabilities go through the base's logit scale, so a wrong
    logit (``log p`` for ``log(p / (1 - p))``) would map every one below 1/2."""
    rng = np.random.RandomState(0)
    n = 300
    X = rng.randn(n, 3)
    t = (rng.rand(n) < 0.5).astype(float)
    y = (rng.rand(n) < 0.9).astype(float)
    est = CEVAE(latent_dim=2, hidden_layers=(16, 16), max_epochs=10, batch_size=64,
                patience=None, n_samples=10, learning_rate=1e-2, random_state=0)
    est.fit(X, y, treatment=t)
    p = est.predict_outcome(X, t)
    assert np.all((p > 0.5) & (p < 1))
    assert p.mean() == pytest.approx(y.mean(), abs=3 * np.sqrt(0.09 / n))


def test_a_column_declared_binary_must_hold_only_zeros_and_ones():
    """``proxy_types`` may call a column 'binary' only if it holds 0 and 1 alone: a
    count column 0, 1, 2 (which contains 0 and 1, and whose standardised values
    include an exact 0) is refused with the column named, not modelled as Bernoulli."""
    X, y, t, _ = simulate(n=90, d=3)
    counts = np.tile([0.0, 1.0, 2.0], 30)
    Xc = np.column_stack([X, counts])
    with pytest.raises(ValueError, match=r"proxy_types marks columns \[3\] as 'binary'"):
        CEVAE(**TINY, proxy_types=["continuous"] * 3 + ["binary"],
              random_state=0).fit(Xc, y, treatment=t)
