"""Coverage and accuracy of causalnn's inference on average effects.

Sections (each a flag; all print a table and append it to the results file):

--coverage   Over ``--n-datasets`` simulated datasets (confounded, limited overlap;
             a continuous and a binary outcome) with known population ATE and ATT:
             how often the nominal 95% AIPW interval of ``ate_inference`` (TARNet,
             cross-fitted in one batched fit, logistic propensity) covers the truth,
             for the ATE and the ATT, and how often the nominal 90% bootstrap
             ``ate_interval`` (TARNet with ``n_members=B, bootstrap=True``) does,
             by its default normal method and by ``method="percentile"``.
--rct        A randomized trial of 445 rows with a zero-inflated heavy-tailed outcome
             (``--rct-design nsw``: shaped after the NSW sample; ``lognormal``):
             |ATE error| of plug-in TARNet vs cross-fitted AIPW, averaged over seeds,
             beside the difference in means and the oracle AIPW (the noise floor).
--stability  ~1% treated rows: standard deviation over 10 seeds of the plug-in ATT vs
             the AIPW ATT (``--seeds 30``: also the ratio per block of 10 seeds).
--ihdp       IHDP replications 1-10: |ATE error| of Dragonnet, plug-in vs AIPW/TMLE,
             beside AIPW/TMLE with the true outcome means (their noise floor);
             ``--random-state`` seeds every fit (default 0).
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
from causalnn.inference import aggregate_repeats, estimate_average_effect

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
                               "att_cover", "tmle_cover", "plugin_ate", "boot_normal_cover",
                               "boot_percentile_cover",
                               "n_clipped", "ate_rep_est", "ate_rep_se", "ate_rep_cover",
                               "att_rep_est", "att_rep_se", "att_rep_cover")}
        start = time.perf_counter()
        for k in range(args.n_datasets):
            rng = np.random.default_rng(1000 + k)
            X, t, y = simulate(args.n, outcome, rng)
            est = TARNet(**SMALL, random_state=k)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # one cross-fitted fit serves both targets (ate_inference refits per
                # call; the benchmark shares the nuisances); with --n-repeats R the
                # first partition is a single cross-fit, though not the numbers of
                # n_repeats=1: a member's initial weights depend on the fit's size
                partitions = est._nuisances_cross_fitted(
                    X, y, t, est._propensity_model(None), args.cv, args.n_repeats)
            mu0, mu1, e = partitions[0]
            for target in ("ate", "att"):
                each = [estimate_average_effect(y, t, *p, target=target, outcome=outcome,
                                                cv=args.cv) for p in partitions]
                for key, res in ((target, each[0]), (f"{target}_rep", aggregate_repeats(
                        each) if args.n_repeats > 1 else None)):
                    if res is None:
                        continue
                    lo, hi = res.conf_int(0.05)
                    rec[f"{key}_est"].append(res.point_estimate)
                    rec[f"{key}_se"].append(res.stderr)
                    rec[f"{key}_cover"].append(lo <= truth[target] <= hi)
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
                for method in ("normal", "percentile"):
                    with warnings.catch_warnings():
                        # the percentile's warning: too few members for its tails
                        warnings.simplefilter("ignore")
                        lo, hi = boot.ate_interval(X, alpha=0.10, method=method)
                    rec[f"boot_{method}_cover"].append(lo <= truth["ate"] <= hi)
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
            *[f"| AIPW {target.upper()} (cv={args.cv}, n_repeats={args.n_repeats}, "
              f"median rule) | 95% | {cov(r[f'{target}_rep_cover'])} | "
              f"{r[f'{target}_rep_est'].mean() - truth[target]:+.4f} | "
              f"{r[f'{target}_rep_se'].mean():.4f} | "
              f"{r[f'{target}_rep_est'].std(ddof=1):.4f} |"
              for target in ("ate", "att") if args.n_repeats > 1],
            f"| TMLE ATE (cv={args.cv}) | 95% | {cov(r['tmle_cover'])} | | | |",
            f"| plug-in ATE (cross-fitted TARNet) | - | - | "
            f"{r['plugin_ate'].mean() - truth['ate']:+.4f} | - | "
            f"{r['plugin_ate'].std(ddof=1):.4f} |",
        ]
        if args.bootstrap:
            lines += [f"| bootstrap ate_interval (B={args.bootstrap}, method={method!r}) "
                      f"| 90% | {cov(r[f'boot_{method}_cover'])} | | | |"
                      for method in ("normal", "percentile")]
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
class LognormalTrial:
    """8 standard-normal covariates; 40% assigned to treatment; earnings are zero for
    ~40% of rows (more without treatment) and lognormal (sigma 1.2) otherwise."""
    name = "zero-inflated lognormal earnings, 8 N(0, 1) covariates"

    @staticmethod
    def covariates(rng, n):
        return rng.normal(size=(n, 8))

    @staticmethod
    def mean_outcome(x, arm):  # E[y | x, t=arm]; E exp(1.2 Z) = exp(0.72)
        return (expit(0.2 + 0.5 * x[:, 0] + 0.4 * arm)
                * np.exp(7.5 + 0.5 * x[:, 1] + 0.2 * arm + 0.72))

    @staticmethod
    def assign(rng, n):
        t = rng.binomial(1, 0.4, size=n).astype(float)
        return t, np.full(n, 0.4)

    @staticmethod
    def outcome(rng, x, t):
        work = rng.binomial(1, expit(0.2 + 0.5 * x[:, 0] + 0.4 * t))
        noise = 1.2 * rng.normal(size=len(t))
        return work * np.exp(7.5 + 0.5 * x[:, 1] + 0.2 * t + noise)


class NSWLikeTrial:
    """Shaped after the NSW experimental sample the issue measured (LaLonde 1986;
    Dehejia & Wahba 1999): 445 rows, 185 treated by complete randomisation, raw
    covariates (age, years of education, race, marriage, no degree, 1974 and 1975
    earnings in dollars, zero for most), 1978 earnings zero for about a third and
    lognormal (sigma 0.9) otherwise, an effect of about 1,800 dollars on a control mean
    of about 4,500."""
    name = "NSW-like: raw dollar covariates, 185 of 445 treated"

    @staticmethod
    def covariates(rng, n):
        age = np.clip(np.round(rng.normal(25, 7, n)), 17, 55)
        educ = np.clip(np.round(rng.normal(10.2, 1.8, n)), 3, 16)
        black = rng.binomial(1, 0.83, n)
        hisp = (1 - black) * rng.binomial(1, 0.55, n)
        married = rng.binomial(1, 0.17, n)
        nodegree = (educ < 12).astype(float)
        level = rng.normal(size=n)  # earnings level shared by 1974 and 1975
        re74 = rng.binomial(1, 0.27, n) * np.exp(8.4 + 0.6 * level
                                                 + 0.6 * rng.normal(size=n))
        re75 = rng.binomial(1, 0.35, n) * np.exp(8.3 + 0.6 * level
                                                 + 0.6 * rng.normal(size=n))
        return np.column_stack([age, educ, black, hisp, married, nodegree, re74, re75])

    @staticmethod
    def _work_and_log_earnings(x, arm):
        age, educ, married, re75 = x[:, 0], x[:, 1], x[:, 4], x[:, 7]
        work = expit(0.3 + 0.8 * (re75 > 0) + 0.03 * (age - 25) + 0.15 * (educ - 10)
                     + 0.2 * married + 0.5 * arm)
        log_earn = 8.2 + 0.1 * (educ - 10) + 0.3 * (re75 > 0) + 0.2 * arm
        return work, log_earn

    @classmethod
    def mean_outcome(cls, x, arm):  # E exp(0.9 Z) = exp(0.405)
        work, log_earn = cls._work_and_log_earnings(x, arm)
        return work * np.exp(log_earn + 0.405)

    @staticmethod
    def assign(rng, n):
        t = np.zeros(n)
        t[rng.permutation(n)[:185]] = 1.0
        return t, np.full(n, 185 / n)

    @classmethod
    def outcome(cls, rng, x, t):
        work, log_earn = cls._work_and_log_earnings(x, t)
        return rng.binomial(1, work) * np.exp(log_earn + 0.9 * rng.normal(size=len(t)))


RCT_DESIGNS = {"lognormal": LognormalTrial, "nsw": NSWLikeTrial}


def rct(args, out):
    """A randomized trial of 445 rows with a zero-inflated heavy-tailed outcome.

    Beside plug-in TARNet and cross-fitted AIPW, two references: the difference in
    means (unbiased in a trial) and the *oracle* AIPW with the true outcome means and
    the known assignment probability, the efficient estimator, whose error is the floor
    set by the outcome noise that no estimator of the population ATE can beat.
    """
    design = RCT_DESIGNS[args.rct_design]
    n, seeds = 445, args.seeds
    aipw_name = "AIPW (TARNet, cv=5" + (
        f", n_repeats={args.n_repeats})" if args.n_repeats > 1 else ")")
    names = ["plug-in TARNet (default)", aipw_name, "difference in means",
             "oracle AIPW (true outcome means, known propensity)"]
    errors = {k: [] for k in names}
    signed = []
    # the population ATE by Monte Carlo over the covariate law
    big = design.covariates(np.random.default_rng(99), 400_000)
    truth = float(np.mean(design.mean_outcome(big, 1) - design.mean_outcome(big, 0)))
    for s in range(seeds):
        rng = np.random.default_rng(500 + s)
        X = design.covariates(rng, n)
        t, e = design.assign(rng, n)
        y = design.outcome(rng, X, t)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plug = TARNet(random_state=s).fit(X, y, treatment=t).ate(X)
            res = TARNet(random_state=s).ate_inference(X, y, treatment=t, cv=5,
                                                       n_repeats=args.n_repeats)
        oracle = estimate_average_effect(y, t, design.mean_outcome(X, 0),
                                         design.mean_outcome(X, 1), e, method="aipw")
        estimates = [plug, res.point_estimate, y[t == 1].mean() - y[t == 0].mean(),
                     oracle.point_estimate]
        for k, v in zip(names, estimates):
            errors[k].append(abs(v - truth))
        signed.append(plug - truth)
        print(f"  rct seed {s}: truth {truth:.0f} plug-in {plug:.0f} AIPW "
              f"{res.point_estimate:.0f} (se {res.stderr:.0f}) difference in means "
              f"{estimates[2]:.0f} oracle {oracle.point_estimate:.0f}", flush=True)
    lines = [f"\n### Randomized trial ({design.name}), n={n}, {seeds} seeds, "
             f"population ATE {truth:.0f}\n",
             "| estimate | mean abs ATE error | s.e. |", "|---|---|---|"]
    lines += [f"| {k} | {np.mean(v):.0f} | {np.std(v, ddof=1) / np.sqrt(len(v)):.0f} |"
              for k, v in errors.items()]
    ratio = np.mean(errors[names[1]]) / np.mean(errors[names[0]])
    floor = np.mean(errors[names[3]]) / np.mean(errors[names[0]])
    lines.append(f"\nAIPW error / plug-in error = {ratio:.2f} (target <= 0.5); the "
                 f"oracle's / plug-in's = {floor:.2f}. Plug-in error - truth, mean over "
                 f"seeds: {np.mean(signed):+.0f} (its bias).")
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
    plug, dr, dr_repeated, dr_mean = [], [], [], []
    seconds = {"plug-in": 0.0, "cross-fit": 0.0}
    for s in range(args.seeds):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            est = TARNet(**STABLE, random_state=s).fit(X, y, treatment=t)
            plug.append(float(est.effect(X[t == 1]).mean()))
            seconds["plug-in"] += time.perf_counter() - start
            start = time.perf_counter()
            # what ate_inference(target="att", cv=3, n_repeats=R) computes; partition 0
            # alone is a single cross-fit, though not the numbers of n_repeats=1 (a
            # member's initial weights depend on how many members the fit has)
            est = TARNet(**STABLE, n_members=args.n_members, random_state=s)
            each = [estimate_average_effect(y, t, *p, target="att", cv=3)
                    for p in est._nuisances_cross_fitted(
                        X, y, t, est._propensity_model(None), 3, args.n_repeats)]
            seconds["cross-fit"] += time.perf_counter() - start
            dr.append(each[0].point_estimate)
            dr_repeated.append(aggregate_repeats(each).point_estimate)
            dr_mean.append(np.mean([r.point_estimate for r in each]))
        print(f"  seed {s}: plug-in ATT {plug[-1]:.0f}, AIPW ATT {dr[-1]:.0f}, "
              f"with {args.n_repeats} partitions {dr_repeated[-1]:.0f}", flush=True)
    lines = [f"\n### ~1% treated ({int(t.sum())} of {n}), sample ATT {truth:.0f}, "
             f"{args.seeds} seeds of TARNet({STABLE}); the cross-fits with "
             f"n_members={args.n_members} per fold\n",
             "| estimate | sd over seeds | mean |", "|---|---|---|",
             f"| plug-in ATT | {np.std(plug, ddof=1):.0f} | {np.mean(plug):.0f} |",
             f"| AIPW ATT (cv=3) | {np.std(dr, ddof=1):.0f} | {np.mean(dr):.0f} |"]
    if args.n_repeats > 1:
        lines.append(f"| AIPW ATT (cv=3, n_repeats={args.n_repeats}) | "
                     f"{np.std(dr_repeated, ddof=1):.0f} | {np.mean(dr_repeated):.0f} |")
        lines.append(f"| (mean instead of median of the {args.n_repeats} partitions) | "
                     f"{np.std(dr_mean, ddof=1):.0f} | {np.mean(dr_mean):.0f} |")
    lines += [f"\nsd ratio AIPW / plug-in = {np.std(dr, ddof=1) / np.std(plug, ddof=1):.2f}"
              f" (target <= 0.5)"]
    if args.n_repeats > 1:
        lines.append(
            f"sd ratio AIPW with n_repeats={args.n_repeats} / plug-in = "
            f"{np.std(dr_repeated, ddof=1) / np.std(plug, ddof=1):.2f}; seconds per seed: "
            f"plug-in fit {seconds['plug-in'] / args.seeds:.1f}, the {args.n_repeats} "
            f"x 3-fold cross-fit {seconds['cross-fit'] / args.seeds:.1f}")
    if args.seeds >= 20:
        # a standard deviation over 10 seeds is itself noisy (relative s.e. ~24%):
        # the ratio for each block of 10 consecutive seeds shows how much
        for name, values in (("AIPW", dr), (f"n_repeats={args.n_repeats}", dr_repeated)):
            blocks = [(np.std(values[i:i + 10], ddof=1) / np.std(plug[i:i + 10], ddof=1))
                      for i in range(0, args.seeds - 9, 10)]
            lines.append(f"sd ratio ({name}) per block of 10 seeds: "
                         + ", ".join(f"{b:.2f}" for b in blocks))
    return lines


# ---- IHDP -------------------------------------------------------------------------------
def ihdp(args, out):
    """Dragonnet on the 10 IHDP files, all rows, against each file's sample ATE.

    Besides the estimates, the *oracle* AIPW uses the true ``mu0, mu1`` with the
    cross-fitted propensity: its error is what the outcome noise (sd 1 in IHDP) leaves
    to any AIPW/TMLE estimate of the sample ATE even with perfect outcome models, a
    floor that the plug-in, which averages ``mu1 - mu0`` without residuals, does not
    have.
    """
    from causalnn.datasets import load_ihdp
    rows = []
    members = args.n_members
    for r in range(1, 11):
        d = load_ihdp(r)
        t = d.treatment.astype(float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plug = Dragonnet(n_members=members, random_state=args.random_state).fit(
                d.X, d.y, treatment=t).ate(d.X)
            est = Dragonnet(n_members=members, random_state=args.random_state)
            partitions = est._nuisances_cross_fitted(d.X, d.y, t, None, args.cv,
                                                     args.n_repeats)
        mu0, mu1, e = partitions[0]  # the single cross-fit

        def estimate(method, repeated=False):
            each = [estimate_average_effect(d.y, t, *p, method=method, cv=args.cv)
                    for p in (partitions if repeated else partitions[:1])]
            return aggregate_repeats(each) if repeated else each[0]

        a, tm = estimate("aipw"), estimate("tmle")
        oracle = estimate_average_effect(d.y, t, d.mu0, d.mu1, e, method="aipw")
        oracle_tmle = estimate_average_effect(d.y, t, d.mu0, d.mu1, e, method="tmle")
        row = [abs(plug - d.ate), abs(a.plugin_estimate - d.ate),
               abs(a.point_estimate - d.ate), abs(tm.point_estimate - d.ate),
               abs(oracle.point_estimate - d.ate), abs(oracle_tmle.point_estimate - d.ate),
               (a.conf_int()[0] <= d.ate <= a.conf_int()[1])]
        if args.n_repeats > 1:
            row += [abs(estimate(m, repeated=True).point_estimate - d.ate)
                    for m in ("aipw", "tmle")]
        rows.append(tuple(row))
        print(f"  ihdp {r}: " + " ".join(f"{v:.3f}" for v in rows[-1]), flush=True)
    m = np.mean(rows, axis=0)
    se = np.std(rows, axis=0, ddof=1) / np.sqrt(len(rows))
    repeated = [
        f"| {m}, cross-fitted (cv={args.cv}, n_repeats={args.n_repeats}, median rule) | "
        f"{m_:.3f} | {s_:.3f} |" for m, m_, s_ in zip(("AIPW", "TMLE"), m[7:], se[7:])]
    return [f"\n### IHDP 1-10, Dragonnet (n_members={members} per fit and per fold, "
            f"random_state={args.random_state}), |ATE error| against the sample ATE\n",
            "| estimate | mean abs error | s.e. |", "|---|---|---|",
            f"| plug-in, fitted on all rows | {m[0]:.3f} | {se[0]:.3f} |",
            f"| plug-in, cross-fitted (cv={args.cv}) | {m[1]:.3f} | {se[1]:.3f} |",
            f"| AIPW, cross-fitted (cv={args.cv}) | {m[2]:.3f} | {se[2]:.3f} |",
            f"| TMLE, cross-fitted (cv={args.cv}) | {m[3]:.3f} | {se[3]:.3f} |",
            *repeated,
            f"| oracle AIPW (true mu0, mu1; cross-fitted propensity) | {m[4]:.3f} "
            f"| {se[4]:.3f} |",
            f"| oracle TMLE (true mu0, mu1; cross-fitted propensity) | {m[5]:.3f} "
            f"| {se[5]:.3f} |",
            f"\nAIPW 95% interval covers the sample ATE in {int(round(m[6] * 10))}/10 "
            f"files."]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--coverage", action="store_true")
    p.add_argument("--rct", action="store_true")
    p.add_argument("--rct-design", choices=sorted(RCT_DESIGNS), default="lognormal",
                   help="--rct: the simulated trial (lognormal: 8 N(0,1) covariates; "
                        "nsw: shaped after the NSW sample the issue measured)")
    p.add_argument("--stability", action="store_true")
    p.add_argument("--ihdp", action="store_true")
    p.add_argument("--known-nuisances", action="store_true")
    p.add_argument("--n-datasets", type=int, default=200)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--cv", type=int, default=3)
    p.add_argument("--n-repeats", type=int, default=1,
                   help="cross-fitting partitions aggregated by the median rule; the "
                        "sections report the first partition alone beside it")
    p.add_argument("--bootstrap", type=int, default=20,
                   help="bootstrap members for ate_interval (0 skips it)")
    p.add_argument("--outcomes", nargs="+", default=["continuous", "binary"])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--n-members", type=int, default=1,
                   help="members per fit (--ihdp: Dragonnet, also the plug-in fit) and per "
                        "cross-fitting fold (--ihdp, --stability)")
    p.add_argument("--random-state", type=int, default=0,
                   help="--ihdp: the random_state of every Dragonnet fit")
    p.add_argument("--out", default=os.path.join(RESULTS, "inference_coverage.md"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    lines = [f"\n## `python {' '.join(['benchmarks/inference_coverage.py'] + sys.argv[1:])}`",
             f"\nMachine: {machine_description()}"]
    for flag, fn in (("coverage", coverage), ("rct", rct), ("stability", stability),
                     ("ihdp", ihdp), ("known_nuisances", known_nuisances)):
        if getattr(args, flag):
            lines += fn(args, args.out)
    append_section(lines, args.out)


def append_section(lines, out, heading=()):
    """Print a run's section and append it to the results file ``out`` (earlier runs'
    sections stay above it); ``heading`` (lines: a title, what the file measures) goes
    first when the file is new."""
    if not os.path.exists(out):
        lines = list(heading) + list(lines)
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "a") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
