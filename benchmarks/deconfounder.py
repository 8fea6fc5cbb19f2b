"""Per-cause effect error of the deconfounder on simulated multi-cause data.

Data: :func:`causalnn.datasets.make_multi_cause` (binary causes driven by latent factors
that also drive the outcome; the per-cause effects are known). For each number of causes
``m``, confounding strength and seed it compares the root mean squared error over causes
of the estimated effects ``E[Y | do(A_j = 1)] - E[Y | do(A_j = 0)]``:

- naive: the deconfounder's outcome model without the substitute confounder;
- PCA + OLS: for each cause, least squares of y on that cause and the top-k principal
  components of all causes (the customary PCA adjustment of genome-wide association
  studies, EIGENSTRAT; one regression on every cause and the components would not be
  identified);
- deconfounder (PPCA) and deconfounder (Bernoulli MF): the linear outcome model adjusting
  for ``Z_hat`` from each factor model (k = the simulation's number of factors);

with the predictive-check score of each factor model and the fit time relative to the
naive linear regression's in the same run.

Run ``OMP_NUM_THREADS=1 python benchmarks/deconfounder.py`` (about 10 minutes on one
core). Writes benchmarks/results/deconfounder_cpu.md (table) and .csv (per run).
``--variants --seeds 1`` instead compares the neural outcome model and the deep factor
model at m = 100 (deconfounder_variants_cpu.md, about 2 minutes). ``--out DIR`` puts
the files elsewhere; an existing one is refused before any fit unless ``--force``.
"""
import argparse
import csv
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LinearRegression

from causalnn import Deconfounder
from causalnn.benchmark import machine_description, refuse_existing, save_markdown
from causalnn.benchmark._models import pc_adjusted_cause_effects
from causalnn.datasets import make_multi_cause
from causalnn.estimators.latent import PredictiveCheckWarning


def rmse(estimate, truth):
    return float(np.sqrt(np.mean((np.asarray(estimate) - truth) ** 2)))


def run_one(m, confounding, seed, n_samples, n_factors):
    data = make_multi_cause(n_samples=n_samples, n_causes=m, n_factors=n_factors,
                            confounding=confounding, random_state=seed)
    A, y, truth = data.treatment, data.y, data.effects
    record = {"m": m, "confounding": confounding, "seed": seed}
    start = time.perf_counter()
    LinearRegression().fit(A, y)
    record["ols_s"] = time.perf_counter() - start
    start = time.perf_counter()
    pca_coef = pc_adjusted_cause_effects(A, y, n_factors, seed)
    record["pca_ols"] = rmse(pca_coef, truth)
    record["pca_ols_s"] = time.perf_counter() - start
    for name, kind in (("dcf_ppca", "ppca"), ("dcf_bernoulli", "bernoulli")):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PredictiveCheckWarning)
            est = Deconfounder(factor_model=kind, n_factors=n_factors,
                               random_state=seed).fit(None, y, treatment=A)
        record[f"{name}_s"] = time.perf_counter() - start
        record[name] = rmse(est.cause_effects(), truth)
        record[f"{name}_check"] = est.predictive_check_
        record[f"{name}_extremes"] = est.predictive_check_extremes_
        if kind == "bernoulli":
            record["naive"] = rmse(est.cause_effects(naive=True), truth)
            record["dcf_vs_naive"] = rmse(est.cause_effects(), est.cause_effects(naive=True))
    return record


def summarise(records, grid):
    lines = ["| m | confounding | naive | PCA + OLS | deconfounder (PPCA) | "
             "deconfounder (Bernoulli) | Bernoulli / naive | Bernoulli < PCA+OLS | "
             "RMS(dcf - naive) | check PPCA | check Bernoulli (extremes) | "
             "fit s Bernoulli (x OLS) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def ms(values):
        values = np.asarray(values, dtype=float)
        se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
        return f"{values.mean():.3f} ± {se:.3f}"

    for m, confounding in grid:
        rows = [r for r in records if r["m"] == m and r["confounding"] == confounding]
        col = lambda key: [r[key] for r in rows]  # noqa: E731
        ratio = [r["dcf_bernoulli"] / r["naive"] for r in rows]
        wins = sum(r["dcf_bernoulli"] < r["pca_ols"] for r in rows)
        seconds = np.mean(col("dcf_bernoulli_s"))
        lines.append(
            f"| {m} | {confounding} | {ms(col('naive'))} | {ms(col('pca_ols'))} | "
            f"{ms(col('dcf_ppca'))} | {ms(col('dcf_bernoulli'))} | "
            f"{' '.join(f'{v:.2f}' for v in ratio)} | {wins}/{len(rows)} | "
            f"{ms(col('dcf_vs_naive'))} | {np.mean(col('dcf_ppca_check')):.2f} | "
            f"{np.mean(col('dcf_bernoulli_check')):.2f} "
            f"({np.mean(col('dcf_bernoulli_extremes')):.2f}) | "
            f"{seconds:.1f} ({seconds / np.mean(col('ols_s')):.0f}x) |")
    return lines


def run_variants(n_samples, n_factors, seeds):
    """Linear vs neural outcome model and Bernoulli vs deep factor model, at m = 100
    and confounding 1."""
    lines = ["| factor model | outcome model | RMSE | naive RMSE | check (extremes) | fit s |",
             "|---|---|---|---|---|---|"]
    for factor_model, outcome_model in (("bernoulli", "linear"), ("bernoulli", "neural"),
                                        ("deep", "linear")):
        for seed in range(seeds):
            data = make_multi_cause(n_samples=n_samples, n_causes=100, n_factors=n_factors,
                                    confounding=1.0, random_state=seed)
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est = Deconfounder(factor_model=factor_model, outcome_model=outcome_model,
                                   n_factors=n_factors, random_state=seed).fit(
                    None, data.y, treatment=data.treatment)
            seconds = time.perf_counter() - start
            lines.append(
                f"| {factor_model} | {outcome_model} | "
                f"{rmse(est.cause_effects(), data.effects):.3f} | "
                f"{rmse(est.cause_effects(naive=True), data.effects):.3f} | "
                f"{est.predictive_check_:.2f} ({est.predictive_check_extremes_:.2f}) | "
                f"{seconds:.1f} |")
            print(lines[-1], flush=True)
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description="Deconfounder per-cause effect benchmark")
    parser.add_argument("--causes", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--confounding", type=float, nargs="+", default=[0.0, 1.0, 2.0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n-samples", type=int, default=3000)
    parser.add_argument("--n-factors", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--variants", action="store_true",
                        help="instead: neural outcome and deep factor model, m=100")
    parser.add_argument("--force", action="store_true",
                        help="replace existing results files")
    args = parser.parse_args(argv)
    out = Path(args.out)
    variants_path = out / "deconfounder_variants_cpu.md"
    md_path, csv_path = out / "deconfounder_cpu.md", out / "deconfounder_cpu.csv"
    refuse_existing([variants_path] if args.variants else [md_path, csv_path], args.force)
    torch.set_num_threads(1)
    if args.variants:
        table = ["# Deconfounder variants (m = 100, confounding 1)", "",
                 f"Machine: {machine_description()}.", "",
                 "Command: `OMP_NUM_THREADS=1 python benchmarks/deconfounder.py --variants "
                 f"--seeds {args.seeds} --n-samples {args.n_samples}`", "",
                 "Per-cause effect RMSE per seed; timings on a shared machine.", ""]
        table += run_variants(args.n_samples, args.n_factors, args.seeds)
        save_markdown(table, variants_path)
        return table
    grid = [(m, c) for m in args.causes for c in args.confounding]
    records = []
    for m, confounding in grid:
        for seed in range(args.seeds):
            records.append(run_one(m, confounding, seed, args.n_samples, args.n_factors))
            r = records[-1]
            print(f"m={m} confounding={confounding} seed={seed}: naive {r['naive']:.3f} "
                  f"PCA+OLS {r['pca_ols']:.3f} dcf-PPCA {r['dcf_ppca']:.3f} "
                  f"dcf-Bernoulli {r['dcf_bernoulli']:.3f} "
                  f"(check {r['dcf_bernoulli_check']:.2f}, {r['dcf_bernoulli_s']:.1f} s)",
                  flush=True)
    table = [f"# Deconfounder benchmark: per-cause effect RMSE ({args.seeds} seeds)", "",
             f"Machine: {machine_description()}.", "",
             "Command: `OMP_NUM_THREADS=1 python benchmarks/deconfounder.py "
             f"--causes {' '.join(map(str, args.causes))} --confounding "
             f"{' '.join(map(str, args.confounding))} --seeds {args.seeds} "
             f"--n-samples {args.n_samples} --n-factors {args.n_factors}`", "",
             f"Data: make_multi_cause(n_samples={args.n_samples}, n_causes=m, "
             f"n_factors={args.n_factors}, confounding=c, random_state=seed); binary "
             "causes, linear outcome, effects beta_j ~ N(0, 1). Entries: mean ± standard "
             "error over seeds of the RMSE over causes; the ratio column lists each seed; "
             "'check' is the predictive-check score (mean unit p-value, fails below "
             "0.1) and, in brackets, the share of units with an extreme held-out "
             "p-value (about 0.1 when well specified). Fit time includes the check "
             "(a second factor-model fit and 100 replicates); timings were taken on a "
             "shared machine.", ""]
    table += summarise(records, grid)
    save_markdown(table, md_path)
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    print("\n".join(table))
    return records


if __name__ == "__main__":
    main()
