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
checked, not the numbers.

Two differences from CUDA are made up for. Meta accepts a CPU generator for a draw on
the device, where CUDA raises: a torch-function mode raises as CUDA does on a draw
that is not on its generator's device. And ``torch.Generator(device="meta")`` raises
(meta is no accelerator), which would keep DeepIV's dropout, whose masks come from a
generator on the fit's device, off the meta device: a CPU generator stands in for it,
and counts as on the device in that check.
"""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

import causalnn._base._estimator as base_estimator
import causalnn.engine.trainer as engine_trainer
from causalnn import CEVAE, CFRNet, DeepIV, Deconfounder, Dragonnet, TARNet
from causalnn.engine.random import draw_to_device

from conftest import simulate

X, Y, T, _ = simulate(n=120, d=4)
META = torch.device("meta")
REAL_GENERATOR = torch.Generator


class _GeneratorCheck(TorchFunctionMode):
    """Raises, as CUDA does, on a random draw whose output is not on its generator's
    device; ``device_generators`` are the CPU generators that stand in for generators
    on the meta device."""

    def __init__(self, device_generators):
        super().__init__()
        self.device_generators = device_generators

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        generator = kwargs.get("generator")
        if isinstance(generator, REAL_GENERATOR) and isinstance(out, torch.Tensor):
            on = "meta" if any(generator is g for g in self.device_generators) \
                else generator.device.type
            if out.device.type != on:
                raise RuntimeError(f"{getattr(func, '__name__', func)}: expected a "
                                   f"'{out.device.type}' device type for generator but "
                                   f"found '{on}'")
        return out


class _GeneratorOnAnyDevice(type):
    def __instancecheck__(cls, obj):
        return isinstance(obj, REAL_GENERATOR)


@pytest.fixture
def meta_device(monkeypatch):
    """``device="meta"`` resolves to the meta device for the test's duration.

    Returns a namespace whose ``blocking_copies`` counts the copies of CPU tensors to
    the meta device made without ``non_blocking=True`` (each one, on CUDA from
    pageable memory, a host sync).
    """
    copies = SimpleNamespace(blocking_copies=0)
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
        if (self.device.type == "cpu" and target is not None
                and torch.device(target).type == "meta" and not kwargs.get("non_blocking")):
            copies.blocking_copies += 1
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
    device_generators = []  # kept alive, so that identity picks out the stand-ins

    class Generator(metaclass=_GeneratorOnAnyDevice):
        """``torch.Generator``; on the meta device a CPU generator stands in."""

        def __new__(cls, device="cpu"):
            if torch.device(device).type != "meta":
                return REAL_GENERATOR(device)
            device_generators.append(REAL_GENERATOR("cpu"))
            return device_generators[-1]

    monkeypatch.setattr(torch, "Generator", Generator)
    with _GeneratorCheck(device_generators):
        yield copies


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
T_DISCRETE = (Z[:, 0] > 0).astype(int) + (Z[:, 0] > 1).astype(int)
REAL_CAUSES = _rng.randn(len(X), 6)
COUNT_CAUSES = _rng.poisson(2.0, size=(len(X), 6)).astype(float)
DEEPIV_TINY = dict(first_stage_layers=(8,), outcome_layers=(8,), max_epochs=2,
                   batch_size=64, random_state=0, device="meta")


def _deepiv_dropout_continuous():
    est = DeepIV(**DEEPIV_TINY, dropout=0.3).fit(X, Y_IV, treatment=T_CONT, instrument=Z)
    est.causal_validation_loss(X, Y_IV, Z, n_draws=4)
    est.first_stage_log_likelihood(X, T_CONT, Z)
    return est.marginal_effect(X, T=0.5)


def _deepiv_dropout_discrete():
    est = DeepIV(**DEEPIV_TINY, dropout="auto", treatment_type="discrete").fit(
        X, Y_IV, treatment=T_DISCRETE, instrument=Z)
    est.causal_validation_loss(X, Y_IV, Z, n_draws=4)
    return est.effect(X, 0, 2)


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
        X, Y_IV, treatment=T_CONT, instrument=Z).marginal_effect(X, T=0.5),
    "Deconfounder-bernoulli-neural": lambda: Deconfounder(
        n_factors=2, factor_model="bernoulli", outcome_model="neural", max_epochs=2,
        factor_max_epochs=2, random_state=0, device="meta").fit(
        X, Y_CAUSES, treatment=CAUSES).effect(X, 0, 1, observed_causes=CAUSES),
    "Deconfounder-deep-neural": lambda: Deconfounder(
        n_factors=2, factor_model="deep", outcome_model="neural", max_epochs=2,
        factor_max_epochs=2, random_state=0, device="meta").fit(
        X, Y_CAUSES, treatment=CAUSES).effect(X, 0, 1),
    # code paths added after the last GPU run
    "DeepIV-dropout-continuous": _deepiv_dropout_continuous,
    "DeepIV-dropout-discrete": _deepiv_dropout_discrete,
    "Dragonnet-bootstrap-shared-targeted": lambda: Dragonnet(
        **TINY, n_members=2, bootstrap=True).fit(X, Y, treatment=T).ate(X, targeted=True),
    "Dragonnet-fit_many-bootstrap-own-targeted": lambda: [
        fit.ate(X, targeted=True) for fit in Dragonnet(
            **TINY, n_members=2, bootstrap=True, member_validation="own").fit_many(
            X, np.stack([Y, Y + T]), treatment=T)],
    "TARNet-ate_inference-bootstrap-own": lambda: TARNet(
        **TINY, n_members=2, bootstrap=True, member_validation="own").ate_inference(
        X, Y, treatment=T, cv=2),
    "Dragonnet-tmle-repeats": lambda: Dragonnet(**TINY).ate_inference(
        X, Y, treatment=T, cv=2, n_repeats=2, method="tmle"),
    "Deconfounder-ppca-neural": lambda: Deconfounder(
        n_factors=2, factor_model="ppca", outcome_model="neural", max_epochs=2,
        factor_max_epochs=2, n_replicates=5, random_state=0, device="meta").fit(
        None, Y_CAUSES, treatment=REAL_CAUSES).cause_effects(),
    "Deconfounder-poisson-check-linear": lambda: Deconfounder(
        n_factors=2, factor_model="poisson", outcome_model="linear",
        predictive_check=True, n_replicates=5, factor_max_epochs=2, random_state=0,
        device="meta").fit(X, Y_CAUSES, treatment=COUNT_CAUSES).cause_effects(),
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


def test_the_meta_device_catches_a_cpu_generator_in_a_device_draw(meta_device, monkeypatch):
    """The generator check can fail: CEVAE's noise drawn on the device by its CPU
    generator (``torch.randn(..., generator=cpu, device=cuda)`` raises on CUDA) raises
    here too, while a draw on a stand-in device generator passes."""
    def noise_drawn_on_the_device(self, like, training):
        return torch.randn(like.shape, generator=self._noise, device=like.device)

    monkeypatch.setattr(CEVAE, "_standard_normal", noise_drawn_on_the_device)
    with pytest.raises(RuntimeError, match="device type for generator but found 'cpu'"):
        CEVAE(**CEVAE_TINY).fit(X, Y, treatment=T)
    on_the_device = torch.Generator(device=META)
    assert torch.rand(3, generator=on_the_device, device=META).device == META
    with pytest.raises(RuntimeError, match="found 'meta'"):
        torch.rand(3, generator=on_the_device)


NOISE_CASES = {  # one epoch: per-step copies show in the steps per epoch
    "CEVAE": lambda batch_size: CEVAE(
        **{**CEVAE_TINY, "batch_size": batch_size, "max_epochs": 1}).fit(
        X, Y, treatment=T),
    "DeepIV": lambda batch_size: DeepIV(  # mixture components and Gaussian noise
        **{**DEEPIV_TINY, "batch_size": batch_size, "max_epochs": 1}).fit(
        X, Y_IV, treatment=T_CONT, instrument=Z),
    "Deconfounder-deep": lambda batch_size: Deconfounder(
        n_factors=2, factor_model="deep", outcome_model="linear", predictive_check=False,
        factor_max_epochs=1, batch_size=batch_size, random_state=0, device="meta").fit(
        X, Y_CAUSES, treatment=CAUSES),
}


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("case", list(NOISE_CASES))
def test_per_step_noise_reaches_the_device_without_a_host_sync(meta_device, case):
    """The noise of each training step (CEVAE's latent draw, DeepIV's treatment draws,
    the deep factor model's reparameterisation), drawn on the CPU, is copied to the
    device without blocking: a fit with four times the steps per epoch makes no more
    blocking host-to-device copies (those left are once per fit or per epoch)."""
    NOISE_CASES[case](64)
    few_steps = meta_device.blocking_copies
    meta_device.blocking_copies = 0
    NOISE_CASES[case](16)
    assert meta_device.blocking_copies == few_steps


def test_draw_to_device_is_the_generators_draw_without_a_blocking_copy(meta_device):
    """On the CPU ``draw_to_device`` is ``draw(shape, generator=...)`` bit for bit; to
    the device it is one copy that does not block."""
    for draw, dtype in ((torch.randn, None), (torch.rand, torch.float64)):
        expected = draw((5, 3), generator=REAL_GENERATOR().manual_seed(1), dtype=dtype)
        on_cpu = draw_to_device(draw, (5, 3), generator=REAL_GENERATOR().manual_seed(1),
                                device=torch.device("cpu"), dtype=dtype)
        assert on_cpu.dtype == expected.dtype and torch.equal(on_cpu, expected)
        on_device = draw_to_device(draw, (5, 3), generator=REAL_GENERATOR().manual_seed(1),
                                   device=META, dtype=dtype)
        assert on_device.device == META and on_device.dtype == expected.dtype
    assert meta_device.blocking_copies == 0
