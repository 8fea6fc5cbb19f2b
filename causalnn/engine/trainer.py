"""The one training engine shared by every causalnn estimator.

An estimator hands the :class:`Trainer` a module, a dict of equal-length tensors and a
``loss_fn(module, batch) -> dict[str, Tensor]`` (the dict holds the scalar ``"loss"`` to
minimise and any named terms worth logging). The trainer owns everything else: the
validation split, batching, the optimizer, early stopping, device placement, divergence
checks and the history. Models never contain a training loop.

A later *member axis* (K copies of a model trained as one batched computation) fits this
contract unchanged: the module carries a leading member dimension, ``loss_fn`` returns the
sum over members as ``"loss"`` (gradients of independent members do not mix) and the
per-member losses as extra terms for the history.
"""
import math
import warnings

import numpy as np
import torch

from ..exceptions import ConvergenceWarning, StopTraining, TrainingDivergedError
from .callbacks import EarlyStopping, ProgressBar

__all__ = ["Trainer", "stratified_split"]


def stratified_split(n_samples, fraction, generator, stratify=None):
    """Split ``range(n_samples)`` into (train, valid) index tensors.

    Each stratum (e.g. each treatment arm) gives ``round(fraction * size)`` rows, at least
    one when ``fraction > 0`` and the stratum has two rows or more, so both arms appear in
    the validation set.
    """
    if fraction <= 0:
        return torch.arange(n_samples), torch.arange(0)
    if stratify is None:
        groups = [torch.arange(n_samples)]
    else:
        labels = np.asarray(stratify)
        groups = [torch.from_numpy(np.flatnonzero(labels == v)) for v in np.unique(labels)]
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
        Extra callbacks run after the built-in ones.
    weight_decay_filter : callable or None
        ``weight_decay_filter(name, param) -> bool`` picks the parameters to decay (e.g.
        only the outcome heads, as the papers do); ``None`` decays every weight matrix.
    """

    def __init__(self, *, loss_fn, optimizer="adam", learning_rate=1e-3, weight_decay=0.0,
                 batch_size=100, max_epochs=300, validation_fraction=0.2, patience=20,
                 device=torch.device("cpu"), generator=None, verbose=0, callbacks=(),
                 weight_decay_filter=None):
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.device = device
        self.generator = generator if generator is not None else torch.Generator()
        self.verbose = verbose
        self.callbacks = list(callbacks)
        self.weight_decay_filter = weight_decay_filter

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

    def fit(self, module, data, *, stratify=None):
        """Train ``module`` in place on ``data`` (dict of equal-length tensors).

        Returns
        -------
        history : list of dict
            One record per epoch: ``epoch``, ``train_loss``, ``valid_loss`` (when a
            validation split exists) and ``train_<term>`` / ``valid_<term>`` for every
            other term the loss function returned.
        """
        n = next(iter(data.values())).shape[0]
        self.module = module.to(self.device)
        train_idx, valid_idx = stratified_split(
            n, self.validation_fraction, self.generator, stratify)
        # each split goes to the device once; batches are then indexed on the device
        valid = ({k: v[valid_idx].to(self.device) for k, v in data.items()}
                 if len(valid_idx) else None)
        train = {k: v[train_idx].to(self.device) for k, v in data.items()}
        n_train = len(train_idx)
        n_batches = max(1, math.ceil(n_train / self.batch_size))
        optimizer = self._make_optimizer(self.module)

        monitor = "valid_loss" if valid is not None else "train_loss"
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
        for cb in callbacks:
            cb.on_train_begin(self)
        stopped_early = False
        try:
            for epoch in range(1, self.max_epochs + 1):
                for cb in callbacks:
                    cb.on_epoch_begin(self, epoch)
                record = {"epoch": epoch}
                record.update(self._train_epoch(train, n_batches, optimizer, callbacks))
                self._check_finite(record["train_loss"], epoch)
                if valid is not None:
                    record.update(self._evaluate(valid))
                    self._check_finite(record["valid_loss"], epoch)
                self.history.append(record)
                for cb in callbacks:
                    cb.on_epoch_end(self, record)
        except StopTraining:
            stopped_early = True
        finally:
            for cb in callbacks:
                cb.on_train_end(self)
        if not stopped_early and self.patience:
            warnings.warn(
                f"Training reached max_epochs={self.max_epochs} before early stopping; "
                f"the fit may improve with a larger max_epochs.", ConvergenceWarning)
        self.module.eval()
        return self.history

    def _train_epoch(self, train, n_batches, optimizer, callbacks):
        self.module.train()
        n_train = next(iter(train.values())).shape[0]
        perm = torch.randperm(n_train, generator=self.generator).to(self.device)

        def step(b, losses):
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            optimizer.step()
            for cb in callbacks:
                cb.on_batch_end(self, b, losses)

        return self._run_batches(train, torch.tensor_split(perm, n_batches), "train", step)

    def _evaluate(self, valid):
        """Validation losses in chunks, so pairwise terms (IPMs) stay O(chunk^2) in
        memory however large the validation split is."""
        self.module.eval()
        n_valid = next(iter(valid.values())).shape[0]
        chunk = max(self.batch_size, 1024)
        index = torch.arange(n_valid, device=self.device)
        with torch.no_grad():
            return self._run_batches(
                valid, torch.tensor_split(index, max(1, math.ceil(n_valid / chunk))),
                "valid")

    def _run_batches(self, data, batches, prefix, step=None):
        """Row-weighted means of every loss term over ``batches`` of ``data``."""
        totals = {}
        for b, idx in enumerate(batches):
            losses = self.loss_fn(self.module, {k: v[idx] for k, v in data.items()})
            if step is not None:
                step(b, losses)
            # accumulate on the device; one host sync per term and epoch, not per step
            for k, v in losses.items():
                totals[k] = totals.get(k, 0.0) + v.detach() * len(idx)
        n = sum(len(idx) for idx in batches)
        return {(f"{prefix}_loss" if k == "loss" else f"{prefix}_{k}"): float(v) / n
                for k, v in totals.items()}

    def _check_finite(self, value, epoch):
        if not math.isfinite(value):
            raise TrainingDivergedError(
                f"Training diverged: the loss became {value} in epoch {epoch}. Try a "
                f"smaller learning_rate (now {self.learning_rate}), and check that the "
                f"features are on a sensible scale (e.g. StandardScaler)."
            )
