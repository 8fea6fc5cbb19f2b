"""The airline ticket-demand simulation of Hartford et al. (2017), Section 5.1.

Price ``p`` is set from the season ``t``, a cost shifter ``z`` (the instrument) and a
shock ``v`` that also moves demand: regressing sales on price is confounded, and ``z``
identifies the structural demand function ``h(p, t, s)``.
"""
import numpy as np
from sklearn.utils import Bunch

from ._checks import check_int, check_real, check_seed

__all__ = ["make_demand", "demand_structural", "demand_test_grid", "make_linear_iv"]

N_TYPES = 7


def _psi(t):
    """Seasonal price sensitivity: ``2((t-5)^4/600 + exp(-4(t-5)^2) + t/10 - 2)``."""
    return 2.0 * ((t - 5.0) ** 4 / 600.0 + np.exp(-4.0 * (t - 5.0) ** 2) + t / 10.0 - 2.0)


def _raw_h(price, time, customer_type):
    return 100.0 + (10.0 + price) * customer_type * _psi(time) - 2.0 * price


def _h_moments():
    """Mean and standard deviation of ``h(p, t, s)`` under the simulation's design, in
    closed form given ``t`` (``E p = 25 + 3 psi``, ``Var p = psi^2 + 1``) and integrated
    over ``t ~ U[0, 10]`` and ``s`` uniform on 1..7 numerically (fine grid)."""
    t = np.linspace(0.0, 10.0, 200001)[:, None]
    s = np.arange(1, N_TYPES + 1)[None, :]
    psi = _psi(t)
    mean_p, var_p = 25.0 + 3.0 * psi, psi ** 2 + 1.0
    slope = s * psi - 2.0                      # dh/dp
    mean_ts = 100.0 + 10.0 * s * psi + slope * mean_p
    var_ts = slope ** 2 * var_p
    mean = mean_ts.mean()
    return float(mean), float(np.sqrt((var_ts + mean_ts ** 2).mean() - mean ** 2))


H_MEAN, H_STD = _h_moments()


def _features(time, type_index):
    onehot = np.zeros((len(time), N_TYPES))
    onehot[np.arange(len(time)), type_index] = 1.0
    return np.column_stack([time, onehot])


def demand_structural(X, price):
    """The true structural demand function on the standardised scale.

    Parameters
    ----------
    X : ndarray of shape (n_samples, 8)
        Time ``t`` and the one-hot customer type, as returned by :func:`make_demand`.
    price : float or ndarray of shape (n_samples,) or (n_samples, 1)
        One price per row; a number prices every row; with a single row of ``X``, a
        1-d array of prices is that row's demand curve.

    Returns
    -------
    h : ndarray of shape (n_samples,), or (n_prices,) for one row's curve
        ``(h(p, t, s) - H_MEAN) / H_STD``, noise-free.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != 1 + N_TYPES:
        raise ValueError(f"X must have shape (n_samples, {1 + N_TYPES}) (time and the "
                         f"one-hot customer type, as make_demand returns); got shape "
                         f"{X.shape}.")
    price = np.asarray(price, dtype=np.float64)
    if price.ndim == 0:  # one price for every row
        price = np.full(X.shape[0], float(price))
    if price.ndim == 2 and price.shape[1] == 1:  # a one-column treatment matrix
        price = price[:, 0]
    if X.shape[0] == 1 and price.ndim == 1:  # one row's demand curve over prices
        X = np.repeat(X, len(price), axis=0)
    if price.shape != (X.shape[0],):
        # broadcasting an (n, 1) or mismatched price against (n,) would return an
        # (n, n) or wrong-length "truth"
        raise ValueError(f"price must have shape (n_samples,) = ({X.shape[0]},) or "
                         f"({X.shape[0]}, 1) to match X; got shape {price.shape}.")
    customer_type = X[:, 1:].argmax(axis=1) + 1.0
    return (_raw_h(price, X[:, 0], customer_type) - H_MEAN) / H_STD


def make_demand(n_samples=5000, rho=0.5, random_state=None):
    """Simulate the airline ticket-demand data of Hartford et al. (2017).

    - time ``t ~ U[0, 10]``, customer type ``s`` uniform on 1..7, instrument
      ``z ~ N(0, 1)``, price shock ``v ~ N(0, 1)``;
    - price ``p = 25 + (z + 3) psi(t) + v`` with
      ``psi(t) = 2((t - 5)^4 / 600 + exp(-4 (t - 5)^2) + t / 10 - 2)``;
    - demand ``h(p, t, s) = 100 + (10 + p) s psi(t) - 2 p``;
    - ``y = (h - H_MEAN) / H_STD + e`` with ``e = rho v + sqrt(1 - rho^2) N(0, 1)``.

    The noise is added on the standardised scale of ``h`` (``H_MEAN``, ``H_STD``: its
    exact mean and standard deviation under this design), as the authors' released code
    does. With unit noise on the raw scale, ``var(y)`` would be about 25,000 and the
    confounding through ``v`` invisible. ``rho`` is the correlation between the price
    shock and the demand noise: the strength of the confounding.

    Parameters
    ----------
    n_samples : int, default=5000
    rho : float in [0, 1], default=0.5
    random_state : int, RandomState or None, default=None

    Returns
    -------
    data : Bunch
        ``X`` (n, 8): time and one-hot customer type; ``treatment`` (n,): the price;
        ``instrument`` (n, 1): ``z``; ``y`` (n,); ``structural`` (n,): the noise-free
        standardised ``h`` at the observed price; ``feature_names``; ``rho``.

    References
    ----------
    .. [1] J. Hartford, G. Lewis, K. Leyton-Brown, M. Taddy. "Deep IV: A flexible
       approach for counterfactual prediction". ICML 2017.
    """
    check_int(n_samples, "n_samples", 1)
    rho = check_real(rho, "rho", low=0.0, high=1.0)
    rng = check_seed(random_state)
    time = rng.uniform(0.0, 10.0, n_samples)
    type_index = rng.randint(0, N_TYPES, n_samples)
    z = rng.standard_normal(n_samples)
    v = rng.standard_normal(n_samples)
    price = 25.0 + (z + 3.0) * _psi(time) + v
    X = _features(time, type_index)
    structural = demand_structural(X, price)
    noise = rho * v + np.sqrt(1.0 - rho ** 2) * rng.standard_normal(n_samples)
    return Bunch(X=X, treatment=price, instrument=z[:, None], y=structural + noise,
                 structural=structural, rho=rho,
                 feature_names=["time"] + [f"type_{k}" for k in range(1, N_TYPES + 1)])


def demand_test_grid(n_prices=20, n_times=20):
    """A fixed test grid over the demand design: prices x times x the 7 customer types.

    This library's grid, not the authors' evaluation (they sweep prices over randomly
    drawn covariates), so its MSEs do not compare with the paper's plots.

    Prices are ``n_prices`` evenly spaced points between the 2.5% and 97.5% quantiles of
    the simulated price distribution, times ``n_times`` points on [0, 10].

    Returns
    -------
    grid : Bunch
        ``X`` (m, 8), ``treatment`` (m,) and ``structural`` (m,), the noise-free
        standardised ``h`` to score a counterfactual prediction against
        (``m = n_prices * n_times * 7``, 2800 by default).
    """
    check_int(n_prices, "n_prices", 1)
    check_int(n_times, "n_times", 1)
    reference = make_demand(100000, rho=0.0, random_state=0).treatment
    prices = np.linspace(*np.quantile(reference, [0.025, 0.975]), n_prices)
    times = np.linspace(0.0, 10.0, n_times)
    p, t, s = (a.ravel() for a in np.meshgrid(prices, times, np.arange(N_TYPES),
                                               indexing="ij"))
    X = _features(t, s)
    return Bunch(X=X, treatment=p, structural=demand_structural(X, p))


def make_linear_iv(n_samples=3000, strength=1.0, random_state=0):
    """A linear instrumental-variable design whose structural slope is known (2).

    ``x, z, u ~ N(0, 1)``; ``t = strength z + x + 2 u + 0.3 e_t``;
    ``y = 2 t + x + 3 u + 0.3 e_y``. The unobserved ``u`` moves both the treatment and
    the outcome, so least squares of ``y`` on ``t`` and ``x`` overstates the slope
    (about 2.7 at ``strength=2``), while ``z`` reaches ``y`` only through ``t``: two-stage
    least squares and DeepIV should recover 2. ``strength=0`` makes the instrument
    irrelevant. A check of IV estimators (it backs DeepIV's tests and
    ``benchmarks/deepiv_seeds.py``), not a benchmark of realistic difficulty.

    Parameters
    ----------
    n_samples : int, default=3000
    strength : float >= 0, default=1.0
        The instrument's coefficient in the treatment.
    random_state : int, RandomState or None, default=0

    Returns
    -------
    data : Bunch
        ``X`` (n, 1); ``treatment`` (n,); ``instrument`` (n, 1); ``y`` (n,);
        ``slope``: 2.0.
    """
    check_int(n_samples, "n_samples", 1)
    strength = check_real(strength, "strength", low=0.0)
    rng = check_seed(random_state)
    x, z, u = rng.randn(n_samples, 1), rng.randn(n_samples, 1), rng.randn(n_samples)
    t = strength * z[:, 0] + x[:, 0] + 2.0 * u + 0.3 * rng.randn(n_samples)
    y = 2.0 * t + x[:, 0] + 3.0 * u + 0.3 * rng.randn(n_samples)
    return Bunch(X=x, treatment=t, instrument=z, y=y, slope=2.0)
