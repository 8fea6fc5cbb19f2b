"""The IHDP semi-synthetic benchmark (Hill, 2011) in the form of Shalit et al. (2017).

The Infant Health and Development Program (IHDP) was a randomized trial of
intensive high-quality child care and home visits for low-birth-weight,
premature infants. Hill (2011) turned it into a benchmark for causal inference
with known ground truth: the treated group was made non-random by removing a
biased subset of the treated children (non-white mothers), and the outcomes
were *simulated* from known response surfaces of the real covariates. Shalit,
Johansson and Sontag (2017) and Louizos et al. (2017) popularised a
pre-generated set of replications of Hill's response surface "B" produced
with the NPCI package (Dorie, 2016); ten of these replications are shipped
with causalnn.

References
----------
.. [1] J. L. Hill, "Bayesian nonparametric modeling for causal inference",
   Journal of Computational and Graphical Statistics, 20(1):217-240, 2011.
.. [2] U. Shalit, F. D. Johansson and D. Sontag, "Estimating individual
   treatment effect: generalization bounds and algorithms", ICML, 2017.
.. [3] C. Louizos, U. Shalit, J. Mooij, D. Sontag, R. Zemel and M. Welling,
   "Causal effect inference with deep latent-variable models", NeurIPS, 2017.
.. [4] V. Dorie, "NPCI: Non-parametrics for causal inference", 2016,
   https://github.com/vdorie/npci.
"""

import numbers
from functools import lru_cache
from importlib import resources

import numpy as np
from sklearn.utils import Bunch

from ._checks import check_seed

__all__ = ["load_ihdp", "make_ihdp"]

N_REPLICATIONS = 10
"""Number of IHDP replications shipped with the package."""

FEATURE_NAMES = [f"x{j}" for j in range(1, 26)]
_N_CONTINUOUS = 6  # x1..x6 continuous (standardized), x7..x25 binary
_X14 = 13  # 0-based column of x14, coded {1, 2} in the source files

_TRAIN_FRACTION = 0.63
_VALID_FRACTION = 0.27

# Hill (2011), response surface B.
_BETA_VALUES = np.array([0.0, 0.1, 0.2, 0.3, 0.4])
_BETA_PROBS = np.array([0.6, 0.1, 0.1, 0.1, 0.1])
_OFFSET = 0.5
_CATT = 4.0

DESCR = """\
.. _ihdp_dataset:

IHDP semi-synthetic benchmark (Hill, 2011; form of Shalit et al., 2017)
------------------------------------------------------------------------

**Data Set Characteristics:**

:Number of Instances: 747 (139 treated, 608 control)
:Number of Attributes: 25 covariates x1..x25: x1..x6 continuous
    (standardized), x7..x25 binary (x14, coded 1/2 in the source files, is
    recoded 0/1)
:Treatment: binary, intensive child care and home visits
:Outcome: simulated; response surface "B" of Hill (2011),
    E[Y(0) | x] = exp((x + 0.5) beta), E[Y(1) | x] = x beta - omega,
    with omega set so that the average effect on the treated is 4.
:Replications: 10 shipped (NPCI simulations used by Shalit et al., 2017 and
    Louizos et al., 2017); more can be simulated with ``make_ihdp``.

The covariates come from the Infant Health and Development Program, a
randomized experiment on low-birth-weight premature infants. Hill (2011)
made the treatment assignment non-random by removing a non-random subset of
the treated units and simulated the outcomes, so that both potential outcomes,
their noiseless means ``mu0``, ``mu1`` and the individual effects
``ite = mu1 - mu0`` are known.

Each replication comes with the customary 63/27/10 train/validation/test
split (``train_index``, ``valid_index``, ``test_index``), drawn from
``numpy.random.RandomState(replication)``. The usual report is the square
root of the PEHE in-sample (train + validation) and out-of-sample (test),
together with the absolute ATE error.

The outcome scale differs widely between replications because of the
exponential control surface: replications 9 and 10 have much larger and more
heavy-tailed outcomes (and effects) than the others.

.. topic:: References

    - J. L. Hill, "Bayesian nonparametric modeling for causal inference",
      Journal of Computational and Graphical Statistics 20(1), 2011.
    - U. Shalit, F. D. Johansson and D. Sontag, "Estimating individual
      treatment effect: generalization bounds and algorithms", ICML 2017.
    - C. Louizos et al., "Causal effect inference with deep latent-variable
      models", NeurIPS 2017.
"""


def _check_replication(replication):
    if (
        isinstance(replication, bool)
        or not isinstance(replication, numbers.Integral)
        or not 1 <= int(replication) <= N_REPLICATIONS
    ):
        raise ValueError(
            f"`replication` must be an integer in 1..{N_REPLICATIONS}, "
            f"got {replication!r}."
        )
    return int(replication)


@lru_cache(maxsize=N_REPLICATIONS)
def _read_replication(replication):
    """Read one shipped CSV file (cached); returns a read-only array."""
    resource = (
        resources.files(__package__)
        .joinpath("data")
        .joinpath("ihdp")
        .joinpath(f"ihdp_npci_{replication}.csv")
    )
    with resource.open("r") as f:
        data = np.loadtxt(f, delimiter=",", dtype=np.float64)
    data.setflags(write=False)
    return data


def _covariates(data):
    X = np.array(data[:, 5:], dtype=np.float64)
    X[:, _X14] -= 1.0  # {1, 2} -> {0, 1}
    return X


def _split_indices(n, random_state):
    """Customary 63/27/10 train/validation/test split of ``range(n)``."""
    perm = random_state.permutation(n)
    n_train = int(round(_TRAIN_FRACTION * n))
    n_valid = int(round(_VALID_FRACTION * n))
    return (
        np.sort(perm[:n_train]),
        np.sort(perm[n_train : n_train + n_valid]),
        np.sort(perm[n_train + n_valid :]),
    )


def _make_bunch(X, treatment, y, y_cf, mu0, mu1, splits, replication, as_frame):
    ite = mu1 - mu0
    train_index, valid_index, test_index = splits
    frame = None
    if as_frame:
        import pandas as pd

        X = pd.DataFrame(X, columns=FEATURE_NAMES)
        frame = X.assign(treatment=treatment, y=y)
    return Bunch(
        X=X,
        treatment=treatment,
        y=y,
        y_cf=y_cf,
        mu0=mu0,
        mu1=mu1,
        ite=ite,
        ate=float(np.mean(ite)),
        train_index=train_index,
        valid_index=valid_index,
        test_index=test_index,
        feature_names=list(FEATURE_NAMES),
        frame=frame,
        replication=replication,
        DESCR=DESCR,
    )


def load_ihdp(replication=1, *, as_frame=False):
    """Load one of the 10 shipped replications of the IHDP benchmark.

    The data are the NPCI simulations of response surface "B" of Hill (2011)
    in the form used by Shalit et al. (2017): 747 units, 139 of them treated,
    25 covariates. The files ship with the package and are read offline.

    Parameters
    ----------
    replication : int, default=1
        Which replication to load, from 1 to 10.
    as_frame : bool, default=False
        If True, ``X`` is a :class:`pandas.DataFrame` with columns
        ``x1..x25`` and ``frame`` holds ``X`` together with the columns
        ``treatment`` and ``y`` (handy with an estimator's
        ``treatment_col="treatment"``).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the attributes:

        X : ndarray of shape (747, 25) or DataFrame
            Covariates; x1..x6 continuous (standardized), x7..x25 binary
            (x14 recoded from {1, 2} to {0, 1}).
        treatment : ndarray of shape (747,), dtype int
            Treatment indicator in {0, 1}.
        y : ndarray of shape (747,)
            Observed (factual) outcome.
        y_cf : ndarray of shape (747,)
            Counterfactual outcome (noisy), the potential outcome not observed.
        mu0, mu1 : ndarray of shape (747,)
            Noiseless potential-outcome surfaces E[Y(0)|x], E[Y(1)|x].
        ite : ndarray of shape (747,)
            True conditional effects ``mu1 - mu0``.
        ate : float
            Sample average treatment effect, ``ite.mean()``.
        train_index, valid_index, test_index : ndarray of int
            The customary 63/27/10 split (471/202/74 units), a permutation
            drawn from ``numpy.random.RandomState(replication)``; each sorted.
        feature_names : list of str
            ``["x1", ..., "x25"]``.
        frame : DataFrame or None
            Covariates, ``treatment`` and ``y`` when ``as_frame=True``.
        replication : int
            The replication number.
        DESCR : str
            Description of the data set.

    Raises
    ------
    ValueError
        If ``replication`` is not an integer in 1..10.

    See Also
    --------
    make_ihdp : Simulate new replications of the same response surface.

    References
    ----------
    .. [1] J. L. Hill, "Bayesian nonparametric modeling for causal
       inference", Journal of Computational and Graphical Statistics,
       20(1):217-240, 2011.
    .. [2] U. Shalit, F. D. Johansson and D. Sontag, "Estimating individual
       treatment effect: generalization bounds and algorithms", ICML, 2017.

    Examples
    --------
    >>> from causalnn.datasets import load_ihdp
    >>> data = load_ihdp(1)
    >>> data.X.shape, int(data.treatment.sum())
    ((747, 25), 139)
    >>> len(data.train_index), len(data.valid_index), len(data.test_index)
    (471, 202, 74)
    """
    replication = _check_replication(replication)
    data = _read_replication(replication)
    X = _covariates(data)
    treatment = data[:, 0].astype(int)
    y = np.array(data[:, 1])
    y_cf = np.array(data[:, 2])
    mu0 = np.array(data[:, 3])
    mu1 = np.array(data[:, 4])
    splits = _split_indices(X.shape[0], np.random.RandomState(replication))
    return _make_bunch(
        X, treatment, y, y_cf, mu0, mu1, splits, replication, as_frame
    )


def make_ihdp(n_replications=10, *, random_state=None, as_frame=False):
    """Simulate new replications of the IHDP response surface "B" (Hill, 2011).

    The covariates ``X`` and the treatment assignment are those of the
    shipped IHDP files (x14 recoded to {0, 1}). For each replication a new
    coefficient vector ``beta`` is drawn, with entries taking the values
    (0, 0.1, 0.2, 0.3, 0.4) with probabilities (0.6, 0.1, 0.1, 0.1, 0.1), and

    .. math::

        \\mu_0(x) = \\exp((x + w)\\beta), \\qquad
        \\mu_1(x) = x\\beta - \\omega,

    where ``w`` is an offset with every entry 0.5 and ``omega`` is chosen so
    that the average effect on the treated, the mean of
    ``mu1 - mu0`` over treated units, equals 4. The potential outcomes are
    ``Y(t) ~ N(mu_t(x), 1)``; ``y`` is the factual one.

    Parameters
    ----------
    n_replications : int, default=10
        Number of replications to simulate.
    random_state : int, RandomState instance or None, default=None
        Seed of the simulation (coefficients, noise and splits). Pass an int
        for reproducible output.
    as_frame : bool, default=False
        Return ``X`` as a DataFrame (see :func:`load_ihdp`).

    Returns
    -------
    replications : list of :class:`~sklearn.utils.Bunch`
        One Bunch per replication with the same fields as :func:`load_ihdp`
        (``replication`` numbered from 1). The 63/27/10 split of each
        replication is drawn from ``random_state``.

    Raises
    ------
    ValueError
        If ``n_replications`` is not a positive integer.

    Notes
    -----
    Because of the exponential control surface some draws of ``beta``
    produce outcomes on a much larger scale than others, as in the shipped
    replications 9 and 10.

    References
    ----------
    .. [1] J. L. Hill, "Bayesian nonparametric modeling for causal
       inference", Journal of Computational and Graphical Statistics,
       20(1):217-240, 2011, section 4.1 (response surface B).

    Examples
    --------
    >>> from causalnn.datasets import make_ihdp
    >>> reps = make_ihdp(3, random_state=0)
    >>> len(reps), reps[0].X.shape
    (3, (747, 25))
    >>> t = reps[0].treatment == 1
    >>> round(float((reps[0].mu1 - reps[0].mu0)[t].mean()), 6)
    4.0
    """
    if (
        isinstance(n_replications, bool)
        or not isinstance(n_replications, numbers.Integral)
        or n_replications < 1
    ):
        raise ValueError(
            "`n_replications` must be a positive integer, "
            f"got {n_replications!r}."
        )
    rng = check_seed(random_state)
    data = _read_replication(1)
    X = _covariates(data)
    treatment = data[:, 0].astype(int)
    treated = treatment == 1
    n, p = X.shape

    replications = []
    for k in range(int(n_replications)):
        beta = rng.choice(_BETA_VALUES, size=p, p=_BETA_PROBS)
        mu0 = np.exp((X + _OFFSET) @ beta)
        lin = X @ beta
        omega = np.mean(lin[treated] - mu0[treated]) - _CATT
        mu1 = lin - omega
        y0 = mu0 + rng.standard_normal(n)
        y1 = mu1 + rng.standard_normal(n)
        y = np.where(treated, y1, y0)
        y_cf = np.where(treated, y0, y1)
        splits = _split_indices(n, rng)
        replications.append(
            _make_bunch(
                X.copy(),
                treatment.copy(),
                y,
                y_cf,
                mu0,
                mu1,
                splits,
                k + 1,
                as_frame,
            )
        )
    return replications
