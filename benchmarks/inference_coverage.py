"""Coverage and accuracy of causalnn's inference on average effects.

Sections (each a flag; all print a table and append it to the results file):

--coverage   Over ``--n-datasets`` simulated datasets (confounded, limited overlap;
             a continuous and a binary outcome) with known population ATE and ATT:
             how often the nominal 95% AIPW interval of ``ate_inference`` (TARNet,
             cross-fitted in one batched fit, logistic propensity) covers the truth,
             for the ATE and the ATT, and how often the nominal 90% bootstrap
             ``ate_interval`` (TARNet with ``n_members=B, bootstrap=True``) does.
--rct        A randomized trial with a zero-inflated heavy-tailed outcome: |ATE error|
             of plug-in TARNet vs cross-fitted AIPW, averaged over seeds.
--stability  ~1% treated rows: standard deviation over 10 seeds of the plug-in ATT vs
             the AIPW ATT.
--ihdp       IHDP replications 1-10: |ATE error| of Dragonnet, plug-in vs AIPW/TMLE.
--known-nuisances  The coverage simulation with the true propensity and a slightly
             wrong outcome model (no networks, seconds): AIPW vs TMLE intervals.

Run (the coverage section on a shared 2-core CPU takes ~15 min)::

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/inference_coverage.py --coverage
"""
import argparse
import os
import sys
import time
import warnings

import numpy as np
import torch
from scipy.special import expit

from causalnn import Dragonnet, TARNet
from causalnn.benchmark import machine_description
from causalnn.inference import estimate_average_effect

RESULTS = os.path.join(os.path.dirname(__file__), "results")
SMALL = dict(representation_layers=(32, 32), head_layers=(32,), max_epochs=40,
             patience=8, batch_size=64, learning_rate=3e-3, validation_fraction=0.2)


# ---- the confounded, limited-overlap simulation ----------------------------------------
D = 5


def propensity(X):
    # strong confounding through x0, x1: propensities reach ~0.01 and ~0.99
    return expit(-0.3 + 1.6 * X[:, 0] - 1.0 * X[:, 1] + 0.4 * X[:, 2])


def surfaces(X, outcome):
    base = X[:, 0] + 0.5 * X[:, 1] ** 2 - 0.5 * X[:, 3] + 0.3 * X[:, 0] * X[:, 4]
    tau = 1.0 + 0.5 * X[:, 0] + 0.5 * X[:, 2]
    if outcome == "continuous":
        return base, base + tau
    return expit(0.7 * base - 0.5), expit(0.7 * base - 0.5 + 0.8 * tau)


def simulate(n, outcome, rng):
    X = rng.normal(size=(n, D))
    t = rng.binomial(1, propensity(X)).astype(float)
    mu0, mu1 = surfaces(X, outcome)
    if outcome == "continuous":
        y = np.where(t == 1, mu1, mu0) + rng.normal(size=n)
    else:
        y = rng.binomial(1, np.where(t == 1, mu1, mu0)).astype(float)
    return X, t, y


def population_truth(outcome, n=2_000_000, seed=12345):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, D))
    e = propensity(X)
    mu0, mu1 = surfaces(X, outcome)
    tau = mu1 - mu0
    return {"ate": float(tau.mean()), "att": float(np.sum(e * tau) / np.sum(e)),
            "share_outside_0.01": float(np.mean((e < .01) | (e > .99)))}


def coverage(args, out):
    lines = []
    for outcome in args.outcomes:
        truth = population_truth(outcome)
        rec = {k: [] for k in ("ate_est", "ate_se", "ate_cover", "att_est", "att_se",
                               "att_cover", "tmle_cover", "plugin_ate", "boot_cover",
                               "n_clipped")}
        start = time.perf_counter()
        for k in range(args.n_datasets):
            rng = np.random.default_rng(1000 + k)
            X, t, y = simulate(args.n, outcome, rng)
            est = TARNet(**SMALL, random_state=k)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # one cross-fitted fit serves both targets (ate_inference refits per
                # call; the benchmark shares the nuisances)
                mu0, mu1, e = est._nuisances_cross_fitted(
                    X, y, t, est._propensity_model(None), args.cv)
            for target in ("ate", "att"):
                res = estimate_average_effect(y, t, mu0, mu1, e, target=target,
                                              outcome=outcome, cv=args.cv)
                lo, hi = res.conf_int(0.05)
                rec[f"{target}_est"].append(res.point_estimate)
                rec[f"{target}_se"].append(res.stderr)
                rec[f"{target}_cover"].append(lo <= truth[target] <= hi)
            res = estimate_average_effect(y, t, mu0, mu1, e, target="ate",
                                          method="tmle", outcome=outcome, cv=args.cv)
            lo, hi = res.conf_int(0.05)
            rec["tmle_cover"].append(lo <= truth["ate"] <= hi)
            rec["plugin_ate"].append(res.plugin_estimate)
            rec["n_clipped"].append(res.n_clipped)
            if args.bootstrap:
                boot = TARNet(**SMALL, n_members=args.bootstrap, bootstrap=True,
                              random_state=k)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    boot.fit(X, y, treatment=t)
                lo, hi = boot.ate_interval(X, alpha=0.10)
                rec["boot_cover"].append(lo <= truth["ate"] <= hi)
            if (k + 1) % 20 == 0:
                print(f"  {outcome}: {k + 1}/{args.n_datasets} datasets, "
                      f"{time.perf_counter() - start:.0f} s", flush=True)
        r = {k: np.asarray(v, dtype=float) for k, v in rec.items()}
        n_ds = len(r["ate_est"])

        def cov(v):
            return f"{100 * v.mean():.1f}% ± {100 * np.sqrt(v.mean() * (1 - v.mean()) / len(v)):.1f}"

        lines += [
            f"\n### {outcome} outcome: {n_ds} datasets of n={args.n}, "
            f"population ATE={truth['ate']:.4f}, ATT={truth['att']:.4f}, "
            f"{100 * truth['share_outside_0.01']:.1f}% of rows with e(x) outside "
            f"[0.01, 0.99]; {time.perf_counter() - start:.0f} s\n",
            "| estimate | nominal | coverage | mean estimate - truth | mean stderr | "
            "sd of estimates |", "|---|---|---|---|---|---|",
            f"| AIPW ATE (cv={args.cv}) | 95% | {cov(r['ate_cover'])} | "
            f"{r['ate_est'].mean() - truth['ate']:+.4f} | {r['ate_se'].mean():.4f} | "
            f"{r['ate_est'].std(ddof=1):.4f} |",
            f"| AIPW ATT (cv={args.cv}) | 95% | {cov(r['att_cover'])} | "
            f"{r['att_est'].mean() - truth['att']:+.4f} | {r['att_se'].mean():.4f} | "
            f"{r['att_est'].std(ddof=1):.4f} |",
            f"| TMLE ATE (cv={args.cv}) | 95% | {cov(r['tmle_cover'])} | | | |",
            f"| plug-in ATE (cross-fitted TARNet) | - | - | "
            f"{r['plugin_ate'].mean() - truth['ate']:+.4f} | - | "
            f"{r['plugin_ate'].std(ddof=1):.4f} |",
        ]
        if args.bootstrap:
            lines.append(f"| bootstrap ate_interval (B={args.bootstrap}) | 90% | "
                         f"{cov(r['boot_cover'])} | | | |")
        lines.append(f"\nrows clipped at 0.01 per dataset: mean "
                     f"{r['n_clipped'].mean():.1f}")
    return lines


def known_nuisances(args, out):
    lines = []
    for target in ("ate", "att"):
        truth = population_truth("continuous")[target]
        hits, est, se = {"aipw": [], "tmle": []}, {"aipw": [], "tmle": []}, {
            "aipw": [], "tmle": []}
        for k in range(args.n_datasets):
            X, t, y = simulate(args.n, "continuous", np.random.default_rng(k))
            mu0, mu1 = surfaces(X, "continuous")
            shift = 0.3 * np.sin(X[:, 1])  # an outcome model that is slightly wrong
            for m in hits:
                r = estimate_average_effect(y, t, mu0 + shift, mu1 + shift,
                                            propensity(X), target=target, method=m)
                lo, hi = r.conf_int()
                hits[m].append(lo <= truth <= hi)
                est[m].append(r.point_estimate)
                se[m].append(r.stderr)
        lines += [f"\n### Known propensity, outcome model off by 0.3 sin(x1): "
                  f"{target.upper()}, {args.n_datasets} datasets of n={args.n}\n",
                  "| method | 95% coverage | sd of estimates | mean stderr |",
                  "|---|---|---|---|"]
        lines += [f"| {m} | {100 * np.mean(hits[m]):.1f}% | {np.std(est[m]):.4f} | "
                  f"{np.mean(se[m]):.4f} |" for m in hits]
    return lines


# ---- randomized trial with a zero-inflated, heavy-tailed outcome -----------------------
def rct(args, out):
    n, seeds = 445, args.seeds
    errors = {"plug-in TARNet (default)": [], "AIPW (TARNet, cv=5)": [],
              "difference in means": []}
    for s in range(seeds):
        rng = np.random.default_rng(500 + s)
        X = rng.normal(size=(n, 8))
        t = rng.binomial(1, 0.4, size=n).astype(float)
        # earnings: zero for ~40% (more without treatment), lognormal heavy tail
        work = rng.binomial(1, expit(0.2 + 0.5 * X[:, 0] + 0.4 * t))
        earn = np.exp(7.5 + 0.5 * X[:, 1] + 0.2 * t + 1.2 * rng.normal(size=n))
        y = work * earn
        # true ATE by Monte Carlo over the same covariate law
        big = np.random.default_rng(99).normal(size=(400_000, 8))
        m = np.exp(7.5 + 0.5 * big[:, 1] + 0.72)  # E exp(1.2 Z) = exp(0.72)
        truth = float(np.mean(expit(0.2 + 0.5 * big[:, 0] + 0.4) * m * np.exp(0.2)
                              - expit(0.2 + 0.5 * big[:, 0]) * m))
        est = TARNet(random_state=s)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plug = est.fit(X, y, treatment=t).ate(X)
            res = TARNet(random_state=s).ate_inference(X, y, treatment=t, cv=5)
        errors["plug-in TARNet (default)"].append(abs(plug - truth))
        errors["AIPW (TARNet, cv=5)"].append(abs(res.point_estimate - truth))
        errors["difference in means"].append(abs(y[t == 1].mean() - y[t == 0].mean()
                                                 - truth))
        print(f"  rct seed {s}: truth {truth:.0f} plug-in {plug:.0f} AIPW "
              f"{res.point_estimate:.0f} (se {res.stderr:.0f})", flush=True)
    lines = [f"\n### Randomized trial, zero-inflated lognormal earnings, n={n}, "
             f"{seeds} seeds\n", "| estimate | mean abs ATE error |", "|---|---|"]
    lines += [f"| {k} | {np.mean(v):.0f} |" for k, v in errors.items()]
    ratio = np.mean(errors["AIPW (TARNet, cv=5)"]) / np.mean(
        errors["plug-in TARNet (default)"])
    lines.append(f"\nAIPW error / plug-in error = {ratio:.2f} (target <= 0.5)")
    return lines


# ---- ~1% treated: seed stability of the ATT ------------------------------------------
# smaller than the defaults so that 10 seeds fit the shared CPU; the comparison is
# between two estimates from the same networks
STABLE = dict(representation_layers=(64, 64), head_layers=(32,), max_epochs=100,
              patience=10)


def stability(args, out):
    rng = np.random.default_rng(7)
    n = 3000
    X = rng.normal(size=(n, 6))
    t = rng.binomial(1, expit(-5.0 + 0.8 * X[:, 0] + 0.5 * X[:, 1])).astype(float)
    tau = 1000 + 500 * X[:, 2]
    y = 5000 + 2000 * X[:, 0] + 1000 * X[:, 3] + t * tau + 2000 * rng.normal(size=n)
    truth = float(tau[t == 1].mean())
    plug, dr = [], []
    for s in range(args.seeds):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = TARNet(**STABLE, random_state=s).fit(X, y, treatment=t)
            plug.append(float(est.effect(X[t == 1]).mean()))
            dr.append(TARNet(**STABLE, random_state=s).ate_inference(
                X, y, treatment=t, target="att", cv=3).point_estimate)
        print(f"  seed {s}: plug-in ATT {plug[-1]:.0f}, AIPW ATT {dr[-1]:.0f}",
              flush=True)
    return [f"\n### ~1% treated ({int(t.sum())} of {n}), sample ATT {truth:.0f}, "
            f"{args.seeds} seeds of TARNet({STABLE})\n",
            "| estimate | sd over seeds | mean |", "|---|---|---|",
            f"| plug-in ATT | {np.std(plug, ddof=1):.0f} | {np.mean(plug):.0f} |",
            f"| AIPW ATT (cv=3) | {np.std(dr, ddof=1):.0f} | {np.mean(dr):.0f} |",
            f"\nsd ratio AIPW / plug-in = {np.std(dr, ddof=1) / np.std(plug, ddof=1):.2f}"
            f" (target <= 0.5)"]


# ---- IHDP -------------------------------------------------------------------------------
def ihdp(args, out):
    from causalnn.datasets import load_ihdp
    rows = []
    for r in range(1, 11):
        d = load_ihdp(r)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plug = Dragonnet(random_state=0).fit(d.X, d.y, treatment=d.treatment).ate(d.X)
            est = Dragonnet(random_state=0)
            mu0, mu1, e = est._nuisances_cross_fitted(d.X, d.y, d.treatment.astype(
                float), None, args.cv)
        t = d.treatment.astype(float)
        a = estimate_average_effect(d.y, t, mu0, mu1, e, method="aipw", cv=args.cv)
        tm = estimate_average_effect(d.y, t, mu0, mu1, e, method="tmle", cv=args.cv)
        rows.append((abs(plug - d.ate), abs(a.plugin_estimate - d.ate),
                     abs(a.point_estimate - d.ate), abs(tm.point_estimate - d.ate),
                     (a.conf_int()[0] <= d.ate <= a.conf_int()[1])))
        print(f"  ihdp {r}: {rows[-1]}", flush=True)
    m = np.mean(rows, axis=0)
    return ["\n### IHDP 1-10, Dragonnet (defaults), |ATE error| against the sample ATE\n",
            "| estimate | mean abs error |", "|---|---|",
            f"| plug-in, fitted on all rows | {m[0]:.3f} |",
            f"| plug-in, cross-fitted (cv={args.cv}) | {m[1]:.3f} |",
            f"| AIPW, cross-fitted (cv={args.cv}) | {m[2]:.3f} |",
            f"| TMLE, cross-fitted (cv={args.cv}) | {m[3]:.3f} |",
            f"\nAIPW 95% interval covers the sample ATE in {int(m[4] * 10)}/10 files."]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--coverage", action="store_true")
    p.add_argument("--rct", action="store_true")
    p.add_argument("--stability", action="store_true")
    p.add_argument("--ihdp", action="store_true")
    p.add_argument("--known-nuisances", action="store_true")
    p.add_argument("--n-datasets", type=int, default=200)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--cv", type=int, default=3)
    p.add_argument("--bootstrap", type=int, default=20,
                   help="bootstrap members for ate_interval (0 skips it)")
    p.add_argument("--outcomes", nargs="+", default=["continuous", "binary"])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--out", default=os.path.join(RESULTS, "inference_coverage.md"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    lines = [f"\n## `python {' '.join(['benchmarks/inference_coverage.py'] + sys.argv[1:])}`",
             f"\nMachine: {machine_description()}"]
    for flag, fn in (("coverage", coverage), ("rct", rct), ("stability", stability),
                     ("ihdp", ihdp), ("known_nuisances", known_nuisances)):
        if getattr(args, flag):
            lines += fn(args, args.out)
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "a") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
