"""How much the 10-file IHDP mean moves with the seed alone.

``benchmarks/ihdp.py`` fits each replication ``r`` once, with ``random_state=r``. This
script refits the same models with ``random_state = r + offset`` for several offsets
(same files, same 63/27/10 splits, same settings) and reports, per offset, the mean
out-of-sample sqrt(PEHE) over the files, replication 9 (whose control surface reaches
255 and dominates every mean) and the mean of the other nine; then the spread of the
10-file mean across offsets. A target on the 10-file mean of one seed per file is met
or missed by this spread as much as by the model.

``--bag-splits K`` instead scores an ensemble of K *separate* single fits per file,
each with its own seed and therefore its own validation rows (the members of one
``n_members`` fit share one split).

Run:  python benchmarks/ihdp_seeds.py [--models TARNet CFR-wasserstein]
      [--offsets 0 100 200 300] [--n-members 1 5] [--bag-splits K]
      [--member-validation shared|own] [--threads 2] [--output NAME] [--force]
Writes benchmarks/results/ihdp_seeds_cpu.md (``--output`` to change the name); an
existing file is refused before any fit unless ``--force``.
"""
import argparse
import ast
import shlex
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from causalnn.benchmark import machine_description, refuse_existing, save_markdown
from causalnn.datasets import load_ihdp
from causalnn.metrics import pehe

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ihdp import model_specs, run_one  # noqa: E402


def label(name, bag_splits, member_validation="shared"):
    if bag_splits:
        return f"{name}, {bag_splits} fits, own splits"
    return name if member_validation == "shared" else f"{name}, member_validation='own'"


def fit_and_score(spec, data, offset, members, bag_splits, member_validation="shared",
                  params=None):
    """Out-of-sample sqrt(PEHE) and fit seconds of one model on one file: a single
    fit, or with ``bag_splits`` the mean effect of that many single fits, each with
    its own seed and so its own validation rows (seconds summed)."""
    if not bag_splits:
        est = spec(data.replication + offset)
        if hasattr(est, "n_members"):
            est.set_params(n_members=members, member_validation=member_validation)
        est.set_params(**(params or {}))
        row = run_one("", est, data)[0]
        return row["pehe_out"], row["fit_seconds"]
    test = data.test_index
    effects, seconds = [], 0.0
    for k in range(bag_splits):
        est = spec(data.replication + offset + 1000 * k)
        if members != 1:
            est.set_params(n_members=members)
        est.set_params(**(params or {}))
        seconds += run_one("", est, data)[0]["fit_seconds"]
        effects.append(est.effect(data.X[test]))
    return pehe(data.ite[test], np.mean(effects, axis=0)), seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["TARNet", "CFR-wasserstein"])
    parser.add_argument("--offsets", type=int, nargs="+", default=[0, 100, 200, 300])
    parser.add_argument("--n-members", type=int, nargs="+", default=[1])
    parser.add_argument("--replications", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bag-splits", type=int, default=0, metavar="K",
                        help="also score, per model, an ensemble of K single fits with "
                             "random_state r + offset + 1000 k: each member holds out its "
                             "own validation rows (a fit with n_members shares one split)")
    parser.add_argument("--member-validation", choices=["shared", "own"],
                        default="shared", help="the estimators' member_validation")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="an estimator parameter to set (a Python literal), e.g. "
                             "--param patience=60; repeatable")
    parser.add_argument("--output", default="ihdp_seeds_cpu.md",
                        help="file name under benchmarks/results/")
    parser.add_argument("--force", action="store_true",
                        help="replace the results file if it exists")
    args = parser.parse_args(argv)
    out = Path(__file__).parent / "results" / args.output
    refuse_existing([out], args.force)
    params = {name: ast.literal_eval(value)
              for name, value in (item.split("=", 1) for item in args.param)}
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    files = [load_ihdp(r) for r in range(1, args.replications + 1)]
    specs = model_specs(args.device)
    lines = [f"# IHDP: the 10-file mean across seeds ({args.device})", "",
             f"Machine: {machine_description()}.", "",
             f"Command: `python benchmarks/ihdp_seeds.py {shlex.join(sys.argv[1:])}`", "",
             "Out-of-sample sqrt(PEHE); `random_state` = replication + offset.", "",
             "| model | n_members | offset | mean over files | replication 9 "
             "| mean of the other files | median | fit s (mean) |",
             "|---|---|---|---|---|---|---|---|"]
    summary = ["", "| model | n_members | mean over files: mean across offsets "
               "| sd across offsets | min | max |", "|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for name in args.models:
        model = label(name, args.bag_splits, args.member_validation) + "".join(
            f", {key}={value!r}" for key, value in params.items())
        for members in args.n_members:
            means = []
            for offset in args.offsets:
                pehes, seconds = [], []
                for data in files:
                    pehe_out, fit_seconds = fit_and_score(
                        specs[name], data, offset, members, args.bag_splits,
                        args.member_validation, params)
                    pehes.append(pehe_out)
                    seconds.append(fit_seconds)
                pehes = np.asarray(pehes)
                nine = pehes[8] if len(pehes) >= 9 else np.nan
                others = np.delete(pehes, 8) if len(pehes) >= 9 else pehes
                means.append(pehes.mean())
                lines.append(f"| {model} | {members} | {offset} | {pehes.mean():.3f} "
                             f"| {nine:.2f} | {others.mean():.3f} | {np.median(pehes):.3f} "
                             f"| {np.mean(seconds):.2f} |")
                print(lines[-1], flush=True)
            means = np.asarray(means)
            sd = means.std(ddof=1) if len(means) > 1 else float("nan")
            summary.append(f"| {model} | {members} | {means.mean():.3f} | {sd:.3f} "
                           f"| {means.min():.3f} | {means.max():.3f} |")
    lines += summary
    print("\n".join(summary))
    save_markdown(lines, out)


if __name__ == "__main__":
    main()
