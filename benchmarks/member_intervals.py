"""Coverage of the intervals made from an ensemble's bootstrap members.

On a simulated confounded design with a known effect (``X ~ N(0, I_5)``,
``e(x) = sigmoid(0.5 x_0)``, ``tau(x) = 1 + x_1``, ``mu_0(x) = x_0 + 0.5 x_2``, unit
noise), each dataset gets one fit of every model with ``n_members=B,
bootstrap=True``, and each interval is checked against the sample ATE of its rows:

- TARNet: ``ate_interval(X)``;
- Dragonnet with targeted regularisation: ``ate_interval(X)`` (the members' plug-in
  ATEs) and ``ate_interval(X, targeted=True)`` (their fluctuated ATEs);
- Dragonnet without targeted regularisation: ``ate_interval(X)``;

each with ``method="normal"`` (the default) and ``method="percentile"``. The table
gives the coverage (± one binomial standard error), the mean width, and the mean
error of the matching point estimate (``ate(X)``, or ``ate(X, targeted=True)``).

    OMP_NUM_THREADS=1 python benchmarks/member_intervals.py --datasets 100 --members 20

appends its table to ``benchmarks/results/member_intervals.md`` (``--out``).

``--ideal`` checks the interval rule itself, without networks: ideal bootstrap
replicates ``theta* ~ N(theta_hat, 1)`` around an estimate ``theta_hat ~ N(theta, 1)``,
``--draws`` of them per number of members ``B``, give each method's coverage at 95% and
90% (``causalnn.inference.member_interval``, the function behind ``ate_interval``).

    python benchmarks/member_intervals.py --ideal --draws 200000
"""
import argparse
import os
import sys
import time
import warnings

import numpy as np
import torch

from causalnn import Dragonnet, TARNet
from causalnn.benchmark import machine_description
from causalnn.inference import member_interval
from inference_coverage import append_section  # benchmarks/ is the script's folder

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
METHODS = ("normal", "percentile")


def simulate(n, seed, n_features=5):
    """One dataset of the design above: ``X, y, treatment, tau``."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features))
    treatment = rng.binomial(1, 1 / (1 + np.exp(-0.5 * X[:, 0])))
    tau = 1.0 + X[:, 1]
    y = X[:, 0] + 0.5 * X[:, 2] + treatment * tau + rng.normal(size=n)
    return X, y, treatment, tau


def rows(members):
    """(label, make(seed), targeted) per interval checked."""
    small = dict(representation_layers=(32, 32), head_layers=(16,), max_epochs=60,
                 patience=10, n_members=members, bootstrap=True)
    return [
        ("TARNet", lambda seed: TARNet(**small, random_state=seed), False),
        ("Dragonnet, targeted regularisation, plug-in members",
         lambda seed: Dragonnet(**small, random_state=seed), False),
        ("Dragonnet, targeted regularisation, targeted=True",
         lambda seed: Dragonnet(**small, random_state=seed), True),
        ("Dragonnet without targeted regularisation",
         lambda seed: Dragonnet(**small, targeted_regularization=False,
                                random_state=seed), False),
    ]


def ideal_coverage(members_grid, draws, seed=0, chunk=20000):
    """Coverage of each method's interval on ideal replicates: ``{(B, alpha, method):
    fraction of draws whose interval holds the truth}``."""
    rng = np.random.default_rng(seed)
    hits = {}
    for B in members_grid:
        for start in range(0, draws, chunk):
            size = min(chunk, draws - start)
            theta_hat = rng.standard_normal(size)        # truth 0
            members = theta_hat + rng.standard_normal((B, size))
            for alpha in (0.05, 0.10):
                for method in METHODS:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")   # the percentile's warning
                        low, high = member_interval(members, alpha=alpha, method=method)
                    key = (B, alpha, method)
                    hits[key] = hits.get(key, 0) + int(np.sum((low <= 0) & (0 <= high)))
    return {key: count / draws for key, count in hits.items()}


def ideal_section(args):
    start = time.perf_counter()
    grid = (2, 5, 10, 20, 50, 200)
    coverage = ideal_coverage(grid, args.draws)
    se = max(np.sqrt(c * (1 - c) / args.draws) for c in coverage.values())
    lines = [
        f"\n## `python {' '.join(['benchmarks/member_intervals.py'] + sys.argv[1:])}`",
        f"\nMachine: {machine_description(device='cpu')}",
        f"\nIdeal replicates: B members theta* ~ N(theta_hat, 1) around theta_hat ~ "
        f"N(theta, 1); {args.draws:,} draws per B (binomial standard error at most "
        f"{100 * se:.2f} points); {time.perf_counter() - start:.0f} s\n",
        "| B | 95%: normal | 95%: percentile | 90%: normal | 90%: percentile |",
        "|---|---|---|---|---|"]
    for B in grid:
        cells = [f"{100 * coverage[B, alpha, method]:.1f}%"
                 for alpha in (0.05, 0.10) for method in METHODS]
        lines.append(f"| {B} | " + " | ".join(cells) + " |")
    append_section(lines, args.out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", type=int, default=100)
    p.add_argument("--members", type=int, default=20)
    p.add_argument("--n", type=int, default=400)
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--out", default=os.path.join(RESULTS, "member_intervals.md"))
    p.add_argument("--ideal", action="store_true",
                   help="coverage of the interval rule on ideal replicates (no networks)")
    p.add_argument("--draws", type=int, default=200_000, help="--ideal: draws per B")
    args = p.parse_args(argv)
    if args.ideal:
        return ideal_section(args)
    torch.set_num_threads(1)
    checks = rows(args.members)
    covered = {(label, m): [] for label, _, _ in checks for m in METHODS}
    width = {(label, m): [] for label, _, _ in checks for m in METHODS}
    error = {label: [] for label, _, _ in checks}
    start = time.perf_counter()
    for k in range(args.datasets):
        X, y, treatment, tau = simulate(args.n, 1000 + k)
        truth = tau.mean()
        fitted = {}   # a model shared by two rows is fitted once
        for label, make, targeted in checks:
            key = make(k).get_params()
            key = repr(sorted((name, repr(v)) for name, v in key.items()))
            if key not in fitted:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fitted[key] = make(k).fit(X, y, treatment=treatment)
            est = fitted[key]
            extra = {"targeted": True} if targeted else {}
            for method in METHODS:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the percentile's few-members warning
                    low, high = est.ate_interval(X, alpha=args.alpha, method=method,
                                                 **extra)
                covered[label, method].append(low <= truth <= high)
                width[label, method].append(high - low)
            error[label].append(est.ate(X, **extra) - truth)
        if (k + 1) % 10 == 0:
            print(f"  {k + 1}/{args.datasets} datasets, "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
    nominal = 100 * (1 - args.alpha)
    lines = [
        f"\n## `python {' '.join(['benchmarks/member_intervals.py'] + sys.argv[1:])}`",
        f"\nMachine: {machine_description(device='cpu')}",
        f"\n{args.datasets} datasets of n={args.n}; B={args.members} bootstrap members; "
        f"truth the sample ATE; nominal {nominal:g}%; "
        f"{time.perf_counter() - start:.0f} s\n",
        "| members' ATEs | mean error of the estimate (sd) | normal: coverage | "
        "normal: mean width | percentile: coverage | percentile: mean width |",
        "|---|---|---|---|---|---|"]
    for label, _, _ in checks:
        e = np.asarray(error[label])
        cells = []
        for method in METHODS:
            c = np.mean(covered[label, method])
            se = np.sqrt(c * (1 - c) / args.datasets)
            cells += [f"{100 * c:.1f}% ± {100 * se:.1f}",
                      f"{np.mean(width[label, method]):.3f}"]
        lines.append(f"| {label} | {e.mean():+.3f} ± {e.std(ddof=1) / np.sqrt(len(e)):.3f}"
                     f" ({e.std(ddof=1):.3f}) | " + " | ".join(cells) + " |")
    append_section(lines, args.out)


if __name__ == "__main__":
    main()
