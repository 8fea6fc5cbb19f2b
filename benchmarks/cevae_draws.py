"""Monte Carlo noise of CEVAE's average effect from its prediction draws.

At fixed weights, ``ate(X)`` depends on the prediction draws only through
``sampling_seed_``. This script fits CEVAE once per dataset and reports the standard
deviation of ``ate(X)`` over 10 values of ``sampling_seed_``: IHDP replications 1-3
(the paper's configuration, scored on the test rows) and the proxy simulation
(``make_proxy_confounded(5000, outcome_confounding=2)``, ``latent_dim=5``,
``n_samples=20``, as in ``benchmarks/cevae.py``). It also checks that a row's effect
does not depend on the other rows passed with it.

Run:  OMP_NUM_THREADS=1 python benchmarks/cevae_draws.py
Writes benchmarks/results/cevae_draws_cpu.md (``--out`` to change); an existing file
is refused before any fit unless ``--force``.
"""
import argparse
import warnings
from pathlib import Path

import numpy as np
import torch

from causalnn import CEVAE
from causalnn.benchmark import machine_description, refuse_existing, save_markdown
from causalnn.datasets import load_ihdp, make_proxy_confounded


def seed_spread(est, X, n_seeds=10):
    seed = est.sampling_seed_
    ates = []
    for k in range(n_seeds):
        est.sampling_seed_ = seed + k
        ates.append(est.ate(X))
    est.sampling_seed_ = seed
    return float(np.std(ates))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"
                                             / "cevae_draws_cpu.md"))
    parser.add_argument("--force", action="store_true",
                        help="replace the results file if it exists")
    args = parser.parse_args(argv)
    refuse_existing([args.out], args.force)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    rows = []
    for r in (1, 2, 3):
        d = load_ihdp(r)
        fit = np.concatenate([d.train_index, d.valid_index])
        est = CEVAE(random_state=r, device="cpu").fit(d.X[fit], d.y[fit],
                                                      treatment=d.treatment[fit])
        X = d.X[d.test_index]
        alone = np.concatenate([est.effect(X[i:i + 1]) for i in range(5)])
        rows.append((f"IHDP {r}, test rows", est.n_samples, seed_spread(est, X),
                     float(np.max(np.abs(alone - est.effect(X)[:5])))))
        print(rows[-1], flush=True)
    d = make_proxy_confounded(5000, n_proxies=5, noise_scale=1.0,
                              outcome_confounding=2.0, random_state=0)
    est = CEVAE(latent_dim=5, n_samples=20, random_state=0, device="cpu").fit(
        d.X, d.y, treatment=d.treatment)
    alone = np.concatenate([est.effect(d.X[i:i + 1]) for i in range(5)])
    rows.append(("proxy, n=5000, confounding 2", 20, seed_spread(est, d.X),
                 float(np.max(np.abs(alone - est.effect(d.X)[:5])))))
    print(rows[-1], flush=True)
    lines = ["# CEVAE: Monte Carlo noise of ate(X) from the prediction draws", "",
             f"Machine: {machine_description()}.", "",
             "Command: `OMP_NUM_THREADS=1 python benchmarks/cevae_draws.py`", "",
             "| data | n_samples | sd of ate(X) over 10 sampling seeds | "
             "max abs(effect of a row alone - among all rows), first 5 rows |",
             "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c:.4f} | {e:.1e} |" for a, b, c, e in rows]
    save_markdown(lines, args.out)


if __name__ == "__main__":
    main()
