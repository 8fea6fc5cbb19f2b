"""The benchmark's datasets: each a named family of replications with its split and truth.

A replication is a :class:`~sklearn.utils.Bunch` with ``X``, ``treatment``, ``y``,
``fit_index`` (the rows an estimator is fitted on), ``test_index`` and, depending on
``kind``, the truth its metrics need:

- ``"binary"``: ``ite`` (true conditional effects), scored by sqrt(PEHE) and |ATE error|
  in-sample (the fit rows) and out-of-sample (the test rows);
- ``"iv"``: ``instrument``, scored by the counterfactual MSE of the structural function on
  :func:`~causalnn.datasets.demand_test_grid`;
- ``"multi_cause"``: ``effects`` (one per cause), scored by the RMSE of the per-cause
  effects.

Replications are regenerated from ``(name, replication)`` wherever they are needed, so
the work items of the grid ship a name and an index, never data (a Dask worker builds its
own copy).
"""
import numpy as np
from sklearn.utils import Bunch, check_random_state

from ..datasets import (demand_test_grid, load_ihdp, make_demand, make_ihdp,
                        make_multi_cause, make_proxy_confounded)

__all__ = ["DATASETS", "check_datasets", "check_seed", "dataset_kind", "demand_grid", "load_replication",
           "same_design"]


def _with_split(bunch, fit_index, test_index, kind):
    bunch.fit_index = np.asarray(fit_index)
    bunch.test_index = np.asarray(test_index)
    bunch.kind = kind
    return bunch


def _holdout(n, seed, test_fraction=0.1):
    """A seeded 90/10 split for simulators that come without one."""
    perm = check_random_state(seed).permutation(n)
    n_test = int(round(test_fraction * n))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def _ihdp_file(replication, seed):
    data = load_ihdp(replication)
    return _with_split(data, np.concatenate([data.train_index, data.valid_index]),
                       data.test_index, "binary")


_MAKE_IHDP_CACHE = {}


def _make_ihdp(replication, seed):
    # all replications of one seed are drawn together (the simulator's stream); cache the
    # last draw so a worker building replication k+1 does not redraw the lot
    key = (seed, replication)
    cached = _MAKE_IHDP_CACHE.get(seed)
    if cached is None or len(cached) < replication:
        cached = make_ihdp(max(replication, 100), random_state=seed)
        _MAKE_IHDP_CACHE.clear()
        _MAKE_IHDP_CACHE[seed] = cached
    data = cached[key[1] - 1]
    # one split shared by every replication (replication 1's 63/27/10): the replications
    # share X and the treatment, so a batched fit_many trains them all at once
    first = cached[0]
    return _with_split(Bunch(**data), np.concatenate([first.train_index, first.valid_index]),
                       first.test_index, "binary")


def _proxy(replication, seed):
    # c = 2, not the paper's 1: with c = 1 the outcome saturates (the effect is nearly
    # constant) and the confounding bias is 0.012, too small to tell methods apart
    data = make_proxy_confounded(2000, outcome_confounding=2.0,
                                 random_state=seed * _SEED_STRIDE + replication)
    return _with_split(data, *_holdout(len(data.y), seed + replication), "binary")


def _demand(replication, seed):
    data = make_demand(5000, rho=0.5, random_state=seed * _SEED_STRIDE + replication)
    everything = np.arange(len(data.y))
    return _with_split(data, everything, everything[:0], "iv")


def _multi_cause(replication, seed):
    data = make_multi_cause(2000, random_state=seed * _SEED_STRIDE + replication)
    everything = np.arange(len(data.y))
    return _with_split(data, everything, everything[:0], "multi_cause")


# name: (loader(replication, seed), kind, maximum replications, description)
DATASETS = {
    "ihdp": (_ihdp_file, "binary", 10,
             "the 10 shipped IHDP files (Hill 2011; Shalit et al. 2017), each with its "
             "own 63/27/10 split; fit on the 90%, test on the 10%"),
    "make_ihdp": (_make_ihdp, "binary", None,
                  "simulated IHDP response surface B (make_ihdp), one 63/27/10 split "
                  "shared by every replication"),
    "proxy": (_proxy, "binary", None,
              "make_proxy_confounded(2000, outcome_confounding=2): a binary latent "
              "confounder seen through noisy proxies (Louizos et al. 2017), with the "
              "outcome confounding its docs recommend for telling methods apart; "
              "90/10 split"),
    "demand": (_demand, "iv", None,
               "make_demand(5000, rho=0.5): the airline-demand IV simulation (Hartford "
               "et al. 2017), scored on demand_test_grid()"),
    "multi_cause": (_multi_cause, "multi_cause", None,
                    "make_multi_cause(2000): 50 causes with a latent confounder (Wang & "
                    "Blei 2019)"),
}


def dataset_kind(name):
    return DATASETS[name][1]


# the simulators draw replication r of seed s with random_state s * 100003 + r
_SEED_STRIDE = 100003
_SEEDED_BY_STRIDE = ("proxy", "demand", "multi_cause")
MAX_SEED = 2**32 - 1


def check_seed(seed, names, replications):
    """Refuse a ``seed`` whose derived seeds (``seed + r`` for the models,
    ``seed * 100003 + r`` for the simulators) leave numpy's range [0, 2**32 - 1]: a
    replication that cannot be drawn would otherwise stop the grid midway, naming a
    ``random_state`` the caller never gave."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}.")
    stride = _SEED_STRIDE if any(n in _SEEDED_BY_STRIDE for n in names) else 1
    largest = (MAX_SEED - replications) // stride
    if seed > largest:
        raise ValueError(f"seed: at most {largest} with {replications} replications of "
                         f"{', '.join(names)} (the seeds derived from it must stay below "
                         f"2**32); got {seed}.")


def check_datasets(names, replications):
    if isinstance(replications, bool) or not isinstance(replications, (int, np.integer)) \
            or replications < 1:
        raise ValueError(f"replications: expected a positive integer, got {replications!r}.")
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        raise ValueError(f"datasets: unknown {unknown}; choose from {list(DATASETS)}.")
    for name in names:
        limit = DATASETS[name][2]
        if limit is not None and replications > limit:
            raise ValueError(f"replications: dataset {name!r} has {limit}; got "
                             f"{replications} (use make_ihdp for more IHDP replications).")


def load_replication(name, replication, seed=0, shared_split=False):
    """Replication ``replication`` (numbered from 1) of dataset ``name``.

    ``shared_split=True`` gives every replication the fit and test rows of replication
    1 (the IHDP files then share X, treatment and split, so a representation estimator
    fits them all as one batched ``fit_many``).
    """
    data = DATASETS[name][0](replication, seed)
    data.replication = replication
    if shared_split and replication != 1:
        first = DATASETS[name][0](1, seed)
        data.fit_index, data.test_index = first.fit_index, first.test_index
    return data


_GRID = {}


def demand_grid():
    if "grid" not in _GRID:
        _GRID["grid"] = demand_test_grid()
    return _GRID["grid"]


def same_design(a, b):
    """Whether two replications share X, treatment and fit rows (batchable together)."""
    return (a.X is not None and b.X is not None and a.X.shape == b.X.shape
            and np.array_equal(a.fit_index, b.fit_index)
            and np.array_equal(a.X, b.X) and np.array_equal(a.treatment, b.treatment))



