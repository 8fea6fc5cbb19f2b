"""Device resolution, array conversion and batched inference."""
import numpy as np
import torch

__all__ = ["resolve_device", "loadable_device", "predict_in_batches", "prediction_chunk_rows",
           "to_tensor", "wait_for_gpu"]


def to_tensor(array, dtype):
    """``array`` as a CPU tensor of ``dtype``, sharing its memory when it is a writable
    array of that dtype. A read-only array (pandas' copy-on-write hands those out) is
    copied: torch would wrap it with a warning that writing to it is undefined."""
    array = np.asarray(array)
    if array.flags.writeable:
        return torch.as_tensor(array, dtype=dtype)
    return torch.tensor(array, dtype=dtype)


def _cuda_device_missing(device):
    """Why the CUDA ``device`` cannot be used on this machine, or ``None`` if it can."""
    if not torch.cuda.is_available():
        return "CUDA is not available here"
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        valid = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
        return (f"this machine has {count} CUDA device{'s' if count != 1 else ''} "
                f"({valid})")
    return None


def resolve_device(device):
    """Map the ``device`` parameter to a :class:`torch.device`.

    ``"auto"`` picks CUDA when it is available, else the CPU. Asking for CUDA on a
    machine without it, or for a GPU index the machine does not have (``"cuda:1"`` with
    one GPU), is an error rather than a silent fallback or a torch error later on.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a valid torch device: {exc}") from None
    if resolved.type == "cuda":
        missing = _cuda_device_missing(resolved)
        if missing is not None:
            raise ValueError(f"device={device!r} was requested but {missing}.")
    return resolved


def wait_for_gpu():
    """Wait until the GPU has finished the work queued so far, so that a wall-clock
    time includes it; a no-op where this process has not used CUDA.

    ``torch.cuda.synchronize`` alone would create a CUDA context in a process that has
    none, and on a GPU machine a benchmark would time that set-up (a quarter of a
    second) as the first CPU model's fit.
    """
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def loadable_device(device):
    """The device an unpickled fit made on ``device`` runs on here: ``device`` itself
    when this machine has it, else the CPU (a fit made on ``cuda:1`` loaded on a
    machine with one GPU or none)."""
    device = torch.device(device)
    if device.type == "cuda" and _cuda_device_missing(device) is not None:
        return torch.device("cpu")
    return device


def prediction_chunk_rows(device, floats_per_row):
    """Rows per prediction chunk on ``device`` for a network whose widest activation
    holds ``floats_per_row`` floats per row (members and any other copies of a row, such
    as posterior draws, counted in).

    A GPU gets ~2**26 floats per chunk: few launches and host syncs, with memory still
    bounded. A CPU gets ~2**19, activations that stay in its caches: on this project's
    2-core CPU, TARNet predicted 1.9 to 2.8 times faster in chunks of that size than of
    2**26 floats (``benchmarks/results/prediction_chunks_cpu.md``). As with any other
    grouping of rows, the chunk size can move predictions in the last float32 digits:
    a product over another number of rows may add up in another order.
    """
    floats = 2**26 if torch.device(device).type == "cuda" else 2**19
    return int(min(max(floats // max(int(floats_per_row), 1), 64), 2**20))


def predict_in_batches(fn, tensors, *, device, batch_size=65536, row_dim=0):
    """Apply ``fn`` to row-chunks of ``tensors`` (moved to ``device`` chunk by chunk).

    ``fn`` returns one tensor per call whose rows lie along ``row_dim`` (1 for outputs
    with a leading member axis); results are concatenated on the CPU as NumPy. Chunking
    keeps memory bounded for large inputs; inference runs without autograd.
    """
    n = tensors[0].shape[0]
    result = None
    with torch.no_grad():
        # zero rows still make one call, so the result has the output's other dimensions
        for start in range(0, max(n, 1), batch_size):
            chunk = [t[start:start + batch_size].to(device, non_blocking=True) for t in tensors]
            out = fn(*chunk).detach()
            if out.dtype in (torch.bfloat16, torch.float16):  # NumPy has no bfloat16
                out = out.float()
            out = out.cpu()
            if result is None:
                # one result, each chunk copied into its rows: a list of chunks joined by
                # torch.cat held the output twice, and its many small blocks kept the
                # freed activations' memory from going back to the system
                shape = list(out.shape)
                shape[row_dim] = n
                result = torch.empty(shape, dtype=out.dtype)
            result.narrow(row_dim, start, out.shape[row_dim]).copy_(out)
    return result.numpy()
