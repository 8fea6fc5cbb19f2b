"""What TARNet/CFR and Dragonnet share: a representation network with one outcome head
per arm, trained by the shared engine as ``n_members`` members at once, and prediction
of both arms in one pass.

Every fit is a member fit: ``module_["net"]`` is a member
:class:`causalnn.nets.RepresentationNet` with ``n_members_`` members (1 for a single
network), so the losses are written once, for activations with a leading member axis.
"""
import numbers

import numpy as np
import pandas as pd
import torch

from ..._base import BaseCausalEstimator, Interval, LayerWidths, Options
from ..._base._scaling import standardize_outcome
from ..._base._validation import (_as_float64, as_pandas_frame, check_same_rows,
                                  check_vector)
from ...engine import (per_member, predict_in_batches, prediction_chunk_rows,
                      select_members)
from ...nets import RepresentationNet, init_weights
from ...nets.mlp import ACTIVATIONS

__all__ = ["RepresentationEstimator"]


class RepresentationEstimator(BaseCausalEstimator):
    """Base of the shared-representation estimators (binary treatment)."""

    _parameter_constraints = {
        **BaseCausalEstimator._parameter_constraints,
        "representation_layers": [LayerWidths()],
        "head_layers": [LayerWidths()],
        "activation": [Options(*ACTIVATIONS)],
        "n_members": [Interval(numbers.Integral, 1, None)],
        "bootstrap": [bool],
        "member_validation": [Options("shared", "own")],
        "scale_features": [bool],
        "precision": [Options("float32", "bfloat16")],
        "compile": [bool, Options("cuda-graph")],
    }
    _propensity_head = False
    _normalize_representation = False
    # the losses (factual, IPM on a balanced sub-batch, propensity, targeted term) draw
    # nothing at random: stopped members may leave the batched fit
    _compact_members = True

    # ---- training ---------------------------------------------------------------------
    @property
    def _n_fit_members(self):
        """Members trained by this fit: ``n_members`` per dataset (``fit_many``)."""
        return self.n_members * len(getattr(self, "_many_y", [None]))

    def _build_module(self, generator):
        """``nn.ModuleDict`` whose ``"net"`` is the member representation network;
        subclasses add the modules their loss trains (e.g. Dragonnet's ``epsilon``)."""
        net = RepresentationNet(
            self.n_features_in_, self.representation_layers, self.head_layers,
            normalize_representation=self._normalize_representation,
            propensity_head=self._propensity_head, activation=self.activation,
            n_members=self._n_fit_members)
        self.n_members_ = self._n_fit_members
        return torch.nn.ModuleDict({"net": init_weights(net, generator)})

    def _train_members(self, module, data, generator, *, stratify):
        """Train ``module`` with ``data``'s ``"y"`` shared, or, inside ``fit_many``, one
        outcome vector per dataset (each dataset's members see their own outcomes)."""
        member_data = None
        if hasattr(self, "_many_y"):
            member_data = {"y": self._member_outcomes(data["y"])}
            data = {k: v for k, v in data.items() if k != "y"}
        module = self._train(module, data, generator, stratify=stratify,
                             n_members=self.n_members_, bootstrap=self.bootstrap,
                             member_data=member_data)
        if self.n_members_ == 1:  # one network: the epoch as a plain int
            self.best_epoch_ = int(np.asarray(self.best_epoch_).item())
        return module

    def _member_outcomes(self, y):
        """The outcomes each member trains on: ``y`` for all, or inside ``fit_many``
        each dataset's own, one row per member (dataset-major), ``(n_members, n)``."""
        if hasattr(self, "_many_y"):
            return np.repeat(self._many_y, self.n_members, axis=0)
        return y

    @staticmethod
    def _factual(outcome, t):
        """Each member's linear predictor of the received arm, ``(n_members, batch)``."""
        return torch.where(t == 1, outcome[..., 1], outcome[..., 0])

    @staticmethod
    def _per_member(fn, phi, t, weight=None):
        """A per-batch term ``fn(phi, t[, weight]) -> scalar`` for every member,
        ``(n_members,)``; ``weight`` ``(n_members, batch)`` gives each member its own
        row weights."""
        return per_member(fn, phi, t, member_args=() if weight is None else (weight,))

    # ---- several datasets as one fit ----------------------------------------------------
    def fit_many(self, X, Y, *, treatment=None):
        """Fit one model per outcome vector in ``Y``, all trained as one batched fit.

        The datasets share ``X`` and the treatment and differ in their outcomes (e.g.
        the replications of a simulation benchmark such as IHDP, which share both).
        Each dataset gets ``n_members`` members, its own outcome standardisation and its
        own early stopping per member; the result is the same as fitting a clone of
        this estimator on each dataset, up to the random draws.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        Y : array-like of shape (n_datasets, n_samples), or DataFrame of shape \
(n_samples, n_datasets)
            The outcomes: an array or a list with one outcome vector per dataset (a
            list may hold pandas Series), or a DataFrame with one column per dataset,
            its rows those of ``X`` (the pandas layout: ``Y[c]`` is dataset ``c``'s
            outcome Series). As in ``fit``, pandas outcomes must carry ``X``'s index:
            rows are paired by position.
        treatment : array-like of shape (n_samples,), default=None

        Returns
        -------
        estimators : list of fitted estimators
            One per dataset, each a fitted estimator of this class with its own
            ``module_`` (``n_members`` members), ``y_mean_``, ``y_scale_``,
            ``best_epoch_`` and ``history_``. The history holds that dataset's members
            only: its per-member losses and terms, and ``train_loss`` /
            ``valid_loss`` and each ``train_<term>`` / ``valid_<term>`` as their mean
            over its members still training (a member that has stopped records NaN
            from then on: it has left the batched fit); a term that a loss logs only
            pooled over all members
            (none of this library's do) is left out. ``n_iter_`` and each record's ``dur`` are those
            of the batched fit, which runs as long as its slowest member. This
            estimator itself is left fitted to the first dataset.

        Examples
        --------
        >>> import numpy as np
        >>> from causalnn import TARNet
        >>> from causalnn.datasets import load_ihdp
        >>> files = [load_ihdp(r) for r in (1, 2)]  # same X and treatment
        >>> Y = np.stack([f.y for f in files])
        >>> fits = TARNet(n_members=2, max_epochs=5, random_state=0).fit_many(
        ...     files[0].X, Y, treatment=files[0].treatment)
        >>> [est.effect(files[0].X, members=True).shape for est in fits]
        [(2, 747), (2, 747)]
        """
        X = as_pandas_frame(X)
        Y = self._outcome_matrix(X, Y, treatment)
        Y = np.stack([check_vector(y, name=f"Y[{k}]", n_samples=Y.shape[1])
                      for k, y in enumerate(Y)])
        kinds = {self._resolve_outcome(y) for y in Y}
        if len(kinds) > 1:
            raise ValueError("fit_many needs outcomes of one type (all binary or all "
                             "continuous).")
        if kinds == {"continuous"}:  # the same offset-exact standardisation as fit
            standardized = [standardize_outcome(y) for y in Y]
            self._many_y = np.stack([y_train for y_train, _, _ in standardized])
            means = np.array([mean for _, mean, _ in standardized])
            scales = np.array([scale for _, _, scale in standardized])
        else:
            self._many_y = Y
            means, scales = np.zeros(len(Y)), np.ones(len(Y))
        try:
            self.fit(X, Y[0], treatment=treatment)
        finally:
            del self._many_y
        fitted = [self._dataset(k, means[k], scales[k]) for k in range(len(Y))]
        # this estimator ends as the first dataset's (never as all members pooled)
        self.__dict__.update(fitted[0].__dict__)
        return fitted

    @staticmethod
    def _outcome_matrix(X, Y, treatment=None):
        """``fit_many``'s outcomes as an (n_datasets, n_samples) array, with the index
        check that ``fit`` applies to ``y``: an outcome sorted or filtered apart from
        ``X`` (or, for a numpy ``X``, from a pandas ``treatment``) would silently pair
        rows with another row's outcome."""
        converted = as_pandas_frame(Y)  # Y itself keeps its index for the check below
        frame = isinstance(converted, pd.DataFrame)
        values = _as_float64(converted, "Y")
        if frame:  # one column per dataset: the pandas layout, rows are X's rows
            values = values.T
        shape = values.T.shape if frame else values.shape  # as the user passed it
        n_rows = np.shape(X)[0]
        layout = ("a DataFrame with one column per dataset, of shape (n_samples, "
                  "n_datasets)" if frame else
                  "one outcome vector per dataset, of shape (n_datasets, n_samples)")
        if values.ndim != 2 or values.shape[0] < 1:
            raise ValueError(f"Y must be {layout}; got shape {shape}. For one "
                             f"dataset, use fit.")
        if values.shape[1] != n_rows:
            transposed = (" It looks transposed: pass Y.T."
                          if values.shape[0] == n_rows else "")
            raise ValueError(f"Y must be {layout}, with n_samples={n_rows} (the rows of "
                             f"X); got shape {shape}.{transposed}")
        vectors = list(enumerate(Y)) if isinstance(Y, (list, tuple)) else []
        check_same_rows([(treatment, "treatment"), (Y, "Y")]
                        + [(y, f"Y[{k}]") for k, y in vectors], X)
        return values

    def _dataset(self, k, y_mean, y_scale):
        """The fitted estimator of dataset ``k`` of a ``fit_many`` fit."""
        est = type(self).__new__(type(self))  # a shallow copy that skips pickling
        est.__dict__.update(self.__dict__)
        members = range(k * self.n_members, (k + 1) * self.n_members)
        est.module_ = select_members(self.module_, members, self.n_members_)
        est.n_members_ = self.n_members
        est.y_mean_, est.y_scale_ = float(y_mean), float(y_scale)
        best = np.asarray(self.best_epoch_).reshape(-1)[list(members)]
        est.best_epoch_ = int(best[0]) if self.n_members == 1 else best
        est.history_ = [self._dataset_record(record, list(members))
                        for record in self.history_]
        est._dataset_fitted_attributes(members)
        return est

    @staticmethod
    def _dataset_record(record, members):
        """One epoch of the pooled history, restricted to one dataset's ``members``.

        Every per-member list (``train_member_loss``, ``valid_member_<term>``, ...) is
        sliced to the dataset's members and its mean (``train_loss``,
        ``valid_<term>``, ...) recomputed from the slice, over the members still
        training (a member that has stopped and left the batched fit records NaN; the
        mean is NaN once all of the dataset's members have). A term logged only as the
        mean over all datasets' members cannot be split by dataset and is left out.
        ``epoch`` and ``dur`` (the batched epoch's seconds) are kept.
        """
        own = {k: record[k] for k in ("epoch",) if k in record}
        for key, values in record.items():
            prefix, member, term = key.partition("_member_")
            if member:
                values = np.asarray(values, dtype=float)[members]
                training = values[~np.isnan(values)]
                own[f"{prefix}_{term}"] = (float(np.mean(training)) if len(training)
                                           else float("nan"))
                own[key] = values.tolist()
        if "dur" in record:
            own["dur"] = record["dur"]
        return own

    def _dataset_fitted_attributes(self, members):
        """Slice further per-member fitted attributes (subclasses)."""

    # the networks take X as it is scaled: float32, their precision, without a float64
    # copy of the table (the values of rounding the float64 scaling), shared with torch
    _scaled_features_dtype = np.float32

    # ---- prediction -------------------------------------------------------------------
    def _forward(self, X, select):
        """Run the fitted network on ``X`` in large chunks; ``select`` picks from its
        output. Returns ``(n_members, n, ...)``."""
        X = torch.as_tensor(X, dtype=torch.float32)
        net = self.module_["net"]
        width = max(tuple(self.representation_layers) + tuple(self.head_layers) + (1,))
        # the widest of the members' activations and the input rows themselves
        rows = prediction_chunk_rows(self.device_,
                                     max(self.n_members_ * width, self.n_features_in_))
        return predict_in_batches(lambda x: select(net(x)), [X], device=self.device_,
                                  batch_size=rows, row_dim=1)

    def _predict_outcome(self, X, *treatments):
        arms = self._forward(X, lambda out: out.outcome)  # one pass serves every level
        return [np.where(t == 1, arms[..., 1], arms[..., 0]) for t in treatments]
