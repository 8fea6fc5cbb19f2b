"""The member axis: many independent models trained as one batched computation.

A *member module* (e.g. :class:`causalnn.nets.RepresentationNet` with ``n_members=M``)
stores every parameter member-major along its first dimension (see
:mod:`causalnn.nets.members`). The helpers here are everything the engine and the
estimators need on top of that rule.
"""
import copy
import numbers

import numpy as np
import torch

__all__ = ["bootstrap_counts", "member_mean", "member_rows", "per_member",
           "select_members"]


def member_rows(tensor, n_members):
    """View ``tensor`` as ``(n_members, -1)``: one row per member (member-major rule)."""
    if tensor.shape[0] % n_members:
        raise ValueError(
            f"a member parameter's first dimension must be a multiple of n_members="
            f"{n_members}; got shape {tuple(tensor.shape)}. Every parameter of a member "
            f"module must be stored member-major along dimension 0.")
    return tensor.reshape(n_members, -1)


def select_members(module, index, n_members):
    """A copy of a member module that keeps only the members in ``index``.

    Parameters
    ----------
    module : torch.nn.Module
        A member module with ``n_members`` members.
    index : sequence of int
    n_members : int

    Returns
    -------
    module : torch.nn.Module
        Same class and structure with ``len(index)`` members; every submodule's
        ``n_members`` attribute is updated.
    """
    index = torch.as_tensor(list(index), dtype=torch.long)
    new = copy.deepcopy(module)
    with torch.no_grad():
        for name, param in list(new.named_parameters()):
            param.data = _member_subset(param, index, n_members).clone()
    set_member_count(new, len(index))
    return new


def _member_subset(tensor, index, n_members):
    """The rows of the members in ``index`` (a long tensor) of a member-major
    ``tensor``, in its layout: ``(len(index) * k, ...)``."""
    rows = member_rows(tensor, n_members)[index.to(tensor.device)]
    return rows.reshape((tensor.shape[0] // n_members * len(index),)
                        + tuple(tensor.shape[1:]))


def set_member_count(module, n_members):
    """Record ``n_members`` in every submodule that holds a member count (the layers
    read it to shape their outputs), after its parameters were sliced to that many."""
    for sub in module.modules():
        if getattr(sub, "n_members", None) is not None:
            sub.n_members = n_members


def strata_masks(labels, n_rows):
    """One boolean row mask per stratum of ``labels`` (in sorted label order), or a
    single all-rows mask when ``labels`` is None: the strata that the validation split
    and the bootstrap both keep."""
    if labels is None:
        return [np.ones(n_rows, dtype=bool)]
    labels = np.asarray(labels)
    return [labels == v for v in np.unique(labels)]


def bootstrap_counts(n_members, n_rows, generator, device, rows=None, strata=None):
    """Per-member bootstrap resample as row counts, ``(n_members, n_rows)``.

    Each member draws ``n_rows`` rows with replacement; row ``i`` of member ``m`` is
    weighted by how often it was drawn. Counts (rather than gathered copies) keep every
    member on the same batches, so the members stay one batched computation.
    ``rows``, a ``(n_members, n_rows)`` 0/1 mask, restricts each member to its own rows
    (as many draws as it has rows), e.g. its own training rows. ``strata``
    ``(n_rows,)`` (e.g. the treatment arms) resamples within each stratum, as many
    draws as the stratum has rows: a member never loses a small arm by chance, which
    would leave that arm's head untrained while its effects still enter the ensemble.
    """
    for name, value in (("n_members", n_members), ("n_rows", n_rows)):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an int >= 1; got {value!r}.")
    if rows is not None and tuple(rows.shape) != (n_members, n_rows):
        raise ValueError(f"rows must have shape (n_members, n_rows) = ({n_members}, "
                         f"{n_rows}); got {tuple(rows.shape)}.")
    if strata is not None and np.shape(strata) != (n_rows,):
        raise ValueError(f"strata must have shape ({n_rows},), one label per row; got "
                         f"shape {np.shape(strata)}.")
    if rows is None and strata is None:  # one stratum of all rows: one draw per member
        draws = torch.randint(n_rows, (n_members, n_rows), generator=generator)
        counts = torch.zeros(n_members, n_rows, dtype=torch.float32)
        counts.scatter_add_(1, draws, torch.ones(n_members, n_rows, dtype=torch.float32))
        return counts.to(device)
    rows = (torch.ones(n_members, n_rows, dtype=torch.float32) if rows is None
            else rows.cpu())
    groups = [torch.from_numpy(mask) for mask in strata_masks(strata, n_rows)]
    counts = torch.zeros(n_members, n_rows, dtype=torch.float32)
    for m in range(n_members):
        for group in groups:
            own = torch.nonzero((rows[m] > 0) & group).squeeze(1)
            if len(own) == 0:
                continue
            drawn = own[torch.randint(len(own), (len(own),), generator=generator)]
            counts[m].scatter_add_(0, drawn, torch.ones(len(own), dtype=torch.float32))
    return counts.to(device)


def member_mean(per_row, batch):
    """Each member's mean of a per-row loss ``(n_members, batch) -> (n_members,)``,
    weighted by ``batch["member_weight"]`` (bootstrap counts, cross-fitting masks, a
    member's own validation split) when the engine passes it."""
    weight = batch.get("member_weight")
    if weight is not None:
        per_row = per_row * weight
    return per_row.mean(dim=-1)


_NOT_VMAPPABLE = set()


def per_member(fn, phi, *args, member_args=()):
    """``fn(phi[m], *args, *(a[m] for a in member_args))`` for every member, stacked to
    ``(n_members,)``.

    ``fn -> scalar`` is a per-batch term such as an IPM; ``phi`` and every tensor in
    ``member_args`` (e.g. each member's row weights) carry the member axis first, the
    ``args`` are shared. ``torch.vmap`` runs all members as one batched computation; a
    function that vmap cannot trace (data-dependent shapes, ``.item()``) falls back to a
    loop over members, remembered per function.
    """
    member_args = tuple(member_args)
    if fn not in _NOT_VMAPPABLE:
        in_dims = (0,) + (None,) * len(args) + (0,) * len(member_args)
        try:
            return torch.vmap(fn, in_dims=in_dims)(phi, *args, *member_args)
        except torch.cuda.OutOfMemoryError:
            # a transient failure, not a function vmap cannot trace: loop this once
            # (members one at a time need less memory), but remember nothing, or every
            # later fit of the process would take the loop, whose float32 round-off
            # differs from vmap's, and differ from the same fit in a fresh process
            pass
        except (RuntimeError, ValueError, NotImplementedError):
            if torch.cuda.is_available() and torch.cuda.is_current_stream_capturing():
                raise  # the capture failed, not vmap: nothing to remember about fn
            _NOT_VMAPPABLE.add(fn)
    return torch.stack([fn(p, *args, *(a[m] for a in member_args))
                        for m, p in enumerate(phi)])
