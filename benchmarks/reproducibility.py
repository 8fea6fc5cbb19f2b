"""Repeatability of CPU fits across torch thread counts and under joblib's threading
backend.

Three checks, each on small simulated data with ``random_state=0``:

1. Every estimator, networks 128 units wide, fitted three times: with 1 torch thread,
   with 2, and with 1 again. A repeat at the same thread count must agree exactly; with
   another count the matrix products add up in another order, so the float32 round-off
   may differ. The table gives the largest difference of the effects and, for scale,
   their standard deviation.
2. A longer TARNet fit (200-unit layers, 1,000 rows, early stopping), 1 and 2 threads:
   does training amplify the round-off (another best epoch, a larger difference)?
3. ``cross_validate(n_jobs=2)`` inside ``joblib.parallel_backend("threading")``, five
   times, against a sequential run: the scores, and whether torch's global random
   stream was left changed (fits overlapping in one process restore each other's saved
   streams; docs/index.md).

    OMP_NUM_THREADS=1 python benchmarks/reproducibility.py

appends its tables to ``benchmarks/results/reproducibility_cpu.md`` (``--out``).
"""
import argparse
import os
import sys
import time
import warnings

import joblib
import numpy as np
import sklearn
import torch
from sklearn.model_selection import KFold, cross_validate

from causalnn import CEVAE, CFRNet, Deconfounder, DeepIV, Dragonnet, TARNet
from causalnn.benchmark import machine_description
from inference_coverage import append_section  # benchmarks/ is the script's folder

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def binary_treatment_data(n=200, p=5, seed=0):
    """Confounded binary treatment, ``tau(x) = 1 + x_2``; ``x_0`` is a 0/1 column."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, p))
    X[:, 0] = rng.binomial(1, 0.5, n)
    t = rng.binomial(1, 1 / (1 + np.exp(-X[:, 1])))
    y = X[:, 1] + t * (1 + X[:, 2]) + 0.5 * rng.normal(size=n)
    return X, y, {"treatment": t}


def instrument_data(n=300, p=3, seed=0):
    rng = np.random.RandomState(seed)
    X, z, u = rng.normal(size=(n, p)), rng.normal(size=n), rng.normal(size=n)
    t = z + u + X[:, 0]
    y = 2 * t + u + X[:, 1] + 0.3 * rng.normal(size=n)
    return X, y, {"treatment": t, "instrument": z}


def many_causes_data(n=200, m=6, p=2, seed=0):
    rng = np.random.RandomState(seed)
    Z = rng.normal(size=(n, 1))
    A = Z @ rng.normal(size=(1, m)) + rng.normal(size=(n, m))
    X = rng.normal(size=(n, p))
    y = A @ np.linspace(-1, 1, m) + Z[:, 0] + X[:, 0] + 0.3 * rng.normal(size=n)
    return X, y, {"treatment": A}


WIDE = dict(representation_layers=(128, 128), head_layers=(64,), max_epochs=5,
            batch_size=64)
ESTIMATORS = {  # name: (make, data)
    "TARNet": (lambda: TARNet(**WIDE), binary_treatment_data),
    "CFRNet": (lambda: CFRNet(**WIDE), binary_treatment_data),
    "Dragonnet": (lambda: Dragonnet(**WIDE), binary_treatment_data),
    "CEVAE": (lambda: CEVAE(hidden_layers=(128, 128), latent_dim=5, max_epochs=5,
                            n_samples=10, batch_size=64), binary_treatment_data),
    "DeepIV": (lambda: DeepIV(n_components=3, first_stage_layers=(128, 64),
                              outcome_layers=(128, 64), max_epochs=5, batch_size=64),
               instrument_data),
    "Deconfounder": (lambda: Deconfounder(n_factors=1, outcome_model="neural",
                                          outcome_layers=(128, 64), max_epochs=5,
                                          factor_max_epochs=20, n_replicates=10),
                     many_causes_data),
}


def fitted_effect(make, X, y, kw, threads):
    torch.set_num_threads(threads)
    try:
        est = make().set_params(random_state=0, device="cpu").fit(X, y, **kw)
        return np.asarray(est.effect(X)), est
    finally:
        torch.set_num_threads(1)


def thread_counts_section():
    lines = ["| estimator | repeat, 1 thread: max abs difference | 1 vs 2 threads: max "
             "abs difference | sd of the effects |", "|---|---|---|---|"]
    for name, (make, data) in ESTIMATORS.items():
        X, y, kw = data()
        first, _ = fitted_effect(make, X, y, kw, 1)
        two, _ = fitted_effect(make, X, y, kw, 2)
        again, _ = fitted_effect(make, X, y, kw, 1)
        lines.append(f"| {name} | {np.max(np.abs(first - again)):.3g} | "
                     f"{np.max(np.abs(first - two)):.3g} | {first.std():.3g} |")
    return lines


def long_fit_section():
    X, y, kw = binary_treatment_data(n=1000, p=10)

    def make():
        return TARNet(representation_layers=(200, 200), head_layers=(100, 100),
                      max_epochs=150, patience=10)
    lines = ["", "| torch threads | epochs run | best epoch | max abs difference to 1 "
             "thread | ATE |", "|---|---|---|---|---|"]
    reference = None
    for threads in (1, 2):
        effect, est = fitted_effect(make, X, y, kw, threads)
        reference = effect if reference is None else reference
        lines.append(f"| {threads} | {est.n_iter_} | {est.best_epoch_} | "
                     f"{np.max(np.abs(effect - reference)):.3g} | {effect.mean():.6f} |")
    return lines


def threading_backend_section(runs=5):
    X, y, kw = binary_treatment_data(n=300)
    est = TARNet(representation_layers=(64, 64), head_layers=(32,), max_epochs=10,
                 random_state=0, device="cpu")
    cv = KFold(4, shuffle=True, random_state=0)
    with sklearn.config_context(enable_metadata_routing=True):
        reference = cross_validate(est, X, y, cv=cv, params=kw)["test_score"]
        changed, worst = 0, 0.0
        for _ in range(runs):
            torch.manual_seed(0)
            before = torch.get_rng_state().clone()
            with joblib.parallel_backend("threading", n_jobs=2):
                scores = cross_validate(est, X, y, cv=cv, params=kw, n_jobs=2)["test_score"]
            worst = max(worst, float(np.max(np.abs(scores - reference))))
            changed += not torch.equal(before, torch.get_rng_state())
        torch.manual_seed(0)
        before = torch.get_rng_state().clone()
        cross_validate(est, X, y, cv=cv, params=kw)
        sequential_changed = not torch.equal(before, torch.get_rng_state())
    return ["", f"Threading backend, {runs} runs of `cross_validate(n_jobs=2)` (4 folds): "
            f"largest score difference to a sequential run {worst:.3g}; torch's global "
            f"stream left changed after {changed} of {runs} runs (after a sequential run: "
            f"{'changed' if sequential_changed else 'unchanged'})."]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(RESULTS, "reproducibility_cpu.md"))
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    start = time.perf_counter()
    lines = thread_counts_section() + long_fit_section() + threading_backend_section()
    header = [f"\n## `python {' '.join(['benchmarks/reproducibility.py'] + sys.argv[1:])}`",
              f"\nMachine: {machine_description(device='cpu')}; "
              f"{time.perf_counter() - start:.0f} s\n"]
    append_section(header + lines, args.out)


if __name__ == "__main__":
    main()
