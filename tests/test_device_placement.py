"""Device placement of every estimator, checked on a CPU-only machine.

CI has no GPU, so a CPU tensor mixed into a CUDA computation (a mask, a weight or a
noise draw created without ``device=``) or a ``.numpy()`` of a device tensor without
``.cpu()`` would only show on a GPU. Here every estimator fits and predicts with
``device_`` set to torch's ``meta`` device, which raises on the same mixes as CUDA
(an elementwise op or ``cat`` of a non-scalar CPU tensor with a device tensor) and
accepts what CUDA accepts (CPU index tensors, 0-dim CPU scalars). A read of a device
value on the host during training (``.item()``, ``bool(tensor)``, a distribution's
argument validation), a host sync per step on CUDA, raises on meta too. Meta tensors
hold no values: copies back to the CPU are faked as zeros, so only the plumbing is
checked, not the numbers. One difference from CUDA: meta accepts a CPU generator for a
draw on the device, so library code keeps to "draw on ``generator.device``, then
``.to()``".
"""
import numpy as np
import pytest
import torch

import causalnn._base._estimator as base_estimator
import causalnn.engine.trainer as engine_trainer
from causalnn import CEVAE, CFRNet, DeepIV, Deconfounder, Dragonnet, TARNet

from conftest import simulate

X, Y, T, _ = simulate(n=120, d=4)
META = torch.device("meta")


@pytest.fixture
def meta_device(monkeypatch):
    """``device="meta"`` resolves to the meta device for the test's duration."""
    real_resolve = base_estimator.resolve_device
    monkeypatch.setattr(base_estimator, "resolve_device",
                        lambda d: META if d == "meta" else real_resolve(d))
    monkeypatch.setattr(base_estimator, "check_device_type", lambda device, owner: None)
    real_cpu, real_to, real_numpy = torch.Tensor.cpu, torch.Tensor.to, torch.Tensor.numpy

    def cpu(self, *args, **kwargs):
        if self.is_meta:
            return torch.zeros(self.shape, dtype=self.dtype)
        return real_cpu(self, *args, **kwargs)

    def to(self, *args, **kwargs):
        target = kwargs.get("device", args[0] if args and isinstance(
            args[0], (str, torch.device)) else None)
        if self.is_meta and target is not None and torch.device(target).type == "cpu":
            return torch.zeros(self.shape, dtype=self.dtype)
        return real_to(self, *args, **kwargs)

    def numpy(self, *args, **kwargs):
        if self.is_meta:
            raise RuntimeError("numpy() of a device tensor without .cpu() first")
        return real_numpy(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "cpu", cpu)
    monkeypatch.setattr(torch.Tensor, "to", to)
    monkeypatch.setattr(torch.Tensor, "numpy", numpy)
    real_autocast = torch.autocast  # meta has no autocast: the CPU's stands in
    monkeypatch.setattr(torch, "autocast", lambda device_type, *args, **kwargs:
                        real_autocast("cpu" if device_type == "meta" else device_type,
                                      *args, **kwargs))
    # the faked host copies are zeros, not the losses: no divergence check
    monkeypatch.setattr(engine_trainer.Trainer, "_check_finite", lambda *args: None)


TINY = dict(representation_layers=(8,), head_layers=(8,), max_epochs=2, batch_size=64,
            patience=1, random_state=0, device="meta")
CEVAE_TINY = dict(latent_dim=2, hidden_layers=(8,), max_epochs=2, batch_size=64,
                  n_samples=3, random_state=0, device="meta")
_rng = np.random.RandomState(0)
Z = _rng.randn(len(X), 1)  # an instrument for DeepIV
T_CONT = Z[:, 0] + X[:, 0] + 0.5 * _rng.randn(len(X))
Y_IV = 2 * T_CONT + X[:, 0]
CAUSES = (_rng.rand(len(X), 6) < 0.4).astype(float)  # the deconfounder's causes
Y_CAUSES = CAUSES.sum(1) + _rng.randn(len(X))

CASES = {
    "TARNet": lambda: TARNet(**TINY).fit(X, Y, treatment=T).effect(X),
    "TARNet-members-bootstrap-own": lambda: TARNet(
        **TINY, n_members=3, bootstrap=True, member_validation="own").fit(
        X, Y, treatment=T).effect(X),
    "TARNet-bootstrap-shared": lambda: TARNet(**TINY, n_members=2, bootstrap=True).fit(
        X, Y, treatment=T).effect(X),
    "TARNet-bfloat16": lambda: TARNet(**TINY, precision="bfloat16").fit(
        X, Y, treatment=T).effect(X),
    "CFRNet-mmd_rbf-subbatch": lambda: CFRNet(**TINY, ipm="mmd_rbf", ipm_batch_size=32).fit(
        X, Y, treatment=T).effect(X),
    "CFRNet-wasserstein-bfloat16": lambda: CFRNet(
        **TINY, ipm="wasserstein", ipm_batch_size=32, precision="bfloat16").fit(
        X, Y, treatment=T).effect(X),
    "CFRNet-mmd_linear": lambda: CFRNet(**TINY, ipm="mmd_linear").fit(
        X, Y, treatment=T).effect(X),
    "Dragonnet-targeted-ate": lambda: Dragonnet(**TINY).fit(X, Y, treatment=T).ate(
        X, targeted=True),
    "Dragonnet-members": lambda: Dragonnet(**TINY, n_members=2).fit(
        X, Y, treatment=T).predict_propensity(X),
    "fit_many": lambda: TARNet(**TINY, n_members=2).fit_many(
        X, np.stack([Y, Y + T]), treatment=T)[1].effect(X),
    "ate_inference": lambda: Dragonnet(**TINY).ate_inference(X, Y, treatment=T, cv=2),
    "CEVAE": lambda: CEVAE(**CEVAE_TINY).fit(X, Y, treatment=T).effect(X),
    "CEVAE-members-bootstrap": lambda: CEVAE(
        **CEVAE_TINY, n_members=2, bootstrap=True).fit(
        X, Y, treatment=T).predict_propensity(X),
    "DeepIV": lambda: DeepIV(max_epochs=2, batch_size=64, random_state=0,
                             device="meta").fit(
        X, Y_IV, treatment=T_CONT, instrument=Z).marginal_effect(X, 0.5),
    "Deconfounder-bernoulli-neural": lambda: Deconfounder(
        n_factors=2, factor_model="bernoulli", outcome_model="neural", max_epochs=2,
        factor_max_epochs=2, random_state=0, device="meta").fit(
        X, Y_CAUSES, treatment=CAUSES).effect(X, 0, 1, observed_causes=CAUSES),
    "Deconfounder-deep-neural": lambda: Deconfounder(
        n_factors=2, factor_model="deep", outcome_model="neural", max_epochs=2,
        factor_max_epochs=2, random_state=0, device="meta").fit(
        X, Y_CAUSES, treatment=CAUSES).effect(X, 0, 1),
}


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("case", list(CASES))
def test_fit_and_predict_keep_every_tensor_on_the_device(meta_device, case):
    CASES[case]()


def test_the_meta_device_catches_a_cpu_tensor_in_a_device_loss(meta_device, monkeypatch):
    """The check above can fail: a loss that adds a CPU tensor of one value per row
    (as ``torch.ones(n)`` without ``device=`` would) raises on the meta device."""
    real_loss = TARNet._compute_loss

    def loss_with_a_cpu_tensor(self, module, batch):
        losses = real_loss(self, module, batch)
        extra = (torch.zeros(len(batch["t"])) * batch["t"]).sum()
        return {**losses, "loss": losses["loss"] + extra}

    monkeypatch.setattr(TARNet, "_compute_loss", loss_with_a_cpu_tensor)
    with pytest.raises(RuntimeError, match="device"):
        TARNet(**TINY).fit(X, Y, treatment=T)
