"""CEVAE benchmark: IHDP (as benchmarks/ihdp.py) and the proxy-confounder simulation.

1. IHDP, 10 shipped replications, 63/27/10: CEVAE fitted on the 90% train+validation
   rows (its own stratified 30% validation split for early stopping), scored in-sample
   and on the 10% test rows by sqrt(PEHE) and |ATE error|, next to Louizos et al. (2017),
   Table 2 (means over 1000 replications). TARNet is fitted in the same run as the
   baseline for accuracy and fit time.
2. The paper's synthetic experiment (``make_proxy_confounded``: binary latent confounder,
   ``n_proxies`` noisy Gaussian proxies, binary outcome) over sample sizes, proxy noise and
   seeds. CEVAE and TARNet are fitted on the same proxies; TARNet adjusts for the proxies
   as if they were the confounder. |ATE error| is against the sample ATE of the rows.
   The unadjusted difference in means and the oracle that stratifies on the true ``z``
   are printed beside them.

Run:  OMP_NUM_THREADS=1 python benchmarks/cevae.py [--replications 10]
          [--sizes 5000] [--noise 1.0 0.5] [--seeds 3]
Writes benchmarks/results/cevae_<device>.md (tables) and cevae_<device>.csv (per fit).
"""
import argparse
import csv
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import causalnn
from causalnn import CEVAE, TARNet
from causalnn.datasets import load_ihdp, make_proxy_confounded
from causalnn.metrics import ate_error, pehe

from causalnn.benchmark import machine_description

# Louizos et al. 2017, Table 2 (IHDP, 1000 replications, mean ± s.e.):
# sqrt(PEHE) within-sample 2.7 ± .1, out-of-sample 2.6 ± .1;
# |ATE error| within-sample .34 ± .01, out-of-sample .46 ± .02
PAPER_IHDP = {"pehe_in": 2.7, "pehe_out": 2.6, "ate_in": 0.34, "ate_out": 0.46}


def timed_fit(est, X, y, t):
    start = time.perf_counter()
    est.fit(X, y, treatment=t)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def run_ihdp(replications, device):
    records = []
    for r in range(1, replications + 1):
        data = load_ihdp(r)
        fit_rows = np.concatenate([data.train_index, data.valid_index])
        test = data.test_index
        for name, est in (("CEVAE", CEVAE(random_state=r, device=device)),
                          ("TARNet", TARNet(random_state=r, device=device))):
            seconds = timed_fit(est, data.X[fit_rows], data.y[fit_rows],
                                data.treatment[fit_rows])
            row = {"part": "ihdp", "model": name, "replication": r,
                   "fit_seconds": seconds, "epochs": est.n_iter_,
                   "device": str(est.device_),
                   "pehe_in": pehe(data.ite[fit_rows], est.effect(data.X[fit_rows])),
                   "pehe_out": pehe(data.ite[test], est.effect(data.X[test])),
                   "ate_in": ate_error(data.ite[fit_rows], est.ate(data.X[fit_rows])),
                   "ate_out": ate_error(data.ite[test], est.ate(data.X[test]))}
            records.append(row)
            print(f"ihdp rep {r:2d} {name:<7s} pehe_out {row['pehe_out']:6.3f} "
                  f"ate_out {row['ate_out']:6.3f} fit {seconds:6.1f}s "
                  f"epochs {row['epochs']}", flush=True)
    return records


def oracle_ate(data):
    """Adjust for the true latent: the z-stratified difference in means."""
    effect = 0.0
    for value in (0.0, 1.0):
        rows = data.z == value
        treated, control = rows & (data.treatment == 1), rows & (data.treatment == 0)
        effect += rows.mean() * (data.y[treated].mean() - data.y[control].mean())
    return effect


def run_proxy(sizes, noises, seeds, n_proxies, latent_dim, n_samples, device):
    records = []
    for n in sizes:
        for noise in noises:
            for seed in range(seeds):
                data = make_proxy_confounded(n, n_proxies=n_proxies, noise_scale=noise,
                                             random_state=seed)
                truth = float(np.mean(data.ite))
                y1 = data.y[data.treatment == 1].mean()
                y0 = data.y[data.treatment == 0].mean()
                base = {"part": "proxy", "n": n, "noise_scale": noise, "seed": seed,
                        "n_proxies": n_proxies, "device": "cpu"}
                rows = [{**base, "model": "difference in means",
                         "ate_abs_error": abs(y1 - y0 - truth), "fit_seconds": 0.0},
                        {**base, "model": "oracle (stratified on true z)",
                         "ate_abs_error": abs(oracle_ate(data) - truth),
                         "fit_seconds": 0.0}]
                for name, est in (
                        ("CEVAE", CEVAE(latent_dim=latent_dim, n_samples=n_samples,
                                        random_state=seed, device=device)),
                        ("TARNet", TARNet(random_state=seed, device=device))):
                    seconds = timed_fit(est, data.X, data.y, data.treatment)
                    rows.append({**base, "model": name, "device": str(est.device_),
                                 "ate_abs_error": abs(est.ate(data.X) - truth),
                                 "fit_seconds": seconds, "epochs": est.n_iter_})
                records += rows
                print(f"proxy n {n} noise {noise} seed {seed}: " + ", ".join(
                    f"{r['model']} {r['ate_abs_error']:.4f}" for r in rows), flush=True)
    return records


def mean_se(values):
    values = np.asarray(values, dtype=float)
    se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    return f"{values.mean():.3f} ± {se:.3f}"


def ihdp_table(records):
    lines = ["| model | sqrt(PEHE) in | sqrt(PEHE) out | median out | |ATE err| in "
             "| |ATE err| out | median in / out | fit s (mean) | time / TARNet |",
             "|---|---|---|---|---|---|---|---|---|"]
    tarnet = np.mean([r["fit_seconds"] for r in records if r["model"] == "TARNet"])
    for model in ("CEVAE", "TARNet"):
        rows = [r for r in records if r["model"] == model]
        col = {k: np.array([r[k] for r in rows], dtype=float)
               for k in ("pehe_in", "pehe_out", "ate_in", "ate_out", "fit_seconds")}
        fit = col["fit_seconds"].mean()
        lines.append(
            f"| {model} | {mean_se(col['pehe_in'])} | {mean_se(col['pehe_out'])} "
            f"| {np.median(col['pehe_out']):.2f} | {mean_se(col['ate_in'])} "
            f"| {mean_se(col['ate_out'])} | {np.median(col['ate_in']):.2f} / "
            f"{np.median(col['ate_out']):.2f} | {fit:.1f} | {fit / tarnet:.1f} |")
    p = PAPER_IHDP
    lines.append(f"| CEVAE, Louizos et al. 2017 (1000 reps) | {p['pehe_in']} ± 0.1 "
                 f"| {p['pehe_out']} ± 0.1 | — | {p['ate_in']} ± 0.01 "
                 f"| {p['ate_out']} ± 0.02 | — | — | — |")
    return lines


def proxy_table(records):
    models = ["difference in means", "TARNet", "CEVAE", "oracle (stratified on true z)"]
    lines = ["| n | noise scale | " + " | ".join(f"{m} |ATE err|" for m in models)
             + " | CEVAE < TARNet (seeds) | CEVAE fit s / TARNet fit s |",
             "|---" * (len(models) + 4) + "|"]
    configs = sorted({(r["n"], r["noise_scale"]) for r in records})
    for n, noise in configs:
        rows = [r for r in records if (r["n"], r["noise_scale"]) == (n, noise)]
        err = {m: [r["ate_abs_error"] for r in rows if r["model"] == m] for m in models}
        fit = {m: np.mean([r["fit_seconds"] for r in rows if r["model"] == m])
               for m in ("CEVAE", "TARNet")}
        wins = sum(c < t for c, t in zip(err["CEVAE"], err["TARNet"]))
        lines.append(f"| {n} | {noise} | " + " | ".join(mean_se(err[m]) for m in models)
                     + f" | {wins} / {len(err['CEVAE'])} "
                     f"| {fit['CEVAE'] / fit['TARNet']:.1f} |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description="CEVAE benchmark")
    parser.add_argument("--replications", type=int, default=10)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000])
    parser.add_argument("--noise", type=float, nargs="+", default=[1.0, 0.5])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n-proxies", type=int, default=5)
    parser.add_argument("--latent-dim", type=int, default=5,
                        help="CEVAE latent_dim on the simulation (the paper used 5 there)")
    parser.add_argument("--n-samples", type=int, default=20,
                        help="CEVAE posterior draws per row on the simulation (its ATE "
                             "also averages over thousands of rows)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=causalnn.exceptions.ConvergenceWarning)

    started = time.perf_counter()
    ihdp = run_ihdp(args.replications, args.device) if args.replications else []
    proxy = run_proxy(args.sizes, args.noise, args.seeds, args.n_proxies,
                      args.latent_dim, args.n_samples, args.device)
    records = ihdp + proxy
    device = "cuda" if any(r["device"].startswith("cuda") for r in records) else "cpu"
    command = (f"OMP_NUM_THREADS=1 python benchmarks/cevae.py --replications "
               f"{args.replications} --sizes {' '.join(map(str, args.sizes))} --noise "
               f"{' '.join(map(str, args.noise))} --seeds {args.seeds} --n-proxies "
               f"{args.n_proxies} --latent-dim {args.latent_dim} --n-samples {args.n_samples} "
               f"--device {args.device}")
    lines = ["# CEVAE benchmark", "", f"Machine: {machine_description()}.", "",
             f"Command: `{command}`", "",
             f"Total run time: {time.perf_counter() - started:.0f} s. Mean ± standard "
             f"error over replications or seeds.", ""]
    if ihdp:
        lines += [f"## IHDP ({args.replications} replications, 63/27/10 split)", "",
                  *ihdp_table(ihdp), ""]
    lines += [f"## Proxy simulation (binary latent z, {args.n_proxies} Gaussian proxies, "
              f"binary outcome; CEVAE latent_dim={args.latent_dim}, "
              f"n_samples={args.n_samples}, defaults otherwise; "
              f"TARNet defaults)", "", *proxy_table(proxy), ""]
    print("\n".join(lines))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"cevae_{device}.md").write_text("\n".join(lines) + "\n")
    fields = sorted({k for r in records for k in r})
    with open(out / f"cevae_{device}.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(records)
    print(f"\nwritten to {out / f'cevae_{device}.md'}")


if __name__ == "__main__":
    main()
