"""Seeding through ``random_state``: an int or a ``RandomState`` seeds the fit's own
generators and no global seed is read or changed; ``None`` draws the seed from NumPy's
global ``RandomState``, as scikit-learn's ``check_random_state`` does."""
import threading

import torch
from sklearn.utils import check_random_state

__all__ = ["PermutationAhead", "draw_to_device", "make_generator", "spawn_generator"]


def make_generator(random_state):
    """Derive a CPU :class:`torch.Generator` from an sklearn-style ``random_state``.

    The generator drives weight initialisation, the validation split and the batch order,
    so a fixed ``random_state`` makes CPU fits bit-for-bit repeatable. It lives on the CPU
    so that a CPU and a GPU fit start from identical weights and see identical batches.
    """
    rng = check_random_state(random_state)
    seed = int(rng.randint(0, 2**31 - 1))
    return torch.Generator(device="cpu").manual_seed(seed)


def spawn_generator(generator):
    """A new CPU generator seeded by one draw from ``generator``.

    Estimators spawn the stream of the validation split and the batch order *before*
    they draw their initial weights: fits from one ``random_state`` then hold out the
    same rows whatever the network's size, so their validation losses compare (model
    selection by validation loss), and the weights of each size stay repeatable.
    """
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    return torch.Generator(device="cpu").manual_seed(seed)


def draw_to_device(draw, shape, *, generator, device, dtype=None):
    """``draw(shape)`` from ``generator`` on the generator's device, placed on ``device``
    without a host sync.

    Noise for a fit on the GPU is drawn by the fit's CPU generator, so that a CPU and a
    GPU fit see the same random numbers. Moved with a plain ``.to(device)``, a CPU tensor
    in pageable memory is copied to CUDA by a copy followed by a stream synchronisation:
    the host waits for every queued kernel, once per training step, and can no longer
    queue steps ahead of the GPU. Drawn into pinned (page-locked) memory, the copy is
    asynchronous (``non_blocking=True``); the caching host allocator keeps the pinned
    block until the copy has run. Pinning needs CUDA, so it is done only for a CUDA
    ``device``; for a CPU ``device`` the draw is the same as ``draw(shape,
    generator=generator)`` and nothing is copied.

    Parameters
    ----------
    draw : callable
        A torch sampler taking ``generator``, ``device``, ``dtype`` and ``pin_memory``:
        ``torch.randn``, ``torch.rand`` or ``torch.randperm``.
    shape : tuple of int, or int for ``torch.randperm``
        Shape of the draw (``randperm``: the number of items permuted).
    generator : torch.Generator
        The stream drawn from; the numbers are made on its device.
    device : torch.device
        Where the draw is used.
    dtype : torch.dtype, default=None
        The draw's dtype (``None``: torch's default float type).

    Returns
    -------
    values : torch.Tensor
        The draw, on ``device``.
    """
    source = generator.device
    on_host = source.type == "cpu"
    values = draw(shape, generator=generator, device=source, dtype=dtype,
                  pin_memory=on_host and torch.device(device).type == "cuda")
    # a copy from the host's memory may return before it has run; one back to the host
    # may not (the values could be read before they arrive)
    return values.to(device, non_blocking=on_host)


class PermutationAhead:
    """The next ``torch.randperm(n)`` of a CPU ``generator``, drawn in a background
    thread from a copy of its state, for a caller that will draw it later.

    A fit on the GPU draws each epoch's batch order on the host (the fit's CPU
    generator; see :func:`draw_to_device`), and the GPU waits for it: ``randperm`` of
    10 million rows took 0.29 s on this project's CPU, where an H200 trained a
    bfloat16 TARNet epoch of that many rows at batch 262,144 in 0.56 s. Drawn ahead,
    while the host queues the current epoch and the GPU runs it, the permutation is
    ready when the next epoch begins (that epoch then took 0.33 s:
    ``benchmarks/results/throughput_cuda_1e7.md``).

    Nothing changes in what the caller gets: :meth:`take` returns the draw only if the
    generator is still in the state the copy was made from (nothing else drew from it
    in the meantime, e.g. a loss sharing the generator) and ``n`` is the same, and then
    moves the generator on as the draw itself would have. Otherwise it returns ``None``
    and the caller draws as usual. A draw that is never taken leaves the generator
    untouched.

    Parameters
    ----------
    generator : torch.Generator
        A CPU generator; it is only read here.
    n : int
        The number of items permuted.
    pin_memory : bool
        Draw into page-locked memory, for an asynchronous copy to a GPU.
    """

    def __init__(self, generator, n, *, pin_memory):
        self.n = n
        self._start = generator.get_state()
        copy = torch.Generator(device="cpu")
        copy.set_state(self._start)
        self._result = None
        self._thread = threading.Thread(target=self._draw, args=(copy, n, pin_memory),
                                        name="causalnn-permutation-ahead", daemon=True)
        self._thread.start()

    def _draw(self, copy, n, pin_memory):
        try:
            values = torch.randperm(n, generator=copy, device="cpu", pin_memory=pin_memory)
            self._result = (values, copy.get_state())
        except BaseException:  # noqa: BLE001 - the caller then draws as usual
            self._result = None

    def take(self, generator, n):
        """The permutation, with ``generator`` moved past it, or ``None`` (see above)."""
        self._thread.join()
        if (self._result is None or n != self.n
                or not torch.equal(generator.get_state(), self._start)):
            return None
        values, end = self._result
        generator.set_state(end)
        return values

    def discard(self):
        """Wait for the thread (so that no draw outlives its fit) and drop the result."""
        self._thread.join()
        self._result = None
