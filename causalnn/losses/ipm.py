"""Integral probability metrics between the representations of the two arms.

CFR (Shalit, Johansson, Sontag 2017) penalises ``IPM(Phi | t=0, Phi | t=1)``. Every
function here takes the whole batch ``phi`` (n, d), the 0/1 treatment ``t`` (n,) and
optional non-negative row weights ``weight`` (n,), and returns a scalar tensor. The
weights say which rows a member trains on and how often (a member's own training rows,
a cross-fitting fold's complement, bootstrap counts): each arm is then the weighted
distribution of its rows, rows of weight 0 take no part (not even in the bandwidth or
the Sinkhorn scale), and 0/1 weights give exactly the IPM of the weighted-in rows. The
weights' overall scale does not matter. The functions use masks and weights rather than
boolean indexing, never read a tensor's value on the host and never branch on one, so
shapes stay fixed: no host sync on a GPU, and ``torch.func.vmap`` maps them over a
stack of batches (a member axis).

The two MMDs are *unbiased* estimates of the squared MMD (U-statistics, Gretton et al.
2012, Lemma 6): the within-arm averages leave out the ``i = j`` pairs. The plug-in
(V-statistic) estimate adds ``(E k(x, x) - E k(x, x')) / n_a`` per arm, a bias that does
not vanish when the arms have the same distribution (64-row batches with 12 treated:
0.1 for the linear MMD on a unit-sphere representation) and whose gradient pulls each
arm's points together. An unbiased estimate can be slightly negative; it is not clipped,
since clipping would restore a bias. A batch in which an arm has fewer than two rows
contributes zero.
"""
import torch

__all__ = ["mmd_linear", "mmd_rbf", "wasserstein", "IPMS"]


def _check_weight(weight, t):
    """``weight`` must be None or a tensor of one value per row (a bandwidth or blur
    passed positionally, where ``weight`` now stands, would otherwise be misread)."""
    if weight is not None and (not isinstance(weight, torch.Tensor)
                               or weight.shape != t.shape):
        raise TypeError(
            f"weight must be None or a tensor of shape {tuple(t.shape)} (one weight per "
            f"row); got {type(weight).__name__} "
            f"{tuple(weight.shape) if isinstance(weight, torch.Tensor) else weight!r}. "
            f"Pass bandwidth, min_bandwidth, blur and n_iter by keyword.")


def _arm_masses(t, weight):
    """Each row's mass in the control and the treated arm, ``(control, treated)``."""
    _check_weight(weight, t)
    if weight is None:
        return 1.0 - t, t
    return (1.0 - t) * weight, t * weight


def _arm_weights(t, weight=None):
    """Per-row weights summing to one within each arm, and a 'both arms present' flag."""
    control, treated = _arm_masses(t, weight)
    n1, n0 = treated.sum(), control.sum()
    present = ((n1 > 0) & (n0 > 0)).to(t.dtype)
    tiny = torch.finfo(t.dtype).tiny
    return control / n0.clamp_min(tiny), treated / n1.clamp_min(tiny), present


def _unbiased_mmd2(t, total, diagonal, weight=None):
    """Squared-MMD U-statistic from kernel sums.

    ``total(a, b) = sum_ij a_i b_j k(x_i, x_j)`` for row-weight vectors ``a``, ``b``, and
    ``diagonal`` the (n,) values ``k(x_i, x_i)``. With row weights the within-arm
    averages are over pairs of distinct rows ``i != j`` weighted by ``a_i a_j``, which is
    the U-statistic of the weighted-in rows for 0/1 weights and invariant to the weights'
    scale. (A row's pairs with its own bootstrap copies are left out too: ``k(x_i, x_i)``
    says nothing about an arm's spread.)
    """
    control, treated = _arm_masses(t, weight)
    n0, n1 = control.sum(), treated.sum()
    # sum_{i != j} a_i a_j: n_a (n_a - 1) for unit weights
    pairs0 = n0 * n0 - control.pow(2).sum()
    pairs1 = n1 * n1 - treated.pow(2).sum()
    # at least two rows of positive weight in each arm (beyond the sums' round-off);
    # otherwise the term is 0, with denominators of 1 so nothing overflows
    enough = (pairs0 > 1e-6 * n0 * n0) & (pairs1 > 1e-6 * n1 * n1)
    one = torch.ones_like(n0)
    within0 = (total(control, control) - (control.pow(2) * diagonal).sum()) / torch.where(
        enough, pairs0, one)
    within1 = (total(treated, treated) - (treated.pow(2) * diagonal).sum()) / torch.where(
        enough, pairs1, one)
    between = total(control, treated) / torch.where(enough, n0 * n1, one)
    return enough.to(t.dtype) * (within0 + within1 - 2.0 * between)


def mmd_linear(phi, t, weight=None):
    """Unbiased estimate of ``||E[Phi | t=1] - E[Phi | t=0]||^2``, the *squared* MMD
    with the linear kernel ``k(a, b) = a'b``.

    Shalit et al. (2017) define the IPM as a supremum over a function family; over the
    unit ball of the linear kernel's RKHS that is the (unsquared) distance between the
    arm means. causalnn penalises its square, as the reference implementation's
    ``mmd2_lin`` does: the square has an unbiased estimate and a gradient that vanishes
    smoothly as the means meet, the distance has neither. ``alpha`` values tuned for one
    do not carry over to the other.

    Cost O(n d): the kernel sums are norms of arm sums, no n x n matrix is formed.
    """
    def total(a, b):
        return (a @ phi) @ (b @ phi)
    return _unbiased_mmd2(t, total, phi.pow(2).sum(1), weight)


def pairwise_sq_distances(phi):
    """``||phi_i - phi_j||^2`` for all pairs, with an exactly zero diagonal.

    Computed from coordinates centred on the batch mean, so the round-off is relative
    to the spread of the batch, not to the norm of the points: on a unit-sphere
    representation concentrated within 1e-4, ``|a|^2 + |b|^2 - 2 a'b`` on the raw
    coordinates (``torch.cdist``'s fast path) has round-off around 1e-7 against squared
    distances of 1e-8, the centred form around 1e-15.
    """
    centred = phi - phi.mean(0, keepdim=True)
    norms = centred.pow(2).sum(1)
    sq = (norms[:, None] + norms[None, :] - 2.0 * centred @ centred.T).clamp_min(0.0)
    off_diagonal = 1.0 - torch.eye(phi.shape[0], dtype=phi.dtype, device=phi.device)
    return sq * off_diagonal


def median_bandwidth(sq, min_bandwidth, weight=None):
    """Median heuristic ``sigma^2 = median_{i<j} ||phi_i - phi_j||^2`` (the lower
    median for an even number of pairs, as ``torch.median`` takes it), floored at
    ``min_bandwidth^2`` and held fixed for the gradient. The pairs come from a
    fixed-shape index (no data-dependent selection), so there is no host sync.

    With row weights it is the weighted median of the pairs, pair ``(i, j)`` weighted
    by ``w_i w_j``: for 0/1 weights, the (lower) median over the weighted-in pairs.
    """
    n = sq.shape[-1]
    rows, cols = torch.triu_indices(n, n, offset=1, device=sq.device)
    with torch.no_grad():
        values = sq[rows, cols]
        if weight is None:
            median = values.median()
        else:
            values, order = values.sort()
            cumulative = (weight[rows] * weight[cols])[order].cumsum(0)
            half = torch.full((1,), 0.5, dtype=values.dtype, device=values.device)
            at = torch.searchsorted(cumulative, half * cumulative[-1:])
            median = values.gather(0, at.clamp_max(len(values) - 1)).squeeze(0)
    return median.clamp_min(min_bandwidth ** 2)


def mmd_rbf(phi, t, weight=None, bandwidth=None, min_bandwidth=0.1):
    """Unbiased estimate of the squared MMD with the Gaussian kernel
    ``exp(-||a - b||^2 / (2 sigma^2))`` (U-statistic, Gretton et al. 2012).

    Parameters
    ----------
    weight : Tensor of shape (n,) or None, default=None
        Row weights (see the module docstring).
    bandwidth : float or None, default=None
        ``sigma``. ``None`` uses the median pairwise distance in the batch, held fixed
        for the gradient and floored at ``min_bandwidth``.
    min_bandwidth : float, default=0.1
        Floor of the median-heuristic ``sigma``, in representation units. Without it the
        bandwidth follows the batch as the representation concentrates and the gradient
        grows like ``1 / spread`` (on CFR's unit-sphere representation, pairwise
        distances range up to 2, so 0.1 bounds that growth at about 10x).
    """
    if bandwidth is not None and not bandwidth > 0:
        raise ValueError(f"bandwidth must be positive (or None for the median "
                         f"heuristic); got {bandwidth!r}.")
    n = phi.shape[0]
    if n < 2:  # a static shape, not a tensor value: fine under vmap
        return phi.sum() * 0.0
    _check_weight(weight, t)
    sq = pairwise_sq_distances(phi)
    if bandwidth is None:
        sigma2 = median_bandwidth(sq, min_bandwidth, weight)
    else:
        sigma2 = torch.as_tensor(bandwidth, dtype=phi.dtype, device=phi.device) ** 2
    k = torch.exp(-sq / (2.0 * sigma2))

    def total(a, b):
        return a @ k @ b
    return _unbiased_mmd2(t, total, torch.ones_like(t), weight)


def wasserstein(phi, t, weight=None, blur=0.1, n_iter=10):
    """Entropy-regularised Wasserstein-1 distance by log-domain Sinkhorn iterations
    (Cuturi 2013), as CFR-Wass uses.

    The transport plan is computed without gradient and the gradient flows through the
    cost matrix only, ``P`` per entry of ``C``, which is cheap and stable (as the
    reference implementation does). By the envelope theorem that is the gradient of the
    entropic objective ``<P, C> + eps KL(P | a b)`` at its optimum, not of the returned
    transport cost ``<P, C>`` (whose plan also moves with ``C``); the two differ by a
    few percent at ``blur=0.1``. This is the entropic plug-in distance, not an
    unbiased estimate (for Wasserstein none exists).

    Parameters
    ----------
    weight : Tensor of shape (n,) or None, default=None
        Row weights (see the module docstring): each arm's marginal is proportional to
        its rows' weights, and the mean distance that scales ``blur`` is weighted too, so
        a row of weight 2 acts exactly as two copies of it.
    blur : float, default=0.1
        Entropic regularisation as a fraction of the mean pairwise distance in the
        batch (close to, not the same as, the reference implementation's
        ``lambda = 10``, which scales by the mean treated-control distance; ``alpha``
        values therefore do not carry over exactly).
    n_iter : int, default=10
        Sinkhorn iterations, as in the reference implementation.
    """
    if not blur > 0:
        raise ValueError(f"blur must be positive; got {blur!r}.")
    if not (isinstance(n_iter, int) and n_iter >= 1):
        raise ValueError(f"n_iter must be an int >= 1; got {n_iter!r}.")
    w0, w1, present = _arm_weights(t, weight)
    # rows: control mass, columns: treated mass. From centred coordinates, as the RBF
    # term: torch.cdist's |a|^2 + |b|^2 - 2ab loses the distances of a concentrated
    # representation to float32 round-off. Below the floor (a row with itself, or
    # duplicates) the cost is 0 with a zero gradient, where sqrt's would be infinite.
    cost = pairwise_sq_distances(phi).clamp_min(1e-20).sqrt()
    with torch.no_grad():
        if weight is None:
            mean_cost = cost.mean()
        else:
            mean_cost = weight @ cost @ weight / weight.sum().pow(2).clamp_min(
                torch.finfo(phi.dtype).tiny)
        eps = (blur * mean_cost).clamp_min(1e-6)
        # only control -> treated pairs: a row of the other arm given a tiny mass
        # instead of none would offer its own column a zero-cost source, which an
        # unconverged Sinkhorn (small blur) takes
        source, target = w0 > 0, w1 > 0
        pair = source[:, None] & target[None, :]
        log_a = torch.log(torch.where(source, w0, torch.ones_like(w0)))
        log_b = torch.log(torch.where(target, w1, torch.ones_like(w1)))
        f = torch.zeros_like(w0)
        g = torch.zeros_like(w1)
        kernel = torch.where(pair, -cost / eps, torch.full_like(cost, -float("inf")))
        for _ in range(n_iter):
            f = torch.where(source, -torch.logsumexp(kernel + g[None, :] + log_b[None, :],
                                                     dim=1), torch.zeros_like(f))
            g = torch.where(target, -torch.logsumexp(kernel + f[:, None] + log_a[:, None],
                                                     dim=0), torch.zeros_like(g))
        plan = torch.where(pair, torch.exp(kernel + f[:, None] + g[None, :] + log_a[:, None]
                                           + log_b[None, :]), torch.zeros_like(cost))
    return present * (plan * cost).sum()


IPMS = {"mmd_linear": mmd_linear, "mmd_rbf": mmd_rbf, "wasserstein": wasserstein}
