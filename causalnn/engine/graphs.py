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
  row), so there is at most one graph per size. The loss sums are static tensors,
  zeroed at each epoch's start and added to in place. Members that stop do not leave
  the batched computation (a new member count would need new graphs).
- *No host work in the step.* The loss must not read tensor values on the host
  (``.item()``, a Python ``if`` on a tensor: the capture fails, and training goes on
  without graphs, with a warning) nor draw random numbers on the host (they would be
  recorded once and replayed at every step). The representation estimators' losses
  (factual loss, IPMs on a fixed-size balanced sub-batch with a fixed number of Sinkhorn
  iterations, propensity and targeted terms) are such functions; estimators whose losses
  draw noise (CEVAE, DeepIV) do not offer the option.
- *Warm-up before capture.* As the PyTorch recipe for whole-network capture asks, the
  first steps of each batch size (:data:`WARMUP_STEPS`) run eagerly on a side stream;
  they are ordinary training steps, so no batch is seen twice. Capture records a step
  without running it: the batch at which a graph is captured is then replayed.

Every batch is trained on once per epoch, in the order the generator drew, as without
graphs. On the CPU the same static steps run without capture (``capture=None``), which
gives the results of the ordinary loop to the bit; the tests use that, with a stand-in
capture that records a step and runs it at each replay, to check the bookkeeping.
"""
import contextlib
import warnings

import torch

__all__ = ["GraphedSteps", "WARMUP_STEPS", "capture_cuda_graph"]

#: eager steps of each batch size before its graph is captured (the PyTorch recipe for
#: whole-network capture warms up with a few real iterations on a side stream)
WARMUP_STEPS = 3


def capture_cuda_graph(step):
    """Record ``step()`` (which runs on the device and returns its losses) as a CUDA
    graph, without running it. Returns ``(graph, losses)``: ``graph.replay()`` runs the
    recorded kernels, writing the step's results into ``losses``' tensors."""
    graph = torch.cuda.CUDAGraph()
    # "thread_local": the trainer's draw-ahead thread may pin host memory meanwhile
    # (a call that the default "global" mode refuses in every thread during a capture)
    with torch.cuda.graph(graph, capture_error_mode="thread_local"):
        losses = step()
    return graph, losses


class GraphedSteps:
    """The training steps of one fit, each batch size's step captured once and replayed.

    Parameters
    ----------
    trainer : Trainer
        Supplies the batch (``_batch``), the losses (``_losses``) and the in-place sums
        (``_accumulate``), as in its ordinary loop.
    data : tuple
        The training split as the trainer holds it (``shared, members, rows``).
    optimizer : torch.optim.Optimizer
        With ``capturable=True`` where the steps are captured.
    capture : callable or None
        ``capture(step) -> (graph, losses)``: :func:`capture_cuda_graph` on a GPU. None
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
            return self._losses[size]
        if self.capture is None:
            index = self._index.setdefault(size, torch.empty_like(positions))
            index.copy_(positions)
            return self._step(index)
        if self._eager.get(size, 0) < WARMUP_STEPS:
            self._eager[size] = self._eager.get(size, 0) + 1
            with self._side_stream():
                return self._step(positions)
        index = self._index[size] = torch.empty_like(positions)
        try:
            graph, losses = self.capture(lambda: self._step(index))
        except Exception as error:  # noqa: BLE001 - any failure: train without graphs
            self._give_up(error)
            return self._step(positions)
        self.graphs[size], self._losses[size] = graph, losses
        # capture recorded the step without running it: run it now, on this batch
        index.copy_(positions)
        graph.replay()
        return losses

    def _step(self, index):
        trainer = self.trainer
        self.optimizer.zero_grad(set_to_none=True)
        losses = trainer._losses(trainer._batch(self.data, index))
        if trainer.n_members is not None:
            trainer._check_member_loss(losses)
        losses["loss"].backward()
        self.optimizer.step()
        trainer._accumulate(self.totals, losses, len(index))
        return losses

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
        warnings.warn(
            f"compile='cuda-graph': capturing the training step as a CUDA graph failed "
            f"({type(error).__name__}: {error}); training continues without graphs.",
            RuntimeWarning, stacklevel=2)
        self.capture = None
        self.graphs.clear()
        self._losses.clear()
        self._index.clear()
        for group in self.optimizer.param_groups:
            for param in group["params"]:
                param.grad = None  # they pointed into the failed capture's memory
