"""How far one DeepIV fit's slope moves with ``random_state`` alone.

Data: the linear design of ``tests/iv/test_deepiv.py`` (3,000 rows, a strong instrument,
``y = 2 t + x + 3 u + noise`` with ``t`` confounded by ``u``: the true slope is 2, OLS's
is about 2.7). One data set; DeepIV fitted with the test's settings for each
``random_state``; the slope is the mean marginal effect over the rows. Two-stage least
squares on the same rows is the baseline: it has no random state.

Run:  OMP_NUM_THREADS=1 python benchmarks/deepiv_seeds.py [--seeds 30] [--draws 1]
Writes benchmarks/results/deepiv_seeds_cpu.md (a section per run, appended).
"""
import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from causalnn import DeepIV
from causalnn.benchmark import machine_description
from causalnn.datasets import make_linear_iv
from inference_coverage import append_section  # benchmarks/, next to this script


def two_stage_slope(x, y, t, z):
    ones = np.ones_like(t)
    first = np.column_stack([ones, z[:, 0], x[:, 0]])
    t_hat = first @ np.linalg.lstsq(first, t, rcond=None)[0]
    second = np.column_stack([ones, t_hat, x[:, 0]])
    return np.linalg.lstsq(second, y, rcond=None)[0][1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--draws", type=int, default=1,
                        help="n_treatment_samples (Monte-Carlo draws per row)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    data = make_linear_iv(3000, strength=2.0, random_state=0)  # the test's data
    x, y, t, z = data.X, data.y, data.treatment, data.instrument
    errors, start = [], time.process_time()
    for seed in range(args.seeds):
        est = DeepIV(first_stage_layers=(64, 64), outcome_layers=(64, 64), n_components=5,
                     max_epochs=60, patience=5, n_treatment_samples=args.draws,
                     random_state=seed, device="cpu").fit(x, y, treatment=t, instrument=z)
        errors.append(est.marginal_effect(x, T=t).mean() - 2.0)
        print(f"random_state {seed}: slope error {errors[-1]:+.3f}", flush=True)
    spread = float(np.std(errors, ddof=1))
    errors = np.abs(errors)
    lines = ["", f"## {args.seeds} random_states, n_treatment_samples={args.draws}", "",
             f"Machine: {machine_description(torch.device('cpu'), threads=1)}.", "",
             "Command: `" + " ".join(["OMP_NUM_THREADS=1 python benchmarks/deepiv_seeds.py",
                                      *(argv if argv is not None else sys.argv[1:])])
             + "`", "",
             "| slope's sd over seeds | slope error of one fit: median | 90th percentile "
             "| largest | over 0.3 | 2SLS on the same rows | CPU s per fit |",
             "|---|---|---|---|---|---|---|",
             f"| {spread:.3f} | {np.median(errors):.3f} | {np.quantile(errors, 0.9):.3f} | "
             f"{errors.max():.3f} | {int(np.sum(errors > 0.3))} of {args.seeds} | "
             f"{abs(two_stage_slope(x, y, t, z) - 2.0):.3f} | "
             f"{(time.process_time() - start) / args.seeds:.2f} |"]
    append_section(lines, Path(args.out) / "deepiv_seeds_cpu.md")


if __name__ == "__main__":
    main()
