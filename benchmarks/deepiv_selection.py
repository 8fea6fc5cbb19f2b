"""DeepIV's row of the model-selection table in ``docs/deepiv.md`` (*Choosing
hyperparameters*): one default DeepIV fitted to ``make_demand(5000, rho=0.9,
random_state=0)``, scored on ``make_demand(20000, rho=0.9, random_state=1)`` by the
factual R^2 (``score``) and the causal validation loss, and its counterfactual MSE on
the test grid and on the authors' kind of price sweep: fresh covariates paired row by
row with prices evenly spaced between the 2.5% and 97.5% quantiles of that draw's
prices (50,000 points, ``make_demand(50000, rho=0.9, random_state=2)``).

Beside it, on the same grid and sweep, the confounded regression
``E[y | p, x] = h + rho E[v | p, x]`` (closed form). The table's scores of the
structural function and the confounded regression do not depend on causalnn's
training (``tests/iv/test_causal_validation.py`` computes them).

Run:  OMP_NUM_THREADS=1 python benchmarks/deepiv_selection.py
Prints the row; writes nothing.
"""
import argparse
import time
import warnings

import numpy as np
import torch

from causalnn import DeepIV
from causalnn.benchmark import machine_description
from causalnn.datasets import demand_structural, demand_test_grid, make_demand
from causalnn.datasets._demand import _psi


def confounded_regression(X, prices, rho=0.9):
    """``E[y | p, x]`` of make_demand: ``h + rho E[v | p, t]`` with
    ``E[v | p, t] = (p - 25 - 3 psi(t)) / (psi(t)^2 + 1)``."""
    psi = _psi(X[:, 0])
    return demand_structural(X, prices) + rho * (prices - 25 - 3 * psi) / (psi ** 2 + 1)


def sweep(n=50_000, random_state=2):
    """The authors' evaluation design: fresh covariates, evenly spaced prices."""
    draw = make_demand(n, rho=0.9, random_state=random_state)
    low, high = np.quantile(np.ravel(draw.treatment), [0.025, 0.975])
    prices = np.linspace(low, high, n)
    return draw.X, prices, demand_structural(draw.X, prices)


def main():
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    torch.set_num_threads(1)
    train = make_demand(5000, rho=0.9, random_state=0)
    held_out = make_demand(20000, rho=0.9, random_state=1)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = DeepIV(random_state=0).fit(train.X, train.y, treatment=train.treatment,
                                         instrument=train.instrument)
        fit_s = time.perf_counter() - started
        grid = demand_test_grid()
        grid_mse = np.mean((est.predict_outcome(grid.X, grid.treatment)
                            - grid.structural) ** 2)
        X, prices, truth = sweep()
        sweep_mse = np.mean((est.predict_outcome(X, prices) - truth) ** 2)
        r2 = est.score(held_out.X, held_out.y, treatment=held_out.treatment)
    loss = est.causal_validation_loss(held_out.X, held_out.y, held_out.instrument)
    others = {"the confounded regression": confounded_regression}
    other_rows = [
        f"| {name} | | | {np.mean((h(grid.X, grid.treatment) - grid.structural) ** 2):.3f}"
        f" | {np.mean((h(X, prices) - truth) ** 2):.3f} | |" for name, h in others.items()]
    print(f"Machine: {machine_description(torch.device('cpu'), threads=1)}")
    print("| candidate h | R^2 (score) | causal validation loss | MSE on demand_test_grid "
          "| MSE on the price sweep | fit s |")
    print("|---|---|---|---|---|---|")
    print(f"| DeepIV, fitted with its defaults | {r2:.3f} | {loss:.3f} | {grid_mse:.3f} "
          f"| {sweep_mse:.3f} | {fit_s:.0f} |")
    print("\n".join(other_rows))


if __name__ == "__main__":
    main()
