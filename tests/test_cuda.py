"""Device handling. The CUDA tests run only where a GPU is present."""
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from causalnn import CFRNet, Dragonnet, TARNet

from conftest import SMALL, simulate

X, Y, T, _ = simulate(n=300, d=4)


def test_auto_device_without_cuda_is_cpu():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    est = TARNet(**SMALL, random_state=0).fit(X, Y, treatment=T)
    assert est.device_.type == "cpu"


def test_unpickling_a_gpu_fit_without_cuda_falls_back_to_cpu(monkeypatch):
    """A model recorded as fitted on CUDA loads and predicts where CUDA is missing."""
    est = TARNet(**SMALL, random_state=0).fit(X, Y, treatment=T)
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
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"CUDA_VISIBLE_DEVICES": "", "PATH": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "cpu"
