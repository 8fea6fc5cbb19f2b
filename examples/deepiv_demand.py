"""DeepIV on the airline-demand simulation of Hartford et al. (2017).

Ticket prices rise with a demand shock the analyst does not see, so regressing sales on
price gets the price response wrong. A cost shifter ``z`` moves the price but not demand:
an instrument. DeepIV uses it to recover the structural demand curve ``h(p, t, s)``.

The script fits DeepIV and, for comparison, a network of the same size regressing ``y``
on ``(p, x)`` (scikit-learn's MLPRegressor, which ignores the instrument), then scores both against the true ``h`` on the
library's fixed 2800-point test grid and prints the estimated price slope of each customer type.

Run ``python examples/deepiv_demand.py``; ``main(n_samples=..., rho=...)`` changes the
data size and the strength of the confounding.
"""
import warnings

import numpy as np

from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from causalnn import DeepIV
from causalnn.datasets import demand_structural, demand_test_grid, make_demand
from causalnn.exceptions import ConvergenceWarning


def main(n_samples=5000, rho=0.9, max_epochs=300, random_state=0):
    """Fit DeepIV and an instrument-blind fit of ``h``; print their counterfactual MSE.

    Returns
    -------
    results : dict
        ``{"DeepIV": mse, "instrument-blind": mse}`` on the standardised scale of h.
    """
    data = make_demand(n_samples, rho=rho, random_state=random_state)
    grid = demand_test_grid()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", SklearnConvergenceWarning)
        est = DeepIV(max_epochs=max_epochs, random_state=random_state).fit(
            data.X, data.y, treatment=data.treatment, instrument=data.instrument)
        # the instrument-blind fit: a network of h's size regressing y on (p, x)
        blind = make_pipeline(StandardScaler(), MLPRegressor(
            hidden_layer_sizes=(128, 64, 32), early_stopping=True, max_iter=max_epochs,
            random_state=random_state))
        blind.fit(np.column_stack([data.treatment, data.X]), data.y)
    print(f"first stage: partial R^2 of z = {est.first_stage_strength_:.3f}, "
          f"F = {est.first_stage_f_statistic_:.0f}")
    results = {}
    predictions = {
        "DeepIV": est.predict_outcome(grid.X, grid.treatment),
        "instrument-blind": blind.predict(np.column_stack([grid.treatment, grid.X])),
    }
    for name, prediction in predictions.items():
        mse = np.mean((prediction - grid.structural) ** 2)
        results[name] = float(mse)
        print(f"{name:>17}: counterfactual MSE on the test grid {mse:.3f}")

    # the price slope dh/dp per customer type, averaged over the test grid
    slope = est.marginal_effect(grid.X, T=grid.treatment)
    step = 1e-3
    true_slope = (demand_structural(grid.X, grid.treatment + step)
                  - demand_structural(grid.X, grid.treatment - step)) / (2 * step)
    customer_type = grid.X[:, 1:].argmax(axis=1) + 1
    print("mean dh/dp by customer type (DeepIV / true):")
    for s in range(1, 8):
        rows = customer_type == s
        print(f"  type {s}: {slope[rows].mean():+.4f} / {true_slope[rows].mean():+.4f}")
    return results


if __name__ == "__main__":
    main()
