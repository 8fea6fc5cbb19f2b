"""Device handling. The CUDA tests run only where a GPU is present.

What is deterministic: on the CPU a fixed ``random_state`` repeats a fit bit for bit. On
CUDA the initial weights, validation split, batch order and bootstrap draws are the same
as on the CPU (all come from a CPU generator), so CPU and GPU fits agree up to float32
rounding; a CUDA fit repeated on the same GPU and software repeats to float32 rounding
(tested to rtol 1e-5 below; cuBLAS on one stream is deterministic, but the IPM sub-batch's
``index_select`` backward accumulates with atomics). For bit-for-bit CUDA runs use
``torch.use_deterministic_algorithms(True)`` with ``CUBLAS_WORKSPACE_CONFIG=:4096:8``.
"""
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from causalnn import CFRNet, Dragonnet, TARNet
from causalnn.engine import loadable_device, resolve_device
from causalnn.engine.random import draw_to_device

from conftest import SMALL, simulate

X, Y, T, _ = simulate(n=300, d=4)


def test_auto_device_without_cuda_is_cpu():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    est = TARNet(**SMALL, random_state=0).fit(X, Y, treatment=T)
    assert est.device_.type == "cpu"


def test_unpickling_a_gpu_fit_without_cuda_falls_back_to_cpu(monkeypatch):
    """A model recorded as fitted on CUDA loads and predicts where CUDA is missing."""
    # fitted on the CPU, so that the expected effects are CPU numbers too (a CUDA fit
    # predicts with other float32 rounding on the CPU)
    est = TARNet(**SMALL, device="cpu", random_state=0).fit(X, Y, treatment=T)
    expected = est.effect(X)
    est.device_ = torch.device("cuda")  # as if fitted on a GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    restored = pickle.loads(pickle.dumps(est))
    assert restored.device_.type == "cpu"
    np.testing.assert_array_equal(restored.effect(X), expected)


@pytest.mark.cuda
@pytest.mark.parametrize("cls", [TARNet, CFRNet, Dragonnet], ids=lambda c: c.__name__)
def test_auto_trains_on_cuda_and_agrees_with_cpu(cls):
    kw = dict(SMALL, max_epochs=20, random_state=0)
    gpu = cls(device="auto", **kw).fit(X, Y, treatment=T)
    assert gpu.device_.type == "cuda"
    assert next(gpu.module_.parameters()).device.type == "cuda"
    cpu = cls(device="cpu", **kw).fit(X, Y, treatment=T)
    # same initial weights and batches; float32 kernels differ in rounding only
    np.testing.assert_allclose(gpu.effect(X), cpu.effect(X), atol=0.05 * np.std(Y))


@pytest.mark.cuda
def test_gpu_fit_unpickles_in_a_cpu_only_process(tmp_path):
    est = Dragonnet(**SMALL, device="cuda", random_state=0).fit(X, Y, treatment=T)
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(est))
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "expected.npy", est.effect(X))
    code = (
        "import pickle, numpy as np, torch; assert not torch.cuda.is_available();"
        f"est = pickle.loads(open({str(path)!r}, 'rb').read());"
        f"X = np.load({str(tmp_path / 'X.npy')!r});"
        f"np.testing.assert_allclose(est.effect(X), np.load({str(tmp_path / 'expected.npy')!r}), rtol=1e-4, atol=1e-5);"
        "print(est.device_)")
    root = str(Path(__file__).resolve().parents[1])  # import this checkout's causalnn
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "cpu"


@pytest.mark.cuda
@pytest.mark.parametrize("cls", [TARNet, Dragonnet], ids=lambda c: c.__name__)
def test_pickling_a_gpu_fit_leaves_it_on_the_gpu(cls):
    """On Python >= 3.11 object.__getstate__ returns the live __dict__: pickling must
    not move the pickled estimator's own modules to the CPU."""
    est = cls(**SMALL, n_members=2, device="cuda", random_state=0).fit(X, Y, treatment=T)
    expected = est.effect(X)
    restored = pickle.loads(pickle.dumps(est))
    assert all(p.device.type == "cuda" for p in est.module_.parameters())
    np.testing.assert_array_equal(est.effect(X), expected)
    np.testing.assert_allclose(restored.effect(X), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.cuda
def test_cuda_fit_repeats_with_the_same_seed():
    kw = dict(SMALL, n_members=3, device="cuda", random_state=1)
    a = CFRNet(ipm="wasserstein", alpha=0.1, **kw).fit(X, Y, treatment=T)
    b = CFRNet(ipm="wasserstein", alpha=0.1, **kw).fit(X, Y, treatment=T)
    np.testing.assert_allclose(a.effect(X, members=True), b.effect(X, members=True),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.cuda
def test_members_and_fit_many_on_cuda_agree_with_cpu():
    kw = dict(SMALL, max_epochs=10, n_members=2, random_state=0)
    Ys = np.stack([Y, 2 * Y + T])
    gpu = TARNet(device="cuda", **kw).fit_many(X, Ys, treatment=T)
    cpu = TARNet(device="cpu", **kw).fit_many(X, Ys, treatment=T)
    for g, c in zip(gpu, cpu):
        assert next(g.module_.parameters()).device.type == "cuda"
        np.testing.assert_allclose(g.effect(X, members=True), c.effect(X, members=True),
                                   atol=0.05 * c.y_scale_)


@pytest.mark.cuda
def test_bfloat16_on_cuda_trains_close_to_float32():
    kw = dict(SMALL, max_epochs=30, device="cuda", random_state=0)
    full = TARNet(**kw).fit(X, Y, treatment=T)
    half = TARNet(precision="bfloat16", **kw).fit(X, Y, treatment=T)
    assert abs(half.ate(X) - full.ate(X)) < 0.2


@pytest.mark.cuda
def test_noise_drawn_on_the_cpu_reaches_cuda_pinned_and_without_a_sync():
    """``draw_to_device`` (the per-step noise of CEVAE, DeepIV and the deep factor
    model) draws the CPU generator's numbers into pinned memory and copies them to CUDA
    without a host sync: torch's sync debug mode raises on a synchronising copy, as on
    the plain ``.to()`` below, but not on this one. The values are the CPU draw's."""
    drawn = []

    def recording_randn(*args, **kwargs):
        drawn.append(torch.randn(*args, **kwargs))
        return drawn[-1]

    device = torch.device("cuda")
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        noise = draw_to_device(recording_randn, (64, 3),
                               generator=torch.Generator().manual_seed(0), device=device)
        with pytest.raises(RuntimeError, match="synchronizing CUDA operation"):
            torch.randn(64, 3).to(device)  # pageable memory: a blocking copy
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    assert drawn[0].is_pinned() and noise.device.type == "cuda"
    expected = torch.randn((64, 3), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(noise.cpu(), expected, rtol=0, atol=0)


def _machine_with_gpus(monkeypatch, count):
    """Make torch report ``count`` CUDA devices (none: CUDA unavailable)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


@pytest.mark.parametrize("count, device, message", [
    (1, "cuda:1", "device='cuda:1' was requested but this machine has 1 CUDA device "
                  r"\(cuda:0\)"),
    (2, "cuda:3", r"device='cuda:3' .* has 2 CUDA devices \(cuda:0 to cuda:1\)"),
    (0, "cuda:0", "device='cuda:0' was requested but CUDA is not available"),
])
def test_a_gpu_the_machine_lacks_is_refused_naming_device(monkeypatch, count, device,
                                                          message):
    _machine_with_gpus(monkeypatch, count)
    with pytest.raises(ValueError, match=message):
        TARNet(**SMALL, device=device, random_state=0).fit(X, Y, treatment=T)


def test_a_gpu_the_machine_has_is_accepted(monkeypatch):
    _machine_with_gpus(monkeypatch, 2)
    for device in ("cuda", "cuda:0", "cuda:1", torch.device("cuda", 1)):
        assert resolve_device(device) == torch.device(device)


@pytest.mark.parametrize("count, fitted_on, loads_on", [
    (1, "cuda:1", "cpu"), (0, "cuda:1", "cpu"), (0, "cuda", "cpu"),
    (2, "cuda:1", "cuda:1"), (1, "cuda:0", "cuda:0"), (0, "cpu", "cpu")])
def test_a_fit_loads_on_its_device_or_else_the_cpu(monkeypatch, count, fitted_on,
                                                   loads_on):
    _machine_with_gpus(monkeypatch, count)
    assert loadable_device(torch.device(fitted_on)) == torch.device(loads_on)


def test_unpickling_a_fit_from_a_gpu_index_the_machine_lacks_falls_back_to_cpu(
        monkeypatch):
    """A fit made on cuda:1, loaded on a machine with one GPU, runs on the CPU."""
    est = TARNet(**SMALL, device="cpu", random_state=0).fit(X, Y, treatment=T)
    expected = est.effect(X)
    est.device_ = torch.device("cuda", 1)  # as if fitted on a second GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    restored = pickle.loads(pickle.dumps(est))
    assert restored.device_ == torch.device("cpu")
    np.testing.assert_array_equal(restored.effect(X), expected)
