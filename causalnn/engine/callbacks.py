"""Callbacks that hook into :class:`causalnn.engine.Trainer`.

Each hook receives the trainer; ``on_epoch_end`` also receives the epoch's history record
(a dict). A callback ends training by raising :class:`causalnn.exceptions.StopTraining`.
"""
import sys
import time

import numpy as np
import torch

from ..exceptions import StopTraining
from .members import member_rows

__all__ = ["Callback", "EarlyStopping", "ProgressBar"]


class Callback:
    """Base class: every hook is a no-op."""

    def on_train_begin(self, trainer):
        pass

    def on_epoch_begin(self, trainer, epoch):
        pass

    def on_batch_end(self, trainer, batch_index, losses):
        pass

    def on_epoch_end(self, trainer, record):
        pass

    def on_train_end(self, trainer):
        pass


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs.

    With ``load_best=True`` the module's weights from the best epoch are restored at the
    end of training. ``best_epoch`` holds the (1-based) epoch of the best score.

    When ``record[monitor]`` is a list (one score per member of a member module, see
    :mod:`causalnn.engine.trainer`), each member is tracked on its own: its own best
    score, best epoch (``best_epoch`` is then an array) and best weights; training
    stops once every member has gone ``patience`` epochs without improving. A member
    that has done so is finished: its best weights are those of a lone fit that
    stopped there, whatever the other members do afterwards.

    Parameters
    ----------
    monitor : str, default="valid_loss"
        History key to minimise.
    patience : int, default=10
        Epochs without improvement before stopping.
    min_delta : float, default=0.0
        An improvement smaller than this does not count.
    load_best : bool, default=True
        Restore the best weights when training ends.
    """

    def __init__(self, monitor="valid_loss", patience=10, min_delta=0.0, load_best=True):
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.load_best = load_best

    def on_train_begin(self, trainer):
        self.best_score = float("inf")
        self.best_epoch = 0
        self._best_state = None
        self._stale = 0

    def on_epoch_end(self, trainer, record):
        score = record[self.monitor]
        if isinstance(score, (list, tuple, np.ndarray)):
            return self._members_epoch_end(trainer, np.asarray(score, dtype=float),
                                           record["epoch"])
        if score < self.best_score - self.min_delta:
            self.best_score = score
            self.best_epoch = record["epoch"]
            self._stale = 0
            if self.load_best:
                # a copy on the training device: no host transfer per improvement
                self._best_state = {
                    k: v.detach().clone() for k, v in trainer.module.state_dict().items()
                }
        else:
            self._stale += 1
            if self._stale >= self.patience:
                raise StopTraining

    def _members_epoch_end(self, trainer, score, epoch):
        if self._best_state is None:
            self.best_score = np.full(len(score), np.inf)
            self.best_epoch = np.zeros(len(score), dtype=int)
            self._stale = np.zeros(len(score), dtype=int)
            self._stopped = np.zeros(len(score), dtype=bool)
        # a member that has run out of patience is done, as if trained alone: the epochs
        # the slower members still run must not give it a new best (in cross-fitting
        # they train on its held-out fold, so how long they run depends on that fold)
        improved = (score < self.best_score - self.min_delta) & ~self._stopped
        self.best_score = np.where(improved, score, self.best_score)
        self.best_epoch = np.where(improved, epoch, self.best_epoch)
        self._stale = np.where(improved, 0, self._stale + 1)
        state = trainer.module.state_dict()
        if self._best_state is None:
            self._best_state = {k: v.detach().clone() for k, v in state.items()}
        elif self.load_best and improved.any():
            # the members the module holds now: fewer than all once stopped members
            # have left it (Trainer(compact_members=True)); one that left never improves
            held = getattr(trainer, "active_members", np.arange(len(score)))
            gained = np.flatnonzero(improved[held])  # positions among those held
            for key, value in state.items():
                best = member_rows(self._best_state[key], len(score))
                best[torch.as_tensor(held[gained], device=value.device)] = member_rows(
                    value.detach(), len(held))[torch.as_tensor(gained, device=value.device)]
        self._stopped |= self._stale >= self.patience
        if np.all(self._stopped):
            raise StopTraining

    def on_train_end(self, trainer):
        if self.load_best and self._best_state is not None:
            trainer.module.load_state_dict(self._best_state)


class ProgressBar(Callback):
    """One self-overwriting status line per epoch on stderr (``verbose=1``), or one line
    per epoch (``verbose>=2``)."""

    def __init__(self, verbose=1, stream=None):
        self.verbose = verbose
        self.stream = stream

    def on_train_begin(self, trainer):
        self._start = time.perf_counter()
        self._out = self.stream or sys.stderr

    def on_epoch_end(self, trainer, record):
        total = trainer.max_epochs
        done = record["epoch"]
        width = 20
        filled = int(width * done / total)
        bar = "#" * filled + "." * (width - filled)
        valid = record.get("valid_loss")
        valid_txt = "" if valid is None else f" valid {valid:.4f}"
        line = (f"epoch {done:>4d}/{total} [{bar}] train {record['train_loss']:.4f}"
                f"{valid_txt} {time.perf_counter() - self._start:6.1f}s")
        end = "\n" if self.verbose >= 2 else "\r"
        print(line, end=end, file=self._out, flush=True)

    def on_train_end(self, trainer):
        if self.verbose < 2:
            print(file=self._out, flush=True)
