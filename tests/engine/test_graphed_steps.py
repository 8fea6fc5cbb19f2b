"""``compile="cuda-graph"``: every training step captured once per batch size and
replayed (causalnn.engine.graphs).

Without a GPU the capture itself cannot run, so the bookkeeping around it is checked on
the CPU with a stand-in capture that records the step and runs it at each replay, as a
CUDA graph does: warm-up steps, one graph per batch size, the captured batch replayed,
every batch trained on once, in place loss sums. The fit must then equal the ordinary
loop's to the bit. The CUDA tests at the end run the real capture where a GPU is present.
"""
import warnings

import numpy as np
import pytest
import torch

from causalnn import CFRNet, Dragonnet, TARNet
from causalnn.engine import graphs
from causalnn.engine import trainer as trainer_module
from causalnn.engine.graphs import WARMUP_STEPS

from conftest import SMALL, simulate

X, Y, T, _ = simulate(n=300, d=4)


class _RecordedStep:
    """Stands in for a CUDA graph: capture runs nothing, each replay runs the step and
    writes its results into the same tensors, as a graph does (the first replay makes
    them, where a capture would have)."""

    def __init__(self, step, log):
        self.step, self.log, self.losses = step, log, {}

    def pool(self):
        return ("pool of", id(self))

    def replay(self):
        self.log["replays"] += 1
        fresh = self.step()
        with torch.no_grad():
            for k, v in fresh.items():
                if k in self.losses:
                    self.losses[k].copy_(v)
                else:
                    self.losses[k] = v.detach().clone()


def _stand_in_capture(monkeypatch, fail=False):
    log = {"captures": 0, "replays": 0, "pools": []}

    def capture(step, pool=None):
        if fail:
            raise RuntimeError("operation not permitted when stream is capturing")
        log["captures"] += 1
        graph = _RecordedStep(step, log)
        log["pools"].append((pool, graph.pool()))
        return graph, graph.losses

    monkeypatch.setattr(trainer_module, "_CAPTURE_ON", {"cpu", "cuda"})
    monkeypatch.setattr(trainer_module, "capture_cuda_graph", capture)
    return log


def _fit(cls, **params):
    kw = dict(SMALL, device="cpu", random_state=0)
    kw.update(params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return cls(**kw).fit(X, Y, treatment=T)


def _same_fit(a, b):
    assert [h["train_loss"] for h in a.history_] == [h["train_loss"] for h in b.history_]
    assert [h["valid_loss"] for h in a.history_] == [h["valid_loss"] for h in b.history_]
    np.testing.assert_array_equal(a.effect(X), b.effect(X))


# (estimator, parameters, batch sizes per epoch): 210 training rows (300 with
# member_validation="own", where every member sees all rows) at batch 64 come in
# batches of 53 and 52 rows (60 rows), at batch 70 in three of 70
CASES = [
    (TARNet, {"batch_size": 70}, 1),
    (TARNet, {}, 2),
    (CFRNet, {"ipm": "wasserstein", "alpha": 0.1, "n_members": 3, "bootstrap": True}, 2),
    (CFRNet, {"ipm": "mmd_rbf", "alpha": 0.1, "member_validation": "own",
              "n_members": 2}, 1),
    (Dragonnet, {"n_members": 2}, 2),
]
IDS = ["tarnet-one-size", "tarnet-two-sizes", "cfr-w-bootstrap", "cfr-rbf-own",
       "dragonnet"]


@pytest.mark.parametrize("cls, params, n_sizes", CASES, ids=IDS)
def test_replayed_steps_train_exactly_as_the_ordinary_loop(monkeypatch, cls, params,
                                                           n_sizes):
    plain = _fit(cls, **params)
    log = _stand_in_capture(monkeypatch)
    sizes = []
    call = graphs.GraphedSteps.__call__
    monkeypatch.setattr(graphs.GraphedSteps, "__call__",
                        lambda self, positions: sizes.append(len(positions))
                        or call(self, positions))
    graphed = _fit(cls, compile="cuda-graph", **params)
    _same_fit(plain, graphed)
    assert len(sizes) % graphed.n_iter_ == 0  # as many steps in every epoch
    assert len(set(sizes)) == n_sizes
    assert log["captures"] == n_sizes  # one graph per batch size
    # the second batch size's graph shares the first's memory pool
    assert [given for given, _ in log["pools"]] == [None, log["pools"][0][1]][:n_sizes]
    # every step but the warm-up ones is a replay, the captured batch's included
    assert log["replays"] == len(sizes) - WARMUP_STEPS * n_sizes


def test_without_capture_the_static_steps_train_as_the_loop_and_it_warns():
    """On a CPU the option trains as usual, and says that nothing was captured."""
    plain = _fit(TARNet)
    with pytest.warns(UserWarning, match="captures CUDA graphs on a CUDA device only"):
        graphed = TARNet(**SMALL, device="cpu", random_state=0,
                         compile="cuda-graph").fit(X, Y, treatment=T)
    _same_fit(plain, graphed)


def test_a_failed_capture_warns_and_training_goes_on_eagerly(monkeypatch):
    plain = _fit(TARNet)
    log = _stand_in_capture(monkeypatch, fail=True)
    with pytest.warns(RuntimeWarning, match="capturing the training step as a CUDA "
                                            "graph failed.*training continues"):
        graphed = TARNet(**SMALL, device="cpu", random_state=0,
                         compile="cuda-graph").fit(X, Y, treatment=T)
    assert log["replays"] == 0
    _same_fit(plain, graphed)  # the batch whose capture failed was trained eagerly


def test_callbacks_see_each_replayed_steps_losses(monkeypatch):
    """A batch-end callback reads the losses of the step just replayed."""
    from causalnn.engine import Callback, Trainer

    seen = {}

    class Record(Callback):
        def on_batch_end(self, trainer, batch_index, losses):
            seen.setdefault(trainer.compile, []).append(float(losses["loss"].detach()))

    torch.manual_seed(0)
    X_t, y_t = torch.randn(200, 3), torch.randn(200)

    def fit(compile):
        net = torch.nn.Linear(3, 1)
        torch.nn.init.constant_(net.weight, 0.1)
        torch.nn.init.zeros_(net.bias)
        trainer = Trainer(loss_fn=lambda m, b: {"loss": ((m(b["X"]).squeeze(-1) - b["y"])
                                                         ** 2).mean()},
                          batch_size=32, max_epochs=3, patience=None, compile=compile,
                          generator=torch.Generator().manual_seed(0), callbacks=[Record()])
        return trainer.fit(net, {"X": X_t, "y": y_t})

    def without_times(history):
        return [{k: v for k, v in record.items() if k != "dur"} for record in history]

    log = _stand_in_capture(monkeypatch)
    assert without_times(fit(False)) == without_times(fit("cuda-graph"))
    assert log["replays"] > 0
    assert len(seen[False]) == 3 * 5 and seen[False] == seen["cuda-graph"]


def test_callbacks_that_keep_the_losses_see_every_step(monkeypatch):
    """A replay overwrites the graph's loss tensors: a callback that keeps them, to
    read once per epoch, must still see each step's own values."""
    from causalnn.engine import Callback, Trainer

    class Keep(Callback):
        def __init__(self):
            self.kept = []

        def on_batch_end(self, trainer, batch_index, losses):
            self.kept.append(losses["loss"].detach())

    torch.manual_seed(0)
    X_t, y_t = torch.randn(200, 3), torch.randn(200)

    def fit(compile):
        keep = Keep()
        net = torch.nn.Linear(3, 1)
        torch.nn.init.constant_(net.weight, 0.1)
        torch.nn.init.zeros_(net.bias)
        Trainer(loss_fn=lambda m, b: {"loss": ((m(b["X"]).squeeze(-1) - b["y"])
                                               ** 2).mean()},
                batch_size=32, max_epochs=3, patience=None, compile=compile,
                generator=torch.Generator().manual_seed(0), callbacks=[keep]).fit(
            net, {"X": X_t, "y": y_t})
        return [float(v) for v in keep.kept]

    log = _stand_in_capture(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert fit(False) == fit("cuda-graph")
    assert log["replays"] > 0


def test_a_capture_before_any_warm_up_step_is_refused(monkeypatch):
    """Created inside a capture, the optimizer state and the loss sums would be
    zeroed again at every replay: such a capture falls back to eager steps."""
    plain = _fit(TARNet)
    log = _stand_in_capture(monkeypatch)
    monkeypatch.setattr(graphs, "WARMUP_STEPS", 0)
    with pytest.warns(RuntimeWarning, match="before its optimizer state"):
        graphed = TARNet(**SMALL, device="cpu", random_state=0,
                         compile="cuda-graph").fit(X, Y, treatment=T)
    assert log["captures"] == 0
    _same_fit(plain, graphed)


def test_a_loss_that_draws_on_the_host_is_not_captured(monkeypatch):
    """Noise drawn by the fit's CPU generator (as CEVAE and DeepIV draw theirs) would
    be recorded once and replayed at every step: such a step is not captured."""
    from causalnn.engine import Trainer
    from causalnn.engine.random import draw_to_device

    torch.manual_seed(0)
    X_t, y_t = torch.randn(200, 3), torch.randn(200)

    def fit(compile):
        generator = torch.Generator().manual_seed(0)
        net = torch.nn.Linear(3, 1)
        torch.nn.init.constant_(net.weight, 0.1)
        torch.nn.init.zeros_(net.bias)

        def loss(m, b):
            noise = draw_to_device(torch.randn, b["y"].shape, generator=generator,
                                   device="cpu")
            return {"loss": ((m(b["X"]).squeeze(-1) - b["y"] - 0.1 * noise) ** 2).mean()}

        return Trainer(loss_fn=loss, batch_size=32, max_epochs=3, patience=None,
                       compile=compile, generator=generator).fit(net, {"X": X_t, "y": y_t})

    log = _stand_in_capture(monkeypatch)
    plain = fit(False)
    with pytest.warns(RuntimeWarning, match="random numbers on the host"):
        graphed = fit("cuda-graph")
    assert log["captures"] == 0
    assert ([r["train_loss"] for r in plain] == [r["train_loss"] for r in graphed])


@pytest.mark.parametrize("value", ["graph", "reduce-overhead", 2, None])
def test_unknown_compile_values_are_refused(value):
    with pytest.raises((ValueError, TypeError), match="compile"):
        TARNet(**SMALL, device="cpu", compile=value).fit(X, Y, treatment=T)
    with pytest.raises(ValueError, match="compile must be False, True or 'cuda-graph'"):
        trainer_module.Trainer(loss_fn=None, compile=value)


# ---- on a GPU ---------------------------------------------------------------------------
@pytest.mark.cuda
@pytest.mark.parametrize("cls, params, n_sizes", CASES, ids=IDS)
def test_cuda_graph_steps_are_captured_and_train_as_the_loop(monkeypatch, cls, params,
                                                             n_sizes):
    from causalnn.engine import graphs

    captured = []

    def counting(step, pool=None):
        captured.append(1)
        return graphs.capture_cuda_graph(step, pool=pool)

    monkeypatch.setattr(trainer_module, "capture_cuda_graph", counting)
    kw = dict(SMALL, device="cuda", random_state=0, max_epochs=10, **params)
    plain = cls(**kw).fit(X, Y, treatment=T)
    with warnings.catch_warnings():
        # a failed capture warns: fail on that warning, not on any RuntimeWarning
        warnings.filterwarnings("error", message="compile='cuda-graph'")
        graphed = cls(compile="cuda-graph", **kw).fit(X, Y, treatment=T)
    assert len(captured) == n_sizes
    # a failed capture must not leave its capture stream current in this thread
    assert torch.cuda.current_stream() == torch.cuda.default_stream()
    # the same batches and updates; float32 kernels may round differently
    np.testing.assert_allclose(graphed.effect(X, members=True),
                               plain.effect(X, members=True),
                               atol=1e-3 * np.std(Y), rtol=1e-3)


@pytest.mark.cuda
def test_cuda_graph_steps_in_bfloat16_train_close_to_the_loop():
    kw = dict(SMALL, device="cuda", random_state=0, max_epochs=20, precision="bfloat16")
    plain = TARNet(**kw).fit(X, Y, treatment=T)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="compile='cuda-graph'")
        graphed = TARNet(compile="cuda-graph", **kw).fit(X, Y, treatment=T)
    assert abs(graphed.ate(X) - plain.ate(X)) < 0.05 * np.std(Y)


@pytest.mark.cuda
def test_cuda_a_loss_that_syncs_falls_back_and_restores_the_stream():
    """A loss that reads a value on the host cannot be captured: the fit warns, trains
    eagerly as the loop does, and leaves the default stream current."""
    from causalnn.engine import Trainer

    def loss(m, b):
        value = ((m(b["X"]).squeeze(-1) - b["y"]) ** 2).mean()
        if value.item() > 1e9:  # host work: the capture fails
            value = value * 0.5
        return {"loss": value}

    def fit(compile):
        torch.manual_seed(0)
        net = torch.nn.Linear(3, 1)
        data = {"X": torch.randn(200, 3), "y": torch.randn(200)}
        Trainer(loss_fn=loss, batch_size=32, max_epochs=3, patience=None,
                compile=compile, device="cuda",
                generator=torch.Generator().manual_seed(0)).fit(net, data)
        return net.weight.detach().cpu()

    plain = fit(False)
    with pytest.warns(RuntimeWarning, match="training continues without graphs"):
        graphed = fit("cuda-graph")
    assert torch.cuda.current_stream() == torch.cuda.default_stream()
    torch.testing.assert_close(graphed, plain)
