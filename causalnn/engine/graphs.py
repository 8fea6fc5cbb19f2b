"""Whole training steps replayed as CUDA graphs (``Trainer(compile="cuda-graph")``).

At small batches a GPU waits on the host: one TARNet step at batch 8,192 launched about
146 kernels (1e6 rows, H200, ``benchmarks/results/profile_cuda.md``), and the kernels
kept the device busy 17% of the epoch. A CUDA graph records a step's kernels once and
replays them with a single launch. ``torch.compile(mode="reduce-overhead")``
(``compile=True``) graphs the forward pass and its backward, but the batch's gather,
the optimizer step and the loss sums still launch one by one. :class:`GraphedSteps`
captures all of it: gather the batch's rows from the data already on the device, the
forward pass and loss, the backward pass, the (fused, capturable) Adam step and the
epoch's running loss sums.

What a graph needs, and how the trainer provides it:

- *Fixed shapes and addresses.* A step reads its batch's row positions from a static
  index buffer, filled by one device-to-device copy before each replay. An epoch's
  batches come in at most two sizes (``tensor_split`` makes them differ by at most one
  row), so there is at most one graph per size; the two share one memory pool. The
  loss sums are static tensors, zeroed at each epoch's start and added to in place.
  Members that stop do not leave the batched computation (a new member count would
  need new graphs).
- *No host work in the step.* The loss must not read tensor values on the host
  (``.item()``, a Python ``if`` on a tensor: the capture fails, and training goes on
  without graphs, with a warning) nor draw random numbers on the host (they would be
  recorded once and replayed at every step: where the warm-up steps moved the fit's
  generator or torch's CPU generator, nothing is captured, with a warning). The
  representation estimators' losses (factual loss, IPMs on a fixed-size balanced
  sub-batch with a fixed number of Sinkhorn iterations, propensity and targeted terms)
  are such functions; estimators whose losses draw noise (CEVAE, DeepIV) do not offer
  the option.
- *Warm-up before capture.* As the PyTorch recipe for whole-network capture asks, the
  first steps of each batch size (:data:`WARMUP_STEPS`) run eagerly on a side stream;
  they are ordinary training steps, so no batch is seen twice, and they create the
  optimizer state and the loss sums (created inside a capture, their zero-filling would
  be replayed at every step: a capture without them is refused). Capture records a
  step without running it: the batch at which a graph is captured is then replayed.
- *One capture at a time.* Fits in threads of one process take turns to capture; a
  failed capture puts back the stream that was current (``torch.cuda.graph`` leaves
  its capture stream current when ending the capture raises).

A graph writes every replay's losses into the same tensors: the batch-end callbacks of
the caller's own receive copies (one small kernel per term), so that one that keeps
them sees each step's values. At the end of the fit the parameters' gradients, which
point into the last graph's memory, are cleared.

Every batch is trained on once per epoch, in the order the generator drew, as without
graphs. On the CPU the same static steps run without capture (``capture=None``), which
gives the results of the ordinary loop to the bit; the tests use that, with a stand-in
capture that records a step and runs it at each replay, to check the bookkeeping.
"""
import contextlib
import threading

import torch

from .._warnings import warn_at_caller
from .callbacks import Callback

__all__ = ["GraphedSteps", "WARMUP_STEPS", "capture_cuda_graph"]

#: eager steps of each batch size before its graph is captured (the PyTorch recipe for
#: whole-network capture warms up with a few real iterations on a side stream)
WARMUP_STEPS = 3

# one capture at a time in the process (torch.cuda.graph captures on one class-level
# side stream, and only one capture may be underway per process): fits run in threads
# (run_benchmark(backend="threading")) take turns to capture, not to replay
_CAPTURE_LOCK = threading.Lock()


def capture_cuda_graph(step, pool=None):
    """Record ``step()`` (which runs on the device and returns its losses) as a CUDA
    graph, without running it. Returns ``(graph, losses)``: ``graph.replay()`` runs the
    recorded kernels, writing the step's results into ``losses``' tensors. ``pool``
    (another graph's ``pool()``) shares that graph's private memory: safe for graphs
    that are never replayed at the same time."""
    graph = torch.cuda.CUDAGraph()
    stream = torch.cuda.current_stream()
    with _CAPTURE_LOCK:
        try:
            # "thread_local": the trainer's draw-ahead thread may pin host memory
            # meanwhile (a call that the default "global" mode refuses in every thread
            # during a capture)
            with torch.cuda.graph(graph, pool=pool, capture_error_mode="thread_local"):
                losses = step()
        except BaseException:
            # torch.cuda.graph.__exit__ calls capture_end() before it restores the
            # stream: when the capture was invalidated (a sync in the loss) capture_end
            # raises and its capture stream stays current in this thread, for the rest
            # of the process
            torch.cuda.set_stream(stream)
            raise
    return graph, losses


class GraphedSteps:
    """The training steps of one fit, each batch size's step captured once and replayed.

    Parameters
    ----------
    trainer : Trainer
        Supplies the step (``_train_step``) of its ordinary loop.
    data : tuple
        The training split as the trainer holds it (``shared, members, rows``).
    optimizer : torch.optim.Optimizer
        With ``capturable=True`` where the steps are captured.
    capture : callable or None
        ``capture(step, pool=None) -> (graph, losses)``: :func:`capture_cuda_graph` on a
        GPU (``pool``: an earlier graph's memory pool, to share). None
        runs the static steps eagerly (the CPU), with no warm-up.

    Attributes
    ----------
    totals : dict of str to Tensor
        The epoch's running sum of each loss term (times the batch's rows), in place.
    graphs : dict of int to object
        The captured step of each batch size.
    """

    def __init__(self, trainer, data, optimizer, capture=None):
        self.trainer = trainer
        self.data = data
        self.optimizer = optimizer
        self.capture = capture
        self.totals = {}
        self.graphs = {}
        self._index = {}  # batch size -> its static index buffer
        self._losses = {}  # batch size -> the captured step's loss tensors
        self._eager = {}  # batch size -> eager steps run so far
        self._stream = None
        self._draws_on_host = False  # the warm-up steps drew host random numbers
        # callbacks of the caller's own that read a step's losses (see _handed)
        self._copy_losses = any(type(cb).on_batch_end is not Callback.on_batch_end
                                for cb in trainer.callbacks)

    def start_epoch(self):
        for total in self.totals.values():
            total.zero_()

    def __call__(self, positions):
        """Train on the batch of ``positions`` (a device tensor of positions in the
        training split); return its losses."""
        size = len(positions)
        if size in self.graphs:
            self._index[size].copy_(positions)
            self.graphs[size].replay()
            return self._handed(self._losses[size], static=True)
        if self.capture is None:
            index = self._index.get(size)
            if index is None:
                index = self._index[size] = torch.empty_like(positions)
            index.copy_(positions)
            return self._step(index)
        if self._eager.get(size, 0) < WARMUP_STEPS:
            self._eager[size] = self._eager.get(size, 0) + 1
            generators = self._host_generators()
            before = [g.get_state() for g in generators]
            with self._side_stream():
                losses = self._step(positions)
            # a graph would replay the numbers drawn at its capture at every step
            self._draws_on_host |= any(not torch.equal(state, g.get_state())
                                       for state, g in zip(before, generators))
            return self._handed(losses)
        index = self._index[size] = torch.empty_like(positions)
        try:
            self._check_warmed_up()
            # the batch sizes' graphs share one memory pool: they never run at once
            pool = next(iter(self.graphs.values())).pool() if self.graphs else None
            graph, losses = self.capture(lambda: self._step(index), pool=pool)
        except Exception as error:  # noqa: BLE001 - any failure: train without graphs
            self._give_up(error)
            return self._handed(self._step(positions))
        self.graphs[size], self._losses[size] = graph, losses
        # capture recorded the step without running it: run it now, on this batch
        index.copy_(positions)
        graph.replay()
        # the same tensors, detached: the captured autograd graph (and the parameters'
        # AccumulateGrad nodes, tagged with the capture stream) is not kept alive for
        # the rest of the fit
        for k, v in list(losses.items()):
            losses[k] = v.detach()
        return self._handed(losses, static=True)

    def _handed(self, losses, static=False):
        """The losses handed to the batch-end callbacks, detached (a step's autograd
        graph, kept alive, keeps the parameters' AccumulateGrad nodes and the stream
        they ran on into the next step and its capture). A graph writes every replay's
        losses into the same tensors (``static``), so a callback that keeps them to read
        once per epoch would see the last replay's values only: where a callback of the
        caller's own reads them, each replay's are copies (one small kernel per term)."""
        if static and self._copy_losses:
            return {k: v.detach().clone() for k, v in losses.items()}
        return {k: v.detach() for k, v in losses.items()}

    def _check_warmed_up(self):
        """A capture needs what the eager warm-up creates: each parameter's optimizer
        state and a running sum of every loss term. Created inside a capture, their
        zero-filling would be recorded and replayed at every step."""
        params = [p for group in self.optimizer.param_groups for p in group["params"]
                  if p.grad is not None]
        if not self.totals or any(not self.optimizer.state.get(p) for p in params):
            raise RuntimeError("the step was captured before its optimizer state and "
                               "loss sums existed (no eager warm-up step)")
        if self._draws_on_host:
            raise RuntimeError("the loss draws random numbers on the host (from the "
                               "fit's generator or torch's CPU generator), which a "
                               "graph would replay unchanged at every step")

    def _host_generators(self):
        """The host generators a loss may draw from: the fit's own and torch's."""
        own = self.trainer.generator
        return [own] + ([torch.default_generator]
                        if own is not torch.default_generator else [])

    def _step(self, index):
        return self.trainer._train_step(self.data, index, self.optimizer, self.totals)

    @contextlib.contextmanager
    def _side_stream(self):
        if not torch.cuda.is_available() or self.trainer.device.type != "cuda":
            yield
            return
        if self._stream is None:
            self._stream = torch.cuda.Stream(device=self.trainer.device)
        current = torch.cuda.current_stream(self.trainer.device)
        self._stream.wait_stream(current)
        with torch.cuda.stream(self._stream):
            yield
        current.wait_stream(self._stream)

    def _give_up(self, error):
        """A capture failed (the loss did host work, the device does not support it):
        drop the graphs and train on eagerly, saying so."""
        warn_at_caller(
            f"compile='cuda-graph': capturing the training step as a CUDA graph failed "
            f"({type(error).__name__}: {error}); training continues without graphs.",
            RuntimeWarning)
        self.capture = None
        self.graphs.clear()
        self._losses.clear()
        self._index.clear()
        for group in self.optimizer.param_groups:
            for param in group["params"]:
                param.grad = None  # they pointed into the failed capture's memory
