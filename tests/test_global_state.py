"""A fit, a benchmark run and its plots leave the caller's process-wide settings as
they were, and do not depend on them: torch's default dtype and autograd mode, the
warning filters, matplotlib's backend, numpy's and Python's global generators."""
import random
import threading
import warnings

import numpy as np
import pytest
import torch

from causalnn import CEVAE, CFRNet, DeepIV, Deconfounder, Dragonnet, TARNet
from causalnn.datasets import make_linear_iv, make_multi_cause

from conftest import SMALL, simulate


def _fits():
    X, Y, T, _ = simulate(n=120, d=3)
    iv = make_linear_iv(200, random_state=0)
    causes = make_multi_cause(150, 8, 2, random_state=0)
    small = {**SMALL, "max_epochs": 2}
    return {
        "TARNet": lambda: TARNet(**small, random_state=0).fit(X, Y, treatment=T).effect(X),
        "Dragonnet": lambda: Dragonnet(**small, random_state=0).fit(
            X, Y, treatment=T).effect(X),
        "CEVAE": lambda: CEVAE(hidden_layers=(8,), latent_dim=2, max_epochs=2,
                               random_state=0, device="cpu").fit(
            X, Y, treatment=T).effect(X),
        "DeepIV": lambda: DeepIV(first_stage_layers=(8,), outcome_layers=(8,),
                                 n_components=2, max_epochs=2, random_state=0,
                                 device="cpu").fit(
            iv.X, iv.y, treatment=iv.treatment, instrument=iv.instrument).effect(
            iv.X, 0.0, 1.0),
        # pairwise IPM, bootstrap counts and member weights, the fluctuation epsilon
        "CFR-ensemble": lambda: CFRNet(**small, ipm="wasserstein", n_members=2,
                                       bootstrap=True, random_state=0).fit(
            X, Y, treatment=T).effect(X, members=True),
        "Dragonnet-ate-inference": lambda: np.array(
            Dragonnet(**small, random_state=0).ate_inference(
                X, Y, treatment=T, cv=2, method="tmle").conf_int()),
        "DeepIV-discrete": lambda: DeepIV(
            treatment_type="discrete", first_stage_layers=(8,), outcome_layers=(8,),
            max_epochs=2, random_state=0, device="cpu").fit(
            iv.X, iv.y, treatment=(np.ravel(iv.treatment) > 0).astype(int),
            instrument=iv.instrument).effect(iv.X, 0, 1),
        "Deconfounder": lambda: Deconfounder(
            factor_model="bernoulli", n_factors=2, factor_max_epochs=5,
            predictive_check=False, outcome_model="neural", outcome_layers=(8,),
            max_epochs=2, random_state=0, device="cpu").fit(
            None, causes.y, treatment=causes.treatment).cause_effects(),
    }


@pytest.mark.filterwarnings("ignore::causalnn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", ["TARNet", "Dragonnet", "CEVAE", "DeepIV", "Deconfounder",
                                  "CFR-ensemble", "Dragonnet-ate-inference",
                                  "DeepIV-discrete"])
def test_fits_ignore_the_callers_default_dtype_and_autograd_mode(name):
    # torch.set_default_dtype(torch.float64) (BoTorch's advice) made the float32 nets
    # fail and DeepIV and the Deconfounder draw other numbers from the same seed; a fit
    # called under no_grad or inference_mode failed in its first backward pass
    fit = _fits()[name]
    expected = fit()
    before = torch.get_default_dtype()
    try:
        torch.set_default_dtype(torch.float64)
        np.testing.assert_array_equal(fit(), expected)
        assert torch.get_default_dtype() == torch.float64  # the caller's, given back
    finally:
        torch.set_default_dtype(before)
    with torch.no_grad():
        np.testing.assert_array_equal(fit(), expected)
        assert not torch.is_grad_enabled()
    with torch.inference_mode():
        np.testing.assert_array_equal(fit(), expected)
        assert torch.is_inference_mode_enabled()


def test_deepiv_marginal_effect_under_inference_mode():
    iv = make_linear_iv(200, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = DeepIV(first_stage_layers=(8,), outcome_layers=(8,), n_components=2,
                     max_epochs=2, random_state=0, device="cpu").fit(
            iv.X, iv.y, treatment=iv.treatment, instrument=iv.instrument)
    expected = est.marginal_effect(iv.X, T=0.5)
    with torch.inference_mode():
        np.testing.assert_array_equal(est.marginal_effect(iv.X, T=0.5), expected)


def test_work_items_off_the_main_thread_leave_the_warning_filters_alone(monkeypatch):
    # catch_warnings saves and restores the process-wide filter list: work items
    # overlapping in threads restored each other's "ignore" and could leave every
    # warning of the caller's process silenced. Off the main thread run_unit touches
    # no filter; run_benchmark silences the threads' warnings once, in the caller's
    from causalnn.benchmark import _runner
    from causalnn.benchmark import ModelSpec, run_benchmark
    seen = []

    def record(*args, **kwargs):
        seen.append((threading.current_thread() is threading.main_thread(),
                     warnings.filters[0][0] if warnings.filters else None))
        return []

    monkeypatch.setattr(_runner, "_run_unit", record)
    monkeypatch.setattr(_runner, "warm_up", lambda device: None)
    spec = ModelSpec("constant", lambda seed, device: None, ["binary"], "test")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        filters = list(warnings.filters)
        worker = threading.Thread(target=_runner.run_unit,
                                  args=(spec, "constant", "ihdp", [0], 0, "cpu", False))
        worker.start()
        worker.join()
        # a work item in another thread outside a threading grid (run_benchmark called
        # from a thread with n_jobs=1, a Dask worker) silences its own warnings
        assert seen == [(False, "ignore")]
        assert warnings.filters == filters
        seen.clear()
        with _runner._grid_silenced():  # inside a threading grid: filters left alone
            worker = threading.Thread(
                target=_runner.run_unit,
                args=(spec, "constant", "ihdp", [0], 0, "cpu", False))
            worker.start()
            worker.join()
        assert seen == [(False, "ignore")] and warnings.filters == filters
        seen.clear()
        run_benchmark([spec], ["ihdp"], 2, n_jobs=2, backend="threading", progress=False)
        assert seen and all(head == "ignore" for _, head in seen)
        assert warnings.filters == filters
        seen.clear()
        _runner.run_unit(spec, "constant", "ihdp", [0], 0, "cpu", False)  # main thread
        assert seen == [(True, "ignore")] and warnings.filters == filters


def test_plots_leave_the_callers_matplotlib_backend(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    from causalnn.benchmark import ModelSpec, plot_results, run_benchmark

    class Zero:
        def fit(self, data):
            return self

        def effect(self, X):
            return np.zeros(len(X))

    spec = ModelSpec("zero", lambda seed, device: Zero(), ["binary"], "test")
    result = run_benchmark([spec], ["ihdp"], 2, progress=False)
    before = matplotlib.get_backend()
    try:
        matplotlib.use("svg")
        assert sorted(p.name for p in plot_results(result, tmp_path)) == [
            "effects_ihdp.png", "errorbars_ihdp.png"]
        assert matplotlib.get_backend() == "svg"
        assert (tmp_path / "effects_ihdp.png").read_bytes()[:4] == b"\x89PNG"
    finally:
        matplotlib.use(before)


def test_asking_whether_a_peer_is_installed_keeps_the_global_generators(monkeypatch):
    # importing CATENets 0.2.4 seeds numpy's and Python's global generators with 0:
    # the availability check gives them back as they were
    import importlib

    from causalnn.benchmark import ModelSpec
    real_import = importlib.import_module

    def seeding_import(name, *args, **kwargs):
        if name == "a_peer_that_seeds":
            np.random.seed(0)
            random.seed(0)
            return None
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", seeding_import)
    spec = ModelSpec("peer", lambda seed, device: None, ["binary"], "test",
                     requires=("a_peer_that_seeds",))
    np.random.seed(5)
    random.seed(5)
    expected = np.random.rand(), random.random()
    np.random.seed(5)
    random.seed(5)
    assert spec.unavailable() is None
    assert (np.random.rand(), random.random()) == expected


def test_a_fit_in_a_thread_leaves_the_default_dtype_of_other_threads_alone():
    # the default dtype is process-wide: a fit that switched it to float32 for its
    # duration made the caller's float64 code in other threads compute in float32
    from causalnn import TARNet
    entered, go, seen = threading.Event(), threading.Event(), []

    class Paused(TARNet):
        def _fit(self, *args):
            entered.set()
            go.wait()
            return super()._fit(*args)

    X, y, t, _ = simulate(n=120, d=3)
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        worker = threading.Thread(target=Paused(**{**SMALL, "max_epochs": 2},
                                                random_state=0).fit, args=(X, y),
                                  kwargs={"treatment": t})
        worker.start()
        entered.wait()
        seen.append(torch.zeros(1).dtype)
        go.set()
        worker.join()
        assert seen == [torch.float64]
    finally:
        torch.set_default_dtype(before)



def test_overlapping_filtered_blocks_in_threads_keep_the_callers_filters():
    # warnings.catch_warnings in overlapping threads restored each other's saved
    # filters: predicts on interchange-protocol frames, or benchmark work items run
    # from threads, left the process with every warning silenced
    import pandas as pd
    from causalnn._base._validation import as_pandas_frame
    from causalnn.benchmark import _runner
    frame = pd.DataFrame({"a": np.arange(50.0)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation of __dataframe__ itself
        exchange = frame.__dataframe__()
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        filters = list(warnings.filters)

        def work():
            for _ in range(200):
                as_pandas_frame(exchange)
                with _runner._silenced_warnings():
                    pass

        threads = [threading.Thread(target=work) for _ in range(3)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert warnings.filters == filters


def test_a_fit_in_a_thread_does_not_rewind_the_global_stream_of_others():
    # a fit used to save torch's global stream at its start and restore it at its end
    # (fork_rng): the draws that the caller's other threads made meanwhile came again
    entered, drawn = threading.Event(), threading.Event()

    class Paused(TARNet):
        def _fit(self, *args):
            entered.set()
            drawn.wait()  # the caller draws while this fit is under way
            return super()._fit(*args)

    X, y, t, _ = simulate(n=120, d=3)
    torch.manual_seed(7)
    expected = torch.rand(200)
    torch.manual_seed(7)
    worker = threading.Thread(target=Paused(**{**SMALL, "max_epochs": 2},
                                            random_state=0).fit, args=(X, y),
                              kwargs={"treatment": t})
    worker.start()
    entered.wait()
    first = torch.rand(100)
    drawn.set()
    worker.join()
    torch.testing.assert_close(torch.cat([first, torch.rand(100)]), expected,
                               rtol=0, atol=0)


def test_the_callers_own_identical_filter_survives_causalnn_s_shared_one():
    # warnings.filterwarnings moves an equal entry to the front rather than adding one:
    # removing "ours" at the end of the block removed the caller's filter
    from causalnn._warnings import shared_filter
    from causalnn.benchmark import _runner
    message = "The Dataframe Interchange Protocol is deprecated"
    with warnings.catch_warnings():
        warnings.resetwarnings()
        warnings.simplefilter("ignore")
        warnings.filterwarnings("default", category=UserWarning)
        warnings.filterwarnings("ignore", message=message, category=DeprecationWarning)
        before = list(warnings.filters)
        with _runner._silenced_warnings():
            pass
        with shared_filter(message=message, category=DeprecationWarning):
            pass
        assert warnings.filters == before
