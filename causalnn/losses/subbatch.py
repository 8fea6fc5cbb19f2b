"""A fixed-size, balanced sub-batch for pairwise penalties on large batches.

The RBF-MMD and Sinkhorn-Wasserstein IPMs compare every pair of rows: O(batch^2) time and
memory. On large tables (batches of 10^4 to 10^5 rows on a GPU) that term would dominate
the step, so CFR computes it on a sub-batch of at most ``size`` rows, half from each arm
(fewer when the batch has fewer): an unbiased stand-in for the arms' distributions that
costs O(size^2) however large the batch. The factual loss still uses every row.

The sub-batch is chosen without randomness of its own and without a host sync: the
batch's rows are already in random order, so the first ``size // 2`` rows of each arm (in
batch order) are a random sample of that arm. Shapes are fixed, so it works under
``torch.vmap`` and CUDA graphs.
"""
import torch

__all__ = ["balanced_subbatch"]


def balanced_subbatch(phi, t, size, weight=None):
    """Rows of ``phi`` (``(..., n, d)``), ``t`` (``(n,)``) and the row weights
    ``weight`` (``(..., n)``, optional) for a balanced sub-batch.

    Parameters
    ----------
    phi : Tensor of shape (..., n, d)
        Representations; leading axes (e.g. members) are kept.
    t : Tensor of shape (n,)
        0/1 treatment.
    size : int
        Rows in the sub-batch; ``n <= size`` returns the inputs unchanged.
    weight : Tensor of shape (..., n) or None, default=None
        Per-member row weights (the IPMs' ``weight``), sub-sampled with the rows.

    Returns
    -------
    phi_sub : Tensor of shape (..., size, d)
    t_sub : Tensor of shape (size,)
    weight_sub : Tensor of shape (..., size) or None
        ``None`` when the batch is returned unchanged. Otherwise the row weights, 0 for
        the repeats: when an arm has fewer than ``size // 2`` rows in the batch, its rows
        fill its half cyclically (fixed shapes), and a repeat weighted 0 takes no part
        in the IPM, so the MMDs' within-arm pairs stay pairs of distinct rows (a repeat
        would pair a row with itself, the bias of a V-statistic). When an arm is absent
        the sub-batch holds one arm only and the IPM is zero, as for the whole batch.
    """
    n = t.shape[0]
    if n <= size:
        return phi, t, weight
    half = size // 2
    order = torch.argsort(t, stable=True)  # control rows first, each arm in batch order
    n_control = (t == 0).sum()
    n_treated = n - n_control
    steps = torch.arange(half, device=t.device)
    control = steps % n_control.clamp_min(1)
    treated = n_control + steps % n_treated.clamp_min(1)
    rows = order[torch.cat([control, treated]).clamp_max(n - 1)]
    first = torch.cat([steps < n_control, steps < n_treated]).to(phi.dtype)
    phi_sub = phi.index_select(-2, rows)
    if weight is None:
        weight_sub = first.expand(phi_sub.shape[:-1])
    else:
        weight_sub = weight.index_select(-1, rows) * first
    return phi_sub, t[rows], weight_sub
