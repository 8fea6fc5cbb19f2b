"""Device resolution and batched inference."""
import torch

__all__ = ["resolve_device", "predict_in_batches"]


def resolve_device(device):
    """Map the ``device`` parameter to a :class:`torch.device`.

    ``"auto"`` picks CUDA when it is available, else the CPU. Asking for CUDA on a
    machine without it is an error rather than a silent fallback.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a valid torch device: {exc}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available here.")
    return resolved


def predict_in_batches(fn, tensors, *, device, batch_size=65536, row_dim=0):
    """Apply ``fn`` to row-chunks of ``tensors`` (moved to ``device`` chunk by chunk).

    ``fn`` returns one tensor per call whose rows lie along ``row_dim`` (1 for outputs
    with a leading member axis); results are concatenated on the CPU as NumPy. Chunking
    keeps memory bounded for large inputs; inference runs without autograd.
    """
    n = tensors[0].shape[0]
    outputs = []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            chunk = [t[start:start + batch_size].to(device, non_blocking=True) for t in tensors]
            out = fn(*chunk).detach()
            if out.dtype in (torch.bfloat16, torch.float16):  # NumPy has no bfloat16
                out = out.float()
            outputs.append(out.cpu())
    return torch.cat(outputs, dim=row_dim).numpy()
