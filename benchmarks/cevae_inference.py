"""What ``ate_inference`` estimates for CEVAE under hidden confounding.

On ``make_proxy_confounded(5000, outcome_confounding=2)`` (binary latent z, 5 noisy
proxies, confounding bias 0.125), for 3 seeds: CEVAE's plug-in ATE, CEVAE's cross-fitted
AIPW ATE (``ate_inference``, cv=3, propensity q(t|x)) with its 95% interval, and
TARNet's cross-fitted AIPW ATE on the same proxies, each against the sample ATE.
AIPW's correction term weights by a propensity that is a function of the proxies, so it
targets the effect adjusted for X, not for z.

Run:  OMP_NUM_THREADS=1 python benchmarks/cevae_inference.py [--seeds 3] [--force]
Writes benchmarks/results/cevae_inference_cpu.md; an existing file is refused before any
fit unless ``--force``.
"""
import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from causalnn import CEVAE, TARNet
from causalnn.benchmark import machine_description, refuse_existing, save_markdown
from causalnn.datasets import make_proxy_confounded

OUT = Path(__file__).parent / "results" / "cevae_inference_cpu.md"


def main(seeds=3, n=5000, force=False, out=OUT):
    refuse_existing([out], force, instead="or move it away first")
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    rows, lines = [], []
    for seed in range(seeds):
        d = make_proxy_confounded(n, outcome_confounding=2.0, random_state=seed)
        truth = float(np.mean(d.ite))
        start = time.time()
        cevae = dict(latent_dim=5, n_samples=20, random_state=seed)
        plug = CEVAE(**cevae).fit(d.X, d.y, treatment=d.treatment).ate(d.X)
        res = CEVAE(**cevae).ate_inference(d.X, d.y, treatment=d.treatment, cv=3)
        tarnet = TARNet(random_state=seed).ate_inference(d.X, d.y, treatment=d.treatment,
                                                          cv=3)
        lo, hi = res.conf_int()
        rows.append((abs(plug - truth), abs(res.point_estimate - truth),
                     abs(tarnet.point_estimate - truth), lo <= truth <= hi))
        lines.append(f"| {seed} | {truth:.4f} | {plug:.4f} | {res.point_estimate:.4f} "
                     f"[{lo:.4f}, {hi:.4f}] | {tarnet.point_estimate:.4f} |")
        print(lines[-1], f"({time.time() - start:.0f} s)", flush=True)
    m = np.mean(rows, axis=0)
    text = ["# CEVAE: plug-in vs cross-fitted AIPW under hidden confounding", "",
            f"Machine: {machine_description()}.", "",
            "Command: `OMP_NUM_THREADS=1 python benchmarks/cevae_inference.py`", "",
            f"make_proxy_confounded(n={n}, outcome_confounding=2), CEVAE latent_dim=5, "
            f"n_samples=20; ate_inference with cv=3.", "",
            "| seed | sample ATE | CEVAE plug-in | CEVAE AIPW [95% interval] "
            "| TARNet AIPW |", "|---|---|---|---|---|", *lines, "",
            f"Mean |error|: CEVAE plug-in {m[0]:.4f}, CEVAE AIPW {m[1]:.4f}, TARNet AIPW "
            f"{m[2]:.4f}. The CEVAE AIPW interval covers the sample ATE in "
            f"{int(round(m[3] * seeds))} of {seeds} seeds."]
    print("\n".join(text))
    save_markdown(text, out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n", type=int, default=5000,
                        help="rows per simulated dataset")
    parser.add_argument("--force", action="store_true",
                        help="replace the results file if it exists")
    args = parser.parse_args()
    main(seeds=args.seeds, n=args.n, force=args.force)
