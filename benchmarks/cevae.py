"""CEVAE benchmark: IHDP (as benchmarks/ihdp.py) and the proxy-confounder simulation.

1. IHDP, 10 shipped replications, 63/27/10: CEVAE fitted on the 90% train+validation
   rows (its own stratified 30% validation split for early stopping), scored in-sample
   and on the 10% test rows by sqrt(PEHE) and |ATE error|, next to Louizos et al. (2017),
   Table 2 (means over 1000 replications). TARNet is fitted in the same run as the
   baseline for accuracy and fit time. With ``--select`` CEVAE's network and latent
   sizes are also chosen per replication by validation loss over ``SELECTION_GRID``.
2. The paper's synthetic experiment (``make_proxy_confounded``: binary latent confounder,
   ``n_proxies`` noisy Gaussian proxies, binary outcome) over sample sizes, proxy noise,
   the outcome's confounding strength (``--confounding``; 1 is the paper's) and seeds.
   CEVAE and TARNet are fitted on the same proxies; TARNet adjusts for the proxies
   as if they were the confounder. |ATE error| is against the sample ATE of the rows.
   The unadjusted difference in means and the oracle that stratifies on the true ``z``
   are printed beside them.

Run:  OMP_NUM_THREADS=1 python benchmarks/cevae.py [--replications 10] [--select]
          [--sizes 5000] [--noise 1.0 0.5] [--confounding 1.0 2.0] [--seeds 3]
          [--n-members 5] [--member-validation shared|own] [--out DIR] [--force]
Writes benchmarks/results/cevae_<device>.md (tables) and cevae_<device>.csv (per fit);
if either exists the run is refused before any fit, unless ``--force``.
"""
import argparse
import csv
import itertools
import time
import warnings
from pathlib import Path

import numpy as np

import causalnn
from causalnn import CEVAE, TARNet
from causalnn.datasets import load_ihdp, make_proxy_confounded
from causalnn.metrics import ate_error, pehe

from causalnn.benchmark import machine_description, refuse_existing, save_markdown
from causalnn.engine import resolve_device, wait_for_gpu

# Louizos et al. 2017, Table 2 (IHDP, 1000 replications, mean ± s.e.):
# sqrt(PEHE) within-sample 2.7 ± .1, out-of-sample 2.6 ± .1;
# |ATE error| within-sample .34 ± .01, out-of-sample .46 ± .02
PAPER_IHDP = {"pehe_in": 2.7, "pehe_out": 2.6, "ate_in": 0.34, "ate_out": 0.46}


def timed_fit(est, X, y, t):
    start = time.perf_counter()
    est.fit(X, y, treatment=t)
    wait_for_gpu()
    return time.perf_counter() - start


# Model selection on IHDP's ~470 training rows: the paper's networks and two smaller
# ones, compared by the validation loss (-ELBO + auxiliary terms on the estimator's
# own held-out 30%, the same rows for every configuration of one random_state). No
# test-set quantity enters the choice.
SELECTION_GRID = [{"hidden_layers": (200, 200, 200), "latent_dim": 20},  # the paper's
                  {"hidden_layers": (200, 200, 200), "latent_dim": 5},
                  {"hidden_layers": (100, 100), "latent_dim": 20},
                  {"hidden_layers": (100, 100), "latent_dim": 5}]


def best_validation_loss(est):
    """The restored epoch's validation loss (per member, averaged over members)."""
    per_member = [np.atleast_1d(h.get("valid_member_loss", h["valid_loss"]))
                  for h in est.history_]
    return float(np.min(np.stack(per_member), axis=0).mean())


def ihdp_row(name, r, est, seconds, data, fit_rows, test, **extra):
    return {"part": "ihdp", "model": name, "replication": r, "fit_seconds": seconds,
            "epochs": est.n_iter_, "device": str(est.device_),
            "pehe_in": pehe(data.ite[fit_rows], est.effect(data.X[fit_rows])),
            "pehe_out": pehe(data.ite[test], est.effect(data.X[test])),
            "ate_in": ate_error(data.ite[fit_rows], est.ate(data.X[fit_rows])),
            "ate_out": ate_error(data.ite[test], est.ate(data.X[test])), **extra}


def run_ihdp(replications, device, n_members=1, select=False, seed_offset=0,
             member_validation="shared"):
    records = []
    for r in range(1, replications + 1):
        data = load_ihdp(r)
        fit_rows = np.concatenate([data.train_index, data.valid_index])
        test = data.test_index
        Xf, yf, tf = data.X[fit_rows], data.y[fit_rows], data.treatment[fit_rows]
        grid = SELECTION_GRID if select else SELECTION_GRID[:1]
        fits = []
        for params in grid:
            est = CEVAE(**params, n_members=n_members, random_state=r + seed_offset,
                        member_validation=member_validation, device=device)
            seconds = timed_fit(est, Xf, yf, tf)
            fits.append((best_validation_loss(est), params, est, seconds))
            print(f"ihdp rep {r:2d} CEVAE {params} valid loss {fits[-1][0]:.3f} "
                  f"pehe_out {pehe(data.ite[test], est.effect(data.X[test])):.3f}",
                  flush=True)
        rows = [ihdp_row("CEVAE", r, fits[0][2], fits[0][3], data, fit_rows, test,
                         valid_loss=fits[0][0])]
        if select:
            loss, params, est, _ = min(fits, key=lambda f: f[0])
            rows.append(ihdp_row(
                "CEVAE, selected by validation loss", r, est,
                sum(f[3] for f in fits), data, fit_rows, test, valid_loss=loss,
                selected=(f"hidden {params['hidden_layers']}, "
                          f"latent {params['latent_dim']}")))
        tarnet = TARNet(random_state=r + seed_offset, device=device)
        rows.append(ihdp_row("TARNet", r, tarnet, timed_fit(tarnet, Xf, yf, tf), data,
                             fit_rows, test))
        for row in rows:
            print(f"ihdp rep {r:2d} {row['model']:<36s} pehe_out {row['pehe_out']:6.3f} "
                  f"ate_out {row['ate_out']:6.3f} fit {row['fit_seconds']:6.1f}s "
                  f"{row.get('selected', '')}", flush=True)
        records += rows
    return records


def oracle_ate(data):
    """Adjust for the true latent: the z-stratified difference in means."""
    effect = 0.0
    for value in (0.0, 1.0):
        rows = data.z == value
        treated, control = rows & (data.treatment == 1), rows & (data.treatment == 0)
        effect += rows.mean() * (data.y[treated].mean() - data.y[control].mean())
    return effect


def run_proxy(sizes, noises, confoundings, seeds, n_proxies, latent_dim, n_samples,
              device):
    records = []
    for n, noise, strength in itertools.product(sizes, noises, confoundings):
        for seed in range(seeds):
            data = make_proxy_confounded(n, n_proxies=n_proxies, noise_scale=noise,
                                         outcome_confounding=strength,
                                         random_state=seed)
            truth = float(np.mean(data.ite))
            y1 = data.y[data.treatment == 1].mean()
            y0 = data.y[data.treatment == 0].mean()
            base = {"part": "proxy", "n": n, "noise_scale": noise,
                    "outcome_confounding": strength, "seed": seed,
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
            print(f"proxy n {n} noise {noise} c {strength} seed {seed}: " + ", ".join(
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
    models = [m for m in ("CEVAE", "CEVAE, selected by validation loss", "TARNet")
              if any(r["model"] == m for r in records)]
    for model in models:
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
    lines = ["| n | noise scale | outcome confounding | "
             + " | ".join(f"{m} |ATE err|" for m in models)
             + " | CEVAE < TARNet (seeds) | CEVAE fit s / TARNet fit s |",
             "|---" * (len(models) + 5) + "|"]

    def key(r):
        return r["n"], r["noise_scale"], r["outcome_confounding"]

    for n, noise, strength in sorted({key(r) for r in records}):
        rows = [r for r in records if key(r) == (n, noise, strength)]
        err = {m: [r["ate_abs_error"] for r in rows if r["model"] == m] for m in models}
        fit = {m: np.mean([r["fit_seconds"] for r in rows if r["model"] == m])
               for m in ("CEVAE", "TARNet")}
        wins = sum(c < t for c, t in zip(err["CEVAE"], err["TARNet"]))
        lines.append(f"| {n} | {noise} | {strength} | "
                     + " | ".join(mean_se(err[m]) for m in models)
                     + f" | {wins} / {len(err['CEVAE'])} "
                     f"| {fit['CEVAE'] / fit['TARNet']:.1f} |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description="CEVAE benchmark")
    parser.add_argument("--replications", type=int, default=10)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000])
    parser.add_argument("--noise", type=float, nargs="+", default=[1.0, 0.5])
    parser.add_argument("--confounding", type=float, nargs="+", default=[1.0, 2.0],
                        help="outcome_confounding of make_proxy_confounded (1: the "
                             "paper's design, whose confounding bias is only ~0.012)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n-proxies", type=int, default=5)
    parser.add_argument("--latent-dim", type=int, default=5,
                        help="CEVAE latent_dim on the simulation (the paper used 5 there)")
    parser.add_argument("--n-samples", type=int, default=20,
                        help="CEVAE posterior draws per row on the simulation (its ATE "
                             "also averages over thousands of rows)")
    parser.add_argument("--select", action="store_true",
                        help="IHDP: also choose CEVAE's network and latent sizes per "
                             "replication by validation loss (SELECTION_GRID)")
    parser.add_argument("--seed-offset", type=int, default=0,
                        help="IHDP: fit replication r with random_state r + offset")
    parser.add_argument("--n-members", type=int, default=1,
                        help="CEVAE n_members on IHDP (an ensemble trained as one fit)")
    parser.add_argument("--member-validation", choices=["shared", "own"], default="shared",
                        help="CEVAE member_validation on IHDP: one validation split for "
                             "all members, or each member its own")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--force", action="store_true",
                        help="replace existing results files")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=causalnn.exceptions.ConvergenceWarning)
    # every model runs on this device; the files are named for it
    device = resolve_device(args.device).type
    out = Path(args.out)
    md_path, csv_path = out / f"cevae_{device}.md", out / f"cevae_{device}.csv"
    refuse_existing([md_path, csv_path], args.force)

    started = time.perf_counter()
    ihdp = (run_ihdp(args.replications, args.device, args.n_members, args.select,
                     args.seed_offset, args.member_validation)
            if args.replications else [])
    proxy = (run_proxy(args.sizes, args.noise, args.confounding, args.seeds,
                       args.n_proxies, args.latent_dim, args.n_samples, args.device)
             if args.seeds else [])
    records = ihdp + proxy
    command = (f"OMP_NUM_THREADS=1 python benchmarks/cevae.py --replications "
               f"{args.replications} --sizes {' '.join(map(str, args.sizes))} --noise "
               f"{' '.join(map(str, args.noise))} --confounding "
               f"{' '.join(map(str, args.confounding))} --seeds {args.seeds} "
               f"--n-proxies "
               f"{args.n_proxies} --latent-dim {args.latent_dim} --n-samples {args.n_samples} "
               f"--n-members {args.n_members} --member-validation "
               f"{args.member_validation}{' --select' if args.select else ''} "
               f"--seed-offset {args.seed_offset} "
               f"--device {args.device}")
    lines = ["# CEVAE benchmark", "", f"Machine: {machine_description()}.", "",
             f"Command: `{command}`", "",
             f"Total run time: {time.perf_counter() - started:.0f} s. Mean ± standard "
             f"error over replications or seeds.", ""]
    if ihdp:
        lines += [f"## IHDP ({args.replications} replications, 63/27/10 split)", "",
                  *ihdp_table(ihdp), ""]
        chosen = [r for r in ihdp if "selected" in r]
        if chosen:
            counts = {}
            for r in chosen:
                counts[r["selected"]] = counts.get(r["selected"], 0) + 1
            lines += ["Selected per replication by validation loss (the first grid "
                      "entry is the paper's configuration, the CEVAE row above): "
                      + "; ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
                      + ". The selected row's fit time is that of the whole grid.", ""]
    if proxy:
        lines += [f"## Proxy simulation (binary latent z, {args.n_proxies} Gaussian "
                  f"proxies, binary outcome; CEVAE latent_dim={args.latent_dim}, "
                  f"n_samples={args.n_samples}, defaults otherwise; TARNet defaults)",
                  "", *proxy_table(proxy), ""]
    print("\n".join(lines))
    save_markdown(lines, md_path)
    fields = sorted({k for r in records for k in r})
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(records)
    print(f"written to {csv_path}")


if __name__ == "__main__":
    main()
