"""The benchmark's fit times (what is timed, the ratio to a baseline, the batched note),
the reproducibility of peers that draw from the global generators, and the machine
line."""
import functools
import sys
import time
import types

import numpy as np
import pytest
import torch

import causalnn
from causalnn.benchmark import ModelSpec, format_table, run_benchmark, write_results
from causalnn.benchmark import _report, _runner
from causalnn.engine import wait_for_gpu
from causalnn.benchmark._models import _catenets


# ---- what is timed ---------------------------------------------------------------------
class _Instant:
    def fit(self, data):
        self.tau_ = 0.0
        return self

    def effect(self, X):
        return np.zeros(len(X))


def test_building_the_model_is_not_timed_and_the_warm_up_comes_first(monkeypatch):
    calls = []
    monkeypatch.setattr(_runner, "warm_up", lambda device: calls.append("warm_up"))

    def slow_make(seed, device):
        calls.append("make")
        time.sleep(0.3)   # e.g. importing a peer's library
        return _Instant()
    spec = ModelSpec("slow to build", slow_make, ["binary"], "test")
    row = _runner.run_unit(spec, spec.name, "ihdp", [1], 0, "cpu", False)[0]
    assert row["status"] == "ok" and row["fit_seconds"] < 0.15
    assert calls == ["warm_up", "make"]


def test_a_cpu_fit_on_a_gpu_machine_does_not_time_a_cuda_context(monkeypatch):
    """Waiting for the GPU after a fit must not create a CUDA context where the process
    has not used CUDA: on a GPU machine that set-up (0.27 s) was timed as the first CPU
    fit's."""
    synchronised = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: synchronised.append(a))
    wait_for_gpu()
    assert synchronised == []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    wait_for_gpu()
    assert synchronised == [()]


@pytest.mark.filterwarnings("ignore:Training reached max_epochs")
def test_the_warm_up_fits_once_per_process_and_device(monkeypatch):
    fits = []

    class CountingTARNet(causalnn.TARNet):
        def fit(self, X, y, **kwargs):
            fits.append(self.device)
            return super().fit(X, y, **kwargs)
    monkeypatch.setattr(causalnn, "TARNet", CountingTARNet)
    monkeypatch.setattr(_runner, "_WARMED_UP", set())
    before = torch.random.get_rng_state()
    _runner.warm_up("cpu")
    assert fits and set(fits) == {"cpu"}
    n_fits = len(fits)
    _runner.warm_up("cpu")
    assert len(fits) == n_fits
    assert torch.equal(torch.random.get_rng_state(), before)
    _runner.warm_up("tpu9")   # a bad device is for the timed fit to report
    assert _runner._WARMED_UP == {"cpu", "tpu9"}


def test_econml_is_built_when_the_model_is_made():
    pytest.importorskip("econml")
    from econml.metalearners import TLearner
    from causalnn.benchmark import MODELS
    peer = MODELS["EconML T-learner"].make(0, "cpu")
    # built once, by make (outside the timed fit): the fit only takes it
    model = peer.build(None)
    assert isinstance(model, TLearner) and peer.build(None) is model


# ---- the ratio to a baseline -----------------------------------------------------------
def _timed_result(seconds):
    records = [{"dataset": dataset, "model": model, "family": "test", "replication": r,
                "status": "ok", "error": "", "fit_seconds": s, "device": "cpu",
                "batched": False}
               for (dataset, model), values in seconds.items()
               for r, s in enumerate(values, 1)]
    return {"records": records, "unavailable": {}}


def test_fit_time_ratio_is_to_the_first_model_of_the_grid_on_each_dataset():
    table = format_table(_timed_result({
        ("ihdp", "fast"): [1.0, 3.0], ("ihdp", "slow"): [5.0, 7.0],
        ("demand", "iv model"): [4.0, 4.0], ("demand", "baseline"): [1.0, 1.0]}))
    lines = table.splitlines()
    assert lines[0].endswith("| fit s / replication | fit time / first model | device |")
    row = {line.split(" | ")[1]: line.split(" | ")[-2] for line in lines[2:6]}
    assert row == {"fast": "1.00", "slow": "3.00", "iv model": "1.00", "baseline": "0.25"}
    assert ("- fit time ratio on ihdp: mean fit seconds per replication over those of "
            "fast (the grid's first model on ihdp) in this run.") in table
    # one baseline for the whole table: named in the header
    single = format_table(_timed_result({("ihdp", "TARNet"): [2.0],
                                         ("ihdp", "other"): [3.0]}))
    assert "| fit time / TARNet |" in single and "| 1.50 | cpu |" in single


# ---- the batched-against-sequential note -----------------------------------------------
def _small_tarnet(seed, device):
    from causalnn.benchmark._models import _Causalnn
    return _Causalnn(causalnn.TARNet(representation_layers=(16,), head_layers=(8,),
                                     max_epochs=3, batch_size=128, random_state=seed,
                                     device=device))


def test_sequential_subset_note_says_when_nothing_was_batched():
    spec = ModelSpec("small TARNet", _small_tarnet, ["binary"], "causalnn", batched=True)
    # the IHDP files have their own splits: every replication is fitted one at a time
    result = run_benchmark([spec], ["ihdp"], 2, sequential_subset=1, progress=False)
    assert not any(r["batched"] for r in result["records"])
    table = format_table(result)
    assert "batched fit_many took" not in table and "sequential / batched" not in table
    assert "small TARNet on ihdp: no batched fit to compare with" in table


# ---- peers that draw from the global generators ----------------------------------------
class _GlobalRNGNet:
    """Draws weights from torch's global generator and shuffles with np.random, as
    CATENets does."""

    def __init__(self, n_unit_in, seed, **kwargs):
        self.weights = torch.randn(n_unit_in)

    def fit(self, X, y, t):
        order = np.arange(len(X))
        np.random.shuffle(order)
        self.shift = float(order[:5].sum())
        return self

    def predict(self, X):
        return torch.as_tensor(X, dtype=torch.float32) @ self.weights + self.shift


def _fake_catenets(monkeypatch, tarnet):
    module = types.ModuleType("catenets.models.torch")
    module.TARNet = tarnet
    models = types.ModuleType("catenets.models")
    models.torch = module
    root = types.ModuleType("catenets")
    root.models = models
    for name, mod in (("catenets", root), ("catenets.models", models),
                      ("catenets.models.torch", module)):
        monkeypatch.setitem(sys.modules, name, mod)


def _fit_twice(make):
    from causalnn.benchmark import load_replication
    data = load_replication("ihdp", 1)
    effects = []
    for _ in range(2):
        np.random.random(3), torch.rand(3)   # what ran before differs between fits
        effects.append(make(1, "cpu").fit(data).effect(data.X))
    return effects


def test_a_catenets_fit_is_seeded_and_leaves_the_global_generators_alone(monkeypatch):
    _fake_catenets(monkeypatch, _GlobalRNGNet)
    np.random.seed(123)
    torch.manual_seed(123)
    numpy_state, torch_state = np.random.get_state(), torch.random.get_rng_state()
    from causalnn.benchmark import load_replication
    data = load_replication("ihdp", 1)
    first = _catenets("TARNet", False)(1, "cpu").fit(data).effect(data.X)
    # the caller's generators: as they were
    assert np.random.get_state()[1].tolist() == numpy_state[1].tolist()
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    np.random.random(3), torch.rand(3)
    second = _catenets("TARNet", False)(1, "cpu").fit(data).effect(data.X)
    np.testing.assert_array_equal(first, second)
    other_seed = _catenets("TARNet", False)(2, "cpu").fit(data).effect(data.X)
    assert not np.array_equal(first, other_seed)


def test_a_real_catenets_tarnet_gives_the_same_effects_twice(monkeypatch):
    catenets_torch = pytest.importorskip("catenets.models.torch")
    tiny = functools.partial(catenets_torch.TARNet, n_layers_r=1, n_units_r=8,
                             n_layers_out=1, n_units_out=8, n_iter=5, batch_size=256,
                             early_stopping=False, n_iter_print=1000)
    monkeypatch.setattr(catenets_torch, "TARNet", tiny)
    first, second = _fit_twice(_catenets("TARNet", False))
    np.testing.assert_array_equal(first, second)
    # the device reported is where CATENets put its network, not the run's --device
    from causalnn.benchmark import load_replication
    from causalnn.benchmark._runner import _device_of
    fitted = _catenets("TARNet", False)(1, "cpu").fit(load_replication("ihdp", 1))
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert _device_of(fitted).startswith(expected)


# ---- the machine line ------------------------------------------------------------------
def test_cpu_model_comes_from_proc_cpuinfo_with_a_fallback(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: X\nmodel name\t: Example  CPU 9000\n")
    assert _report._cpu_model(info) == "Example CPU 9000"
    assert _report._cpu_model(tmp_path / "missing") != ""


def test_machine_line_names_a_gpu_only_for_a_cuda_run(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU 1")
    assert "GPU" not in _report.machine_description("cpu")
    assert _report.machine_description("cuda:0").endswith(", GPU Fake GPU 1")
    result = _timed_result({("ihdp", "m"): [1.0]})
    result.update(replications=1, seconds=1.0, n_jobs=1, backend="loky",
                  datasets=["ihdp"], device="cpu")
    assert "GPU" not in write_results(dict(result), tmp_path / "cpu", "cmd")
    result["records"][0]["device"] = "cuda:0"
    assert "GPU Fake GPU 1" in write_results(dict(result), tmp_path / "cuda", "cmd")
