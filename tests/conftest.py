import numpy as np
import pytest
import torch

from causalnn import CFRNet, Dragonnet, TARNet

# The test networks are tiny: one intra-op thread is faster than two and keeps timings
# steady when other processes share the cores.
torch.set_num_threads(1)

# small networks and few epochs: the tests check behaviour, not accuracy at scale
SMALL = dict(representation_layers=(32, 32), head_layers=(16,), max_epochs=8,
             batch_size=64, patience=None)

ESTIMATORS = {
    "TARNet": lambda **kw: TARNet(**{**SMALL, **kw}),
    "CFRNet-wasserstein": lambda **kw: CFRNet(ipm="wasserstein", **{**SMALL, **kw}),
    "CFRNet-mmd_rbf": lambda **kw: CFRNet(ipm="mmd_rbf", **{**SMALL, **kw}),
    "CFRNet-mmd_linear": lambda **kw: CFRNet(ipm="mmd_linear", **{**SMALL, **kw}),
    "Dragonnet": lambda **kw: Dragonnet(**{**SMALL, **kw}),
}


def simulate(n=400, d=5, seed=0, binary_outcome=False):
    """Confounded binary treatment with a known, heterogeneous effect.

    Continuous: mu0 = x0 + 0.5 x2, tau = 1 + x1 (so ATE = 1).
    Binary: P(y=1 | x, t) = sigmoid(x0 + t (1 + 0.5 x1)), effect on the probability scale.
    """
    rng = np.random.RandomState(seed)
    X = rng.randn(n, d)
    propensity = 1.0 / (1.0 + np.exp(-0.8 * X[:, 0]))
    t = (rng.rand(n) < propensity).astype(float)
    if binary_outcome:
        def p(tt):
            return 1.0 / (1.0 + np.exp(-(X[:, 0] + tt * (1.0 + 0.5 * X[:, 1]))))
        mu0, mu1 = p(0.0), p(1.0)
        y = (rng.rand(n) < np.where(t == 1, mu1, mu0)).astype(float)
    else:
        mu0 = X[:, 0] + 0.5 * X[:, 2]
        mu1 = mu0 + 1.0 + X[:, 1]
        y = np.where(t == 1, mu1, mu0) + 0.1 * rng.randn(n)
    return X, y, t, mu1 - mu0


def cevae_loss_batch(est, X, t, y, rows):
    """The first ``rows`` rows as a training batch of the fitted CEVAE ``est``, scaled
    as its fit scaled them, with the KL warm-up over (weight 1), to call
    ``est._compute_loss(est.module_, batch)`` on. The tensors are on ``est.device_``,
    where the fitted module is (CUDA with a GPU present)."""
    est._step, est._warmup_steps = 0, 0
    Xs = est._scale_X(est._validate_X(X))
    device = est.device_
    return {"X": torch.tensor(Xs[:rows], dtype=torch.float32, device=device),
            "t": torch.tensor(t[:rows], dtype=torch.float32, device=device),
            "y": torch.tensor((y[:rows] - est.y_mean_) / est.y_scale_,
                              dtype=torch.float32, device=device)}


@pytest.fixture(params=list(ESTIMATORS))
def make_estimator(request):
    return ESTIMATORS[request.param]


@pytest.fixture
def held_out_rows(monkeypatch):
    """The validation rows of every engine fit in the test, in order (sorted lists)."""
    from causalnn.engine import trainer as trainer_module
    rows = []
    original = trainer_module.stratified_split

    def recording(*args, **kwargs):
        train, valid = original(*args, **kwargs)
        rows.append(valid.sort().values.tolist())
        return train, valid

    monkeypatch.setattr(trainer_module, "stratified_split", recording)
    return rows


@pytest.fixture(scope="session")
def data():
    return simulate()


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
