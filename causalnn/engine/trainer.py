"""The one training engine shared by every causalnn estimator.

An estimator hands the :class:`Trainer` a module, a dict of equal-length tensors and a
``loss_fn(module, batch) -> dict[str, Tensor]`` (the dict holds the scalar ``"loss"`` to
minimise and any named terms worth logging). The trainer owns everything else: the
validation split, batching, the optimizer, early stopping, device placement, divergence
checks and the history. Models never contain a training loop.

The member axis
---------------
``Trainer(n_members=M)`` trains M independent copies of a model as one batched
computation: an ensemble, bootstrap replicates, or M datasets of the same shape (e.g. the
replications of a benchmark). Adopting it takes three things:

1. A *member module*: every parameter stored member-major along its first dimension
   (``p.shape[0]`` a multiple of M; member m owns ``p[m*k:(m+1)*k]``). Build networks
   from :class:`causalnn.nets.MemberLinear` (``MLP(..., n_members=M)``,
   ``RepresentationNet(..., n_members=M)``) and give scalar parameters a ``(M,)`` shape.
   Activations then carry a leading member axis ``(M, batch, width)``.
2. ``loss_fn`` returns, besides ``"loss"``, ``"member_loss"``: the ``(M,)`` losses of the
   members, with ``"loss" = member_loss.sum()``. Summing (not averaging) keeps each
   member's gradient equal to that of its own loss, so members never mix; Adam is
   elementwise, so each member is optimised exactly as if alone. Per-row terms take
   ``batch["member_weight"]`` ``(M, batch)`` into account when it is present (bootstrap
   resample counts, cross-fitting masks, a member's own validation split; the engine
   scales each member's weights to mean 1 over the split, so that a member's loss has
   the scale of a lone fit's on its rows). Per-batch
   terms such as an IPM map over the member axis with
   :func:`causalnn.engine.per_member`.
3. Data that differs per member (e.g. the outcomes of M datasets) goes in
   ``fit(..., member_data={"y": (M, n) tensor})``; batches index its dimension 1.
   Everything else (``X``, the treatment) is shared and computed once per batch.

Each member then gets its own initial weights (drawn from the generator member by
member), its own row weights or resample (``bootstrap=True``), its own validation loss,
its own early stopping and its own best weights (with ``member_validation="own"`` also
its own validation rows). Training ends when every member has stopped improving, so a
batched fit runs as many epochs as its slowest member. A member that has stopped takes
no new best, so its restored weights are those of a lone fit of it; with
``compact_members=True`` it also leaves the batched computation (below), otherwise it
keeps training alongside. The history records the
members' mean loss as ``train_loss`` / ``valid_loss`` and the per-member losses as
``train_member_loss`` / ``valid_member_loss``; a named term that ``loss_fn`` returns
per member (shape ``(M,)``) is recorded the same way (``train_<term>``, the mean, and
``train_member_<term>``), so that the members of one dataset can be told apart from
those of another.

Members that stop leave
-----------------------
With ``compact_members=True`` the engine slices the members that have run out of
patience out of the module, their optimizer state and their ``member_data`` at the end
of that epoch, so the remaining epochs compute only the members still training; at the
end of training the module is whole again, every member holding its best weights. A
20-member bootstrap TARNet on IHDP spent half of its member-epochs on members that had
already stopped. The members still training compute what they computed before (same
batches, same weights, same optimizer state) up to round-off: a batched matrix product
may split its work differently for another member count (on IHDP one member's
validation loss moved in its 8th digit, its effects by 3e-6). That holds provided
``loss_fn`` draws no random numbers shaped by the member count (e.g. noise of shape
``(M, batch, d)``): estimators whose losses do (CEVAE) leave it off. In the history, a member that has left records
NaN, and the means are over the members still training. Callbacks see the module as it
is: from an epoch's end on, it may hold fewer members (``trainer.active_members`` lists
which, by their index among all).

Speed: the data is moved to the device once and batches are indexed there; loss terms
are accumulated on the device and read back once per epoch (no host sync per step); on
a GPU the next epoch's batch order is drawn on the host while the current epoch runs
(:class:`~causalnn.engine.random.PermutationAhead`: the same numbers, drawn earlier;
from 32,768 training rows on);
Adam runs fused, on CUDA and (torch >= 2.4) on the CPU, where at batch 64 torch's
per-parameter Adam was a quarter of TARNet's step; ``precision="bfloat16"`` computes
the forward pass under autocast.

Precision
---------
With ``precision="bfloat16"`` the trainer calls ``loss_fn`` under ``torch.autocast``:
the networks' matrix products run in bfloat16 and their outputs are bfloat16 (8 bits of
mantissa, a relative precision of 2^-8). The weights, the gradients' accumulation into
them and the optimizer state stay float32, and so must every loss term: a per-row loss
against float32 targets (the outcome, the treatment) is promoted to float32 by its first
operation with them, and the epoch means are accumulated in float32. A term computed
from the outputs alone, such as CFR's IPM (a small difference of kernel means, of the
order of the round-off itself in bfloat16), is computed with :func:`float32_term`.
"""
import math
import numbers
import time

import numpy as np
import torch

from ..exceptions import ConvergenceWarning, StopTraining, TrainingDivergedError
from .._warnings import warn_at_caller
from .callbacks import EarlyStopping, ProgressBar
from .members import (_member_subset, bootstrap_counts, member_rows, set_member_count,
                      strata_masks)
from .graphs import GraphedSteps, capture_cuda_graph
from .random import PermutationAhead, draw_to_device

__all__ = ["Trainer", "float32_term", "stratified_split"]

#: devices whose fits draw the next epoch's batch order ahead, in a background thread
#: (on a CPU fit the thread would compete with the fit for the same cores), and the
#: fewest training rows for which they do: starting the thread and checking the
#: generator's state took about 80 us per epoch on a CPU, what ``randperm`` of some
#: 25,000 rows takes (4 us for IHDP's 672, 0.3 ms for 100,000)
_DRAW_AHEAD_ON = {"cuda"}
_DRAW_AHEAD_MIN_ROWS = 32768

#: devices on which ``compile="cuda-graph"`` captures the training steps as graphs
#: (elsewhere the same static steps run without capture; tests widen it with a
#: stand-in capture)
_CAPTURE_ON = {"cuda"}

# torch >= 2.4 has a fused Adam/AdamW for CPU tensors
_FUSED_ADAM_ON_CPU = tuple(int(p) for p in torch.__version__.split(".")[:2]) >= (2, 4)


def float32_term(fn, *args):
    """``fn(*args)`` in float32 with autocast off, for loss terms too fragile for
    bfloat16 (``precision="bfloat16"``).

    Floating-point tensors among ``args`` are cast to float32 (the cast is part of the
    graph, so the gradient flows back into the bfloat16 activations); other arguments
    pass unchanged. Without autocast this is ``fn(*args)`` on float32 inputs.
    """
    args = [a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
            for a in args]
    device_type = next((a.device.type for a in args if isinstance(a, torch.Tensor)),
                       "cpu")
    with torch.autocast(device_type, enabled=False):
        return fn(*args)


def stratified_split(n_samples, fraction, generator, stratify=None):
    """Split ``range(n_samples)`` into (train, valid) index tensors.

    Each stratum (e.g. each treatment arm) gives ``round(fraction * size)`` rows, at least
    one when ``fraction > 0`` and the stratum has two rows or more, so both arms appear in
    the validation set.
    """
    if (not isinstance(fraction, numbers.Real) or isinstance(fraction, bool)
            or not 0 <= fraction < 1):
        raise ValueError(f"fraction must be a number in [0, 1), the share of rows held "
                         f"out; got {fraction!r}.")
    if fraction == 0:
        return torch.arange(n_samples), torch.arange(0)
    if stratify is not None:
        _check_strata(stratify, n_samples)
    groups = [torch.from_numpy(np.flatnonzero(mask))
              for mask in strata_masks(stratify, n_samples)]
    train, valid = [], []
    for group in groups:
        perm = group[torch.randperm(len(group), generator=generator)]
        n_valid = int(round(fraction * len(group)))
        if len(group) >= 2:
            n_valid = min(max(n_valid, 1), len(group) - 1)
        else:
            n_valid = 0
        valid.append(perm[:n_valid])
        train.append(perm[n_valid:])
    return torch.sort(torch.cat(train)).values, torch.sort(torch.cat(valid)).values


def _check_strata(stratify, n):
    """Refuse ``stratify`` that is not a labelling of the ``n`` rows into strata."""
    labels = np.asarray(stratify)
    if labels.shape != (n,):
        raise ValueError(f"stratify must have shape ({n},), one label per row; got "
                         f"shape {labels.shape}.")
    if labels.dtype.kind in "fc" and not np.all(np.isfinite(labels)):
        raise ValueError("stratify holds NaN or infinite labels: a row without a "
                         "stratum would never be drawn or held out.")
    if len(np.unique(labels)) > max(2, n // 2):
        raise ValueError(
            f"stratify has {len(np.unique(labels))} distinct values for {n} rows: pass "
            f"a few labels (e.g. the treatment arms), not continuous values; every row "
            f"would be its own stratum.")


def _weights_of_mean_one(part):
    """``(shared, members)`` with each member's row weights scaled to mean 1 over the
    split's rows.

    A member that trains on a fraction of the rows (its own validation split, a
    cross-fitting fold mask) would otherwise see its per-row losses, averaged over
    the batch, shrink by that fraction, while the weight decay and per-batch terms
    (CFR's IPM, which is invariant to the weights' scale) keep their size: it would
    train a more regularised model than the one configured. Bootstrap counts already
    have mean 1 and are left exactly as they are.
    """
    shared, members, rows = part
    weight = members.get("member_weight")
    if weight is None:
        return part
    total = weight.sum(dim=1, keepdim=True)
    scale = torch.where(total > 0, weight.shape[1] / total, torch.ones_like(total))
    return shared, {**members, "member_weight": weight * scale}, rows


class Trainer:
    """Mini-batch gradient training with early stopping on a validation split.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn(module, batch) -> dict`` with a scalar tensor under ``"loss"``.
    optimizer : {"adam", "adamw", "sgd"}
        ``"adam"`` adds ``weight_decay`` as an L2 penalty to the gradients, ``"adamw"``
        decays the weights directly (Loshchilov & Hutter 2019). Every weight matrix is
        decayed (representation and heads alike; Shalit et al. penalise the heads,
        Dragonnet's reference code the outcome heads); biases and scalars are not.
    learning_rate, weight_decay : float
    batch_size : int
        Rows per step. An epoch's rows are split into ``ceil(n / batch_size)`` batches of
        near-equal size, so no row is dropped and no batch is tiny.
    max_epochs : int
    validation_fraction : float
        Fraction of rows held out to monitor ``valid_loss``; 0 monitors ``train_loss``.
    patience : int or None
        Early-stopping patience in epochs; ``None`` trains for ``max_epochs``.
    device : torch.device
    generator : torch.Generator
        CPU generator for the split and the batch order.
    verbose : int
        0 silent, 1 progress line, 2 one line per epoch.
    callbacks : list of Callback
        Extra callbacks run after the built-in ones. From ``on_train_begin`` on,
        ``trainer.n_batches`` holds the number of training steps per epoch.
    weight_decay_filter : callable or None
        ``weight_decay_filter(name, param) -> bool`` picks the parameters to decay (e.g.
        only the outcome heads, as the papers do); ``None`` decays every weight matrix.
    n_members : int or None, default=None
        ``None``: one model. An integer: the module is a member module with that many
        members and ``loss_fn`` returns ``"member_loss"`` (see the module docstring).
    bootstrap : bool, default=False
        With ``n_members``: each member trains on its own bootstrap resample of the
        training rows, passed to ``loss_fn`` as ``batch["member_weight"]`` (counts).
    member_validation : {"shared", "own"}, default="shared"
        With ``n_members``: ``"shared"`` holds out one validation split for all members;
        ``"own"`` gives each member its own stratified split, so the ensemble as a whole
        learns from every row. Every member then sees all rows, weighted 0 in its
        training loss where they are its validation rows and 0 in its validation loss
        elsewhere (an epoch costs about ``1 / (1 - validation_fraction)`` times as much).
    precision : {"float32", "bfloat16"}, default="float32"
        ``"bfloat16"`` runs ``loss_fn`` under ``torch.autocast`` with bfloat16: the
        matrix products of the forward pass run in bfloat16, while the weights, the
        optimizer state and the loss terms and their reductions stay float32 (see
        "Precision" in the module docstring; fragile terms use :func:`float32_term`).
    compile : bool or "cuda-graph", default=False
        ``True``: compile ``loss_fn`` (forward and loss, and through AOTAutograd their
        backward) with ``torch.compile``; on CUDA in ``"reduce-overhead"`` mode, which
        replays CUDA graphs of them. The first epoch pays the compilation (tens of
        seconds); worth it for long fits on large tables, not for small data.
        ``"cuda-graph"``: on a CUDA device, capture each whole training step (the
        batch's gather, forward, loss, backward, optimizer step and loss sums) as a
        CUDA graph after a few eager steps, and replay it: one launch per step, no
        compilation (:mod:`causalnn.engine.graphs`; ``loss_fn`` must do no host work).
        On other devices it warns and trains as usual.
    compact_members : bool, default=False
        With ``n_members``: take members that have stopped out of the batched
        computation (see "Members that stop leave" in the module docstring). Ignored
        with ``compile=True``, where every new member count would compile anew.
    name : str, default=None
        What is trained (e.g. ``"DeepIV, first stage"``), named in the warning that
        ``max_epochs`` ended training before early stopping.
    row_weights : bool, default=True
        Keep ``train_row_weight`` and ``valid_row_weight``, two ``(n_members, n)``
        float32 matrices on the CPU. Estimators that use neither after training (all
        but Dragonnet) pass False, so that a large table does not pay for them; reading
        either then raises an AttributeError that says so.

    Attributes
    ----------
    n_batches : int
        Training steps per epoch (from ``on_train_begin`` on).
    train_row_weight : Tensor of shape (n_members, n)
        Each member's weight of every row of ``data`` (in its order) in its training
        loss, as the engine drew it and before its scaling to mean 1: the bootstrap
        counts times the ``member_weight`` the caller passed (1 without either), 0 on
        the member's validation rows. One row (``(1, n)``) without ``n_members``.
        Set from ``on_train_begin`` on, for a step after training that must use the
        rows each member was fitted to (e.g. Dragonnet's targeting step).
    valid_row_weight : Tensor of shape (n_members, n)
        Likewise for the validation loss: the caller's ``member_weight`` (or 1) on the
        member's validation rows, 0 elsewhere (all 0 without a validation split).
    history : list of dict
        The records that ``fit`` returns.
    active_members : ndarray of int
        The members (by their index among all ``n_members``) that the module holds
        during training: all of them, unless ``compact_members`` took some out. All of
        them again once ``fit`` returns.
    """

    def __init__(self, *, loss_fn, optimizer="adam", learning_rate=1e-3, weight_decay=0.0,
                 batch_size=100, max_epochs=300, validation_fraction=0.2, patience=20,
                 device=torch.device("cpu"), generator=None, verbose=0, callbacks=(),
                 weight_decay_filter=None, n_members=None, bootstrap=False,
                 member_validation="shared", precision="float32", compile=False,
                 compact_members=False, name=None, row_weights=True):
        self.row_weights = row_weights
        self.compact_members = compact_members
        self.loss_fn = loss_fn
        self.name = name
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.device = device
        self.generator = generator if generator is not None else torch.Generator()
        self._ahead = None  # the next epoch's batch order, drawn ahead (_batch_order)
        self._graphed = None  # compile="cuda-graph": the fit's GraphedSteps
        self.verbose = verbose
        self.callbacks = list(callbacks)
        self.weight_decay_filter = weight_decay_filter
        self.n_members = n_members
        self.bootstrap = bootstrap
        if member_validation not in ("shared", "own"):
            raise ValueError(f"member_validation must be 'shared' or 'own'; got "
                             f"{member_validation!r}.")
        self.member_validation = member_validation
        if precision not in ("float32", "bfloat16"):
            raise ValueError(
                f"precision must be 'float32' or 'bfloat16'; got {precision!r}.")
        self.precision = precision
        if (compile != "cuda-graph" if isinstance(compile, str)
                else compile not in (False, True)):
            raise ValueError(f"compile must be False, True or 'cuda-graph'; got "
                             f"{compile!r}.")
        self.compile = compile if isinstance(compile, str) else bool(compile)
        if bootstrap and n_members is None:
            raise ValueError("bootstrap=True needs n_members (one resample per member).")

    def _make_optimizer(self, module):
        chosen = self.weight_decay_filter or (lambda name, p: p.ndim >= 2)
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        decay = [p for n, p in named if chosen(n, p)]
        no_decay = [p for n, p in named if not chosen(n, p)]
        groups = [{"params": decay, "weight_decay": self.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        if self.optimizer == "adam":
            return torch.optim.Adam(groups, lr=self.learning_rate)
        if self.optimizer == "adamw":
            return torch.optim.AdamW(groups, lr=self.learning_rate)
        if self.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=self.learning_rate, momentum=0.9)
        raise ValueError(f"optimizer must be 'adam', 'adamw' or 'sgd'; got {self.optimizer!r}.")

    def fit(self, module, data, *, stratify=None, member_data=None):
        """Train ``module`` in place on ``data`` (dict of equal-length tensors).

        Parameters
        ----------
        module : torch.nn.Module
        data : dict of str to Tensor
            Tensors of ``n`` rows, shared by all members.
        stratify : array-like of shape (n,), default=None
            Labels (e.g. the treatment arms) whose proportions the validation split
            keeps and within which ``bootstrap`` resamples. Finite, and a few labels:
            each label is a stratum, so continuous values would make every row its
            own stratum (no validation rows, every bootstrap count 1).
        member_data : dict of str to Tensor, default=None
            With ``n_members``: tensors of shape ``(n_members, n, ...)``, one slice per
            member (e.g. the outcomes of several datasets that share ``X``).

        Returns
        -------
        history : list of dict
            One record per epoch: ``epoch``, ``train_loss``, ``valid_loss`` (when a
            validation split exists) and ``train_<term>`` / ``valid_<term>`` for every
            other term the loss function returned; with members, the members' mean
            losses and ``train_member_loss`` / ``valid_member_loss`` (lists, one value
            per member), and for a term that ``loss_fn`` returns per member (shape
            ``(n_members,)``) its members' mean as ``train_<term>`` and the list as
            ``train_member_<term>`` (likewise ``valid_``); ``dur``, the epoch's
            wall-clock seconds (training and validation).
        """
        n = next(iter(data.values())).shape[0]
        if stratify is not None:
            _check_strata(stratify, n)
        member_data = dict(member_data or {})
        if member_data and self.n_members is None:
            raise ValueError("member_data needs a Trainer with n_members set.")
        for key, value in member_data.items():
            if value.shape[:2] != (self.n_members, n):
                raise ValueError(
                    f"member_data[{key!r}] must have shape (n_members={self.n_members}, "
                    f"n={n}, ...); got {tuple(value.shape)}.")
        self.module = module.to(self.device)

        # the shared data goes to the device once, whole (no copy on the CPU); a split
        # is its rows' index into it, so batches gather from it directly instead of
        # from a copy of every split's rows (which held the features twice)
        shared = {k: v.to(self.device) for k, v in data.items()}

        def take(index):
            members = {k: v[:, index].to(self.device) for k, v in member_data.items()}
            return shared, members, index.to(self.device)

        # one member's own split is the shared split: same draws as "shared"
        if (self.member_validation == "own" and (self.n_members or 1) > 1
                and self.validation_fraction > 0):
            train, valid = self._own_splits(n, take, stratify,
                                            member_data.get("member_weight"))
            valid_given = self.valid_row_weight
        else:
            train_idx, valid_idx = stratified_split(
                n, self.validation_fraction, self.generator, stratify)
            # the validation rows are shuffled once, so that every validation chunk
            # mixes the arms (a pairwise term such as an IPM on one arm would be 0)
            valid_idx = valid_idx[torch.randperm(len(valid_idx),
                                                 generator=self.generator)]
            valid = take(valid_idx) if len(valid_idx) else None
            train = take(train_idx)
            if self.bootstrap:
                given = train[1].get("member_weight")  # e.g. cross-fitting masks
                counts = bootstrap_counts(
                    self.n_members, len(train_idx), self.generator, self.device,
                    rows=None if given is None else given > 0,
                    strata=None if stratify is None else np.asarray(stratify)[
                        train_idx.numpy()])
                train[1]["member_weight"] = counts if given is None else counts * given
            self.train_row_weight = self._in_data_order(
                n, train_idx, train[1].get("member_weight"))
            # from the caller's weights as given (on the CPU as a rule), not from
            # their device copies: the check below needs no device sync
            given = member_data.get("member_weight")
            valid_given = None if given is None else given[:, valid_idx]
            self.valid_row_weight = self._in_data_order(n, valid_idx, valid_given)
        counts = None  # the split holds the bootstrap counts (rescaled below); free ours
        train = _weights_of_mean_one(train)
        if valid is not None and "member_weight" in valid[1]:
            empty = np.flatnonzero(valid_given.sum(dim=1).detach().cpu().numpy() == 0)
            if len(empty):
                raise ValueError(
                    f"members {empty.tolist()[:10]} have no validation row of positive "
                    f"weight (e.g. every validation row lies in their held-out "
                    f"cross-fitting fold), so their early stopping would keep the first "
                    f"epoch's weights; raise validation_fraction or use fewer folds.")
        valid_given = None
        valid = None if valid is None else _weights_of_mean_one(valid)
        n_train = len(train[2])
        n_batches = max(1, math.ceil(n_train / self.batch_size))
        self.n_batches = n_batches
        self._loss = self.loss_fn
        if self.compile is True:
            mode = "reduce-overhead" if self.device.type == "cuda" else None
            self._loss = torch.compile(self.loss_fn, mode=mode, dynamic=False)
        optimizer = self._make_optimizer(self.module)
        if isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)) and (
                self.device.type == "cuda"
                or (self.device.type == "cpu" and _FUSED_ADAM_ON_CPU)):
            # one fused kernel per step instead of a handful per parameter: on the CPU
            # at batch 64 the per-parameter loop of torch's default Adam was a quarter
            # of TARNet's step time
            for group in optimizer.param_groups:
                group["fused"], group["foreach"] = True, False
        self._graphed = None
        if self.compile == "cuda-graph":
            capture = (capture_cuda_graph if self.device.type in _CAPTURE_ON
                       else None)
            if capture is not None and self.device.type == "cuda":
                # the step count and bias corrections on the device, read by the graph
                for group in optimizer.param_groups:
                    group["capturable"] = True
            if capture is None:
                warn_at_caller(
                    f"compile='cuda-graph' captures CUDA graphs on a CUDA device only; "
                    f"on {self.device.type} the training steps run as usual.",
                    UserWarning)
            self._graphed = GraphedSteps(self, train, optimizer, capture)

        monitor = "valid_loss" if valid is not None else "train_loss"
        if self.n_members is not None:
            monitor = monitor.replace("_loss", "_member_loss")
        # without patience: train max_epochs and keep the last weights; best_epoch is
        # still recorded for the history
        self.early_stopping = EarlyStopping(
            monitor=monitor, patience=self.patience or self.max_epochs + 1,
            load_best=self.patience is not None)
        callbacks = [self.early_stopping]
        if self.verbose:
            callbacks.append(ProgressBar(self.verbose))
        callbacks += self.callbacks
        self.history = []
        self.active_members = np.arange(self.n_members or 1)
        self._parked = None
        self._ahead = None
        compacting = (self.compact_members and self.n_members is not None
                      and not self.compile)
        for cb in callbacks:
            cb.on_train_begin(self)
        stopped_early = False
        try:
            for epoch in range(1, self.max_epochs + 1):
                for cb in callbacks:
                    cb.on_epoch_begin(self, epoch)
                record = {"epoch": epoch}
                epoch_start = time.perf_counter()
                record.update(self._train_epoch(train, n_batches, optimizer, callbacks))
                self._check_finite(record["train_loss"], epoch)
                if valid is not None:
                    record.update(self._evaluate(valid))
                    self._check_finite(record["valid_loss"], epoch)
                # the loss values above are host floats, so the device has finished the
                # epoch's work: no extra synchronisation is needed for an honest time
                record["dur"] = time.perf_counter() - epoch_start
                self.history.append(record)
                for cb in callbacks:
                    cb.on_epoch_end(self, record)
                if compacting:
                    still = np.flatnonzero(~self.early_stopping._stopped)
                    if len(still) < len(self.active_members):
                        train, valid = self._leave(still, train, valid, optimizer)
        except StopTraining:
            stopped_early = True
        finally:
            if self._graphed is not None:
                # the last capture's gradients live in its graph's private memory pool,
                # whose segments they would keep reserved for as long as the module
                for param in self.module.parameters():
                    param.grad = None
            self._graphed = None  # the graphs' memory goes back to the allocator
            if self._ahead is not None:
                self._ahead.discard()
                self._ahead = None
            self._restore_members()
            for cb in callbacks:
                cb.on_train_end(self)
        if not stopped_early and self.patience:
            # the name tells two stages, or two models, apart (and lets Python's
            # default filter show each once rather than only the first)
            of = f" ({self.name})" if self.name else ""
            warn_at_caller(
                f"Training reached max_epochs={self.max_epochs} before early "
                f"stopping{of}; the fit may improve with a larger max_epochs.",
                ConvergenceWarning)
        self.module.eval()
        return self.history

    def _row_weight(self, which):
        value = getattr(self, f"_{which}_row_weight", None)
        if value is None and not self.row_weights:
            raise AttributeError(
                f"{which}_row_weight was not kept: this Trainer was made with "
                f"row_weights=False (an estimator that reads it after training sets "
                f"_needs_row_weights = True).")
        return value

    train_row_weight = property(
        lambda self: self._row_weight("train"),
        lambda self, value: setattr(self, "_train_row_weight", value))
    valid_row_weight = property(
        lambda self: self._row_weight("valid"),
        lambda self, value: setattr(self, "_valid_row_weight", value))

    def _in_data_order(self, n, index, weight):
        """``(n_members or 1, n)`` CPU row weights in the order of the data: ``weight``
        (``(n_members, len(index))``, the rows of ``index``; ``None`` for weight 1) put
        back at ``index``, 0 on every other row. None without ``row_weights``."""
        if not self.row_weights:
            return None
        full = torch.zeros(self.n_members or 1, n, dtype=torch.float32)
        if len(index):
            full[:, index] = 1.0 if weight is None else weight.detach().float().cpu()
        return full

    def _own_splits(self, n, take, stratify, given_weight=None):
        """(train, valid) over all ``n`` rows for ``member_validation="own"``: each
        member's split lives in its ``member_weight`` (its training rows, or their
        bootstrap counts, in ``train``; its validation rows, scaled to a mean over
        them, in ``valid``), times any weight the caller passed (cross-fitting,
        ``given_weight``). Sets ``train_row_weight`` and ``valid_row_weight``, the same
        split unscaled."""
        valid_mask = torch.zeros(self.n_members, n, dtype=torch.float32)
        for m in range(self.n_members):
            _, valid_idx = stratified_split(n, self.validation_fraction, self.generator,
                                            stratify)
            valid_mask[m, valid_idx] = 1.0
        train_weight = 1.0 - valid_mask
        if self.bootstrap:  # each member resamples its own training rows
            # within the rows the caller's weight keeps (a cross-fitting fold's), as
            # many draws as the member has there
            rows = (train_weight if given_weight is None
                    else train_weight * (given_weight.detach().cpu() > 0))
            train_weight = bootstrap_counts(self.n_members, n, self.generator, "cpu",
                                            rows=rows, strata=stratify)
        valid_weight = valid_mask * (n / valid_mask.sum(dim=1, keepdim=True))
        # one order for both, shuffled once so validation chunks mix the arms
        order = torch.randperm(n, generator=self.generator)
        shared, members, rows = take(order)
        given = members.get("member_weight")

        def weighted(weight):
            weight = weight[:, order].to(self.device)
            return {**members, "member_weight": weight if given is None else weight * given}

        # the CPU weights in data order, before they go to the device
        given_cpu = 1.0 if given_weight is None else given_weight.detach().float().cpu()
        self.train_row_weight = train_weight * given_cpu
        self.valid_row_weight = valid_mask * given_cpu
        return (shared, weighted(train_weight), rows), (shared, weighted(valid_weight), rows)

    def _train_epoch(self, train, n_batches, optimizer, callbacks):
        self.module.train()
        n_train = len(train[2])
        batches = torch.tensor_split(self._batch_order(n_train), n_batches)
        if self._graphed is not None:  # compile="cuda-graph": the same step, replayed
            self._graphed.start_epoch()
            step, totals = self._graphed, self._graphed.totals
        else:
            totals = {}

            def step(idx):
                return self._train_step(train, idx, optimizer, totals)

        for b, idx in enumerate(batches):
            losses = step(idx)
            for cb in callbacks:
                cb.on_batch_end(self, b, losses)
        return self._record(totals, n_train, "train")

    def _train_step(self, data, idx, optimizer, totals):
        """One optimizer step on the rows at positions ``idx`` of ``data``; the loss
        terms are added to ``totals`` in place. :class:`GraphedSteps` captures this."""
        optimizer.zero_grad(set_to_none=True)
        losses = self._losses(self._batch(data, idx))
        if self.n_members is not None:
            self._check_member_loss(losses)
        losses["loss"].backward()
        optimizer.step()
        self._accumulate(totals, losses, len(idx))
        return losses

    def __getstate__(self):
        # a draw ahead in flight (a thread) is not copied: a copy draws as usual; nor
        # are the CUDA graphs of a fit in progress
        state = self.__dict__.copy()
        state["_ahead"] = None
        state["_graphed"] = None
        # a torch.Generator copies and pickles only in newer torch (not in 2.3, which
        # setup.cfg admits): keep its device and state, so that a copy (a checkpointing
        # callback) draws on exactly as the original would
        generator = state.get("generator")
        if isinstance(generator, torch.Generator):
            state["generator"] = (str(generator.device), generator.get_state())
        return state

    def __setstate__(self, state):
        generator = state.get("generator")
        if isinstance(generator, tuple):
            device, generator_state = generator
            state["generator"] = torch.Generator(device=device)
            state["generator"].set_state(generator_state)
        self.__dict__.update(state)

    def _batch_order(self, n):
        """This epoch's permutation of the ``n`` training rows, on the device.

        On a GPU, the next epoch's permutation is then drawn ahead in a background
        thread (:class:`causalnn.engine.random.PermutationAhead`) while this epoch runs:
        the same numbers from the same generator, without the GPU waiting for the
        host's ``randperm`` at each epoch's start."""
        # cleared only once taken: an interrupt while take() waits for the thread
        # leaves it to fit's ``finally``, which joins it
        perm = None if self._ahead is None else self._ahead.take(self.generator, n)
        self._ahead = None
        if perm is None:
            perm = draw_to_device(torch.randperm, n, generator=self.generator,
                                  device=self.device)
        else:
            perm = perm.to(self.device, non_blocking=True)
        if (self.device.type in _DRAW_AHEAD_ON and n >= _DRAW_AHEAD_MIN_ROWS
                and self.generator.device.type == "cpu"):
            self._ahead = PermutationAhead(self.generator, n,
                                           pin_memory=self.device.type == "cuda")
        return perm

    def _evaluate(self, valid):
        """Validation losses in chunks, so pairwise terms (IPMs) stay O(chunk^2) in
        memory however large the validation split is."""
        self.module.eval()
        n_valid = len(valid[2])
        chunk = max(self.batch_size, 1024)
        index = torch.arange(n_valid, device=self.device)
        with torch.no_grad():
            return self._run_batches(
                valid, torch.tensor_split(index, max(1, math.ceil(n_valid / chunk))),
                "valid")

    def _run_batches(self, data, batches, prefix):
        """Row-weighted means of every loss term over ``batches`` of ``data``."""
        totals = {}
        for b, idx in enumerate(batches):
            losses = self._losses(self._batch(data, idx))
            if b == 0 and self.n_members is not None:
                self._check_member_loss(losses)
            self._accumulate(totals, losses, len(idx))
        return self._record(totals, sum(len(idx) for idx in batches), prefix)

    def _batch(self, data, idx):
        """The rows at positions ``idx`` of a split: its shared tensors (through the
        split's row indices) and its per-member tensors."""
        shared, members, rows = data
        batch = {k: v[rows[idx]] for k, v in shared.items()}
        batch.update({k: v[:, idx] for k, v in members.items()})
        return batch

    def _losses(self, batch):
        # autocast's cache of cast weights must be off where steps are CUDA graphs
        with torch.autocast(self.device.type, dtype=torch.bfloat16,
                            enabled=self.precision == "bfloat16",
                            cache_enabled=False if self.compile == "cuda-graph" else None):
            return self._loss(self.module, batch)

    def _accumulate(self, totals, losses, n_rows):
        """Add each term's batch mean times ``n_rows`` to ``totals``, in place and on
        the device: one host sync per term and epoch, not per step (and fixed
        addresses, as a CUDA graph of the step needs)."""
        for k, v in losses.items():
            if k == "loss" and self.n_members is not None:
                continue  # the members' sum; their mean is logged by _record
            value = v.detach().float() * n_rows
            if k not in totals:
                totals[k] = torch.zeros_like(value)
            totals[k].add_(value)

    def _record(self, totals, n, prefix):
        """The history entries of an epoch's ``totals`` over ``n`` rows."""
        record = {}
        held = len(self.active_members)
        for k, v in totals.items():
            value = (v / n).cpu()
            name = f"{prefix}_loss" if k == "loss" else f"{prefix}_{k}"
            if (self.n_members is not None and k != "member_loss"
                    and tuple(value.shape) == (held,)):
                # a term given per member: its members' mean, and each member's own
                # value beside it (as member_loss beside loss)
                record[f"{prefix}_member_{k}"] = self._all_members(value).tolist()
                record[name] = float(value.mean())
            elif k == "member_loss" and self.n_members is not None:
                member_loss = value.numpy().astype(np.float64)
                record[name] = self._all_members(value).tolist()
            else:
                record[name] = value.tolist() if value.ndim else float(value)
        if self.n_members is not None:
            # over the members still training (those that left record NaN)
            record[f"{prefix}_loss"] = float(np.mean(member_loss))
        return record

    def _all_members(self, value):
        """A per-member value of the members held, as an array over all members (NaN
        for those that have left)."""
        if len(self.active_members) == self.n_members:
            return value.numpy()
        full = np.full(self.n_members, np.nan)
        full[self.active_members] = value.numpy()
        return full

    def _check_member_loss(self, losses):
        member_loss = losses.get("member_loss")
        held = len(self.active_members)
        if member_loss is None or tuple(member_loss.shape) != (held,):
            raise ValueError(
                f"with n_members={held}, loss_fn must return 'member_loss' of "
                f"shape ({held},) beside the summed 'loss'; got "
                f"{None if member_loss is None else tuple(member_loss.shape)}.")

    # ---- members that stop leave (compact_members) -------------------------------------
    def _leave(self, still, train, valid, optimizer):
        """Take the members not in ``still`` (indices among all) out of the module, its
        optimizer state and the splits' ``member_data``; return the splits. Their
        current weights are parked, for :meth:`_restore_members`."""
        held = self.active_members
        staying = np.searchsorted(held, still)  # positions among the members held
        keep = torch.as_tensor(staying, device=self.device)
        gone = np.setdiff1d(np.arange(len(held)), staying)
        with torch.no_grad():
            tensors = self._member_tensors()
            if self._parked is None:  # the whole module's layout, once
                self._parked = {k: v.detach().clone() for k, v in tensors.items()}
            else:
                for k, v in tensors.items():
                    member_rows(self._parked[k], self.n_members)[
                        torch.as_tensor(held[gone], device=self.device)] = member_rows(
                            v.detach(), len(held))[torch.as_tensor(gone, device=self.device)]
            # every slice first, then the assignments: an error while slicing (out of
            # memory) leaves the module as it was, whole for _restore_members
            sliced = [(tensor, _member_subset(tensor.data, keep, len(held)).clone(),
                       {key: _member_subset(value, keep, len(held)).clone()
                        for key, value in optimizer.state.get(tensor, {}).items()
                        if torch.is_tensor(value) and value.shape == tensor.shape})
                      for tensor in tensors.values()]
            for tensor, data, state in sliced:
                optimizer.state.get(tensor, {}).update(state)
                tensor.data = data
                if isinstance(tensor, torch.nn.Parameter):
                    tensor.grad = None
        set_member_count(self.module, len(still))
        self.active_members = still

        def subset(split):
            if split is None:
                return None
            shared, members, rows = split
            return shared, {k: v[keep] for k, v in members.items()}, rows

        return subset(train), subset(valid)

    def _member_tensors(self):
        """The module's parameters and persistent buffers by their state-dict names
        (each member-major, the rule of a member module). A non-persistent buffer is
        not state (e.g. the column indices of causalnn.nets.vae.ProxyDecoder, shared
        by all members): it is left as it is."""
        transient = {f"{prefix}.{name}" if prefix else name
                     for prefix, sub in self.module.named_modules()
                     for name in sub._non_persistent_buffers_set}
        return {**dict(self.module.named_parameters()),
                **{k: v for k, v in self.module.named_buffers() if k not in transient}}

    def _restore_members(self):
        """Make the module whole again after :meth:`_leave`: the members still held
        with their current weights, the others with those they had when they left."""
        if self._parked is None:
            return
        held = torch.as_tensor(self.active_members, device=self.device)
        with torch.no_grad():
            for k, tensor in self._member_tensors().items():
                whole = self._parked[k]
                member_rows(whole, self.n_members)[held] = member_rows(
                    tensor.detach(), len(self.active_members))
                tensor.data = whole
                if isinstance(tensor, torch.nn.Parameter):
                    tensor.grad = None
        set_member_count(self.module, self.n_members)
        self.active_members = np.arange(self.n_members)
        self._parked = None

    def _check_finite(self, value, epoch):
        if not math.isfinite(value):
            raise TrainingDivergedError(
                f"Training diverged: the loss became {value} in epoch {epoch}. Try a "
                f"smaller learning_rate (now {self.learning_rate}), and check that the "
                f"features are on a sensible scale (e.g. StandardScaler)."
            )
