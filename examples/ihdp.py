"""TARNet, CFR and Dragonnet on the IHDP benchmark.

IHDP (Hill, 2011) is semi-synthetic: the outcomes are simulated, so the true individual
effects are known and estimators can be compared on the two usual errors,

- sqrt(PEHE): root mean squared error of the estimated conditional effects, and
- |ATE error|: absolute error of the estimated average effect,

in-sample (the 90% train + validation rows the model is fitted on; each estimator holds
out 30% of them internally for early stopping, the customary 63/27 split) and
out-of-sample (the 10% test rows).

Run ``python examples/ihdp.py``; ``main(replication=k)`` picks another replication.
"""
import time

import numpy as np

from causalnn import CFRNet, Dragonnet, TARNet
from causalnn.datasets import load_ihdp
from causalnn.metrics import ate_error, pehe


def evaluate(estimator, data, rows):
    """sqrt(PEHE) and |ATE error| of a fitted estimator on ``rows`` of ``data``."""
    X, ite = data.X[rows], data.ite[rows]
    return pehe(ite, estimator.effect(X)), ate_error(ite, estimator.ate(X))


def main(replication=1, max_epochs=300, random_state=0):
    """Fit the three estimators on one IHDP replication and print their errors.

    Parameters
    ----------
    replication : int, default=1
        IHDP replication, 1 to 10.
    max_epochs : int, default=300
        Upper bound on training epochs (early stopping usually ends training sooner).
    random_state : int, default=0
        Seed of every estimator.

    Returns
    -------
    results : dict
        ``{name: (pehe_in, ate_error_in, pehe_out, ate_error_out)}``.
    """
    data = load_ihdp(replication)
    fit_rows = np.concatenate([data.train_index, data.valid_index])
    test_rows = data.test_index
    estimators = {
        "TARNet": TARNet(max_epochs=max_epochs, random_state=random_state),
        "CFR (Wasserstein)": CFRNet(max_epochs=max_epochs, random_state=random_state),
        "Dragonnet": Dragonnet(max_epochs=max_epochs, random_state=random_state),
    }

    print(f"IHDP replication {replication}: fit on {len(fit_rows)} rows, "
          f"test on {len(test_rows)}")
    header = (f"{'':18} {'sqrt(PEHE)':>10} {'ATE err':>8}   {'sqrt(PEHE)':>10} "
              f"{'ATE err':>8}   {'fit':>6}")
    print(f"{'':18} {'in-sample':^19}   {'out-of-sample':^19}")
    print(header)
    results = {}
    for name, estimator in estimators.items():
        start = time.perf_counter()
        estimator.fit(data.X[fit_rows], data.y[fit_rows],
                      treatment=data.treatment[fit_rows])
        elapsed = time.perf_counter() - start
        results[name] = evaluate(estimator, data, fit_rows) + evaluate(
            estimator, data, test_rows)
        p_in, a_in, p_out, a_out = results[name]
        print(f"{name:18} {p_in:10.3f} {a_in:8.3f}   {p_out:10.3f} {a_out:8.3f}   "
              f"{elapsed:5.1f}s")
    return results


if __name__ == "__main__":
    main()
