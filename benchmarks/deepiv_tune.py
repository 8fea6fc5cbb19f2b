"""How DeepIV's default ``weight_decay`` was chosen: by the held-out second-stage loss.

The second stage's validation loss (its own held-out rows, what early stopping watches)
for weight decays 1e-4 (the paper's), 1e-3 and 3e-3 on demand simulations with seeds
that the benchmark (``benchmarks/deepiv_demand.py``, seeds 0-2) does not use. No true
structural function is looked at.

Usage::

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/deepiv_tune.py [--force]

Writes benchmarks/results/deepiv_tune.md; an existing file is refused before any fit
unless ``--force``.
"""
import argparse
import warnings
from pathlib import Path

import torch

from causalnn import DeepIV
from causalnn.benchmark import refuse_existing, save_markdown
from causalnn.datasets import make_demand

RESULTS = Path(__file__).resolve().parent / "results"


def main(cases=((0.9, 10), (0.5, 11)), weight_decays=(1e-4, 1e-3, 3e-3), n_samples=10000,
         force=False, out=RESULTS / "deepiv_tune.md"):
    refuse_existing([out], force, instead="or move it away first")
    torch.set_num_threads(1)
    lines = ["| rho | seed | weight_decay | best held-out 2nd-stage loss | epochs |",
             "|---|---|---|---|---|"]
    for rho, seed in cases:
        data = make_demand(n_samples, rho=rho, random_state=seed)
        for wd in weight_decays:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est = DeepIV(weight_decay=wd, random_state=seed).fit(
                    data.X, data.y, treatment=data.treatment, instrument=data.instrument)
            best = min(h["valid_loss"] for h in est.history_)
            lines.append(f"| {rho} | {seed} | {wd:g} | {best:.4f} | {est.n_iter_} |")
            print(lines[-1], flush=True)
    table = (f"DeepIV weight_decay by held-out second-stage loss (n={n_samples}).\n\n"
             + "\n".join(lines) + "\n")
    save_markdown(table, out)
    return table


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true",
                        help="replace the results file if it exists")
    main(force=parser.parse_args().force)
