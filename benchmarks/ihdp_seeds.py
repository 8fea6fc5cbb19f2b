"""How much the 10-file IHDP mean moves with the seed alone.

``benchmarks/ihdp.py`` fits each replication ``r`` once, with ``random_state=r``. This
script refits the same models with ``random_state = r + offset`` for several offsets
(same files, same 63/27/10 splits, same settings) and reports, per offset, the mean
out-of-sample sqrt(PEHE) over the files, replication 9 (whose control surface reaches
255 and dominates every mean) and the mean of the other nine; then the spread of the
10-file mean across offsets. A target on the 10-file mean of one seed per file is met
or missed by this spread as much as by the model.

Run:  python benchmarks/ihdp_seeds.py [--models TARNet CFR-wasserstein]
      [--offsets 0 100 200 300] [--n-members 1 5] [--threads 2]
Writes benchmarks/results/ihdp_seeds_cpu.md (``--output`` to change the name).
"""
import argparse
import shlex
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from causalnn.benchmark import machine_description
from causalnn.datasets import load_ihdp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ihdp import model_specs, run_one  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["TARNet", "CFR-wasserstein"])
    parser.add_argument("--offsets", type=int, nargs="+", default=[0, 100, 200, 300])
    parser.add_argument("--n-members", type=int, nargs="+", default=[1])
    parser.add_argument("--replications", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output", default="ihdp_seeds_cpu.md",
                        help="file name under benchmarks/results/")
    args = parser.parse_args(argv)
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
        for members in args.n_members:
            means = []
            for offset in args.offsets:
                pehes, seconds = [], []
                for data in files:
                    est = specs[name](data.replication + offset)
                    if members != 1:
                        est.set_params(n_members=members)
                    row = run_one(name, est, data)[0]
                    pehes.append(row["pehe_out"])
                    seconds.append(row["fit_seconds"])
                pehes = np.asarray(pehes)
                nine = pehes[8] if len(pehes) >= 9 else np.nan
                others = np.delete(pehes, 8) if len(pehes) >= 9 else pehes
                means.append(pehes.mean())
                lines.append(f"| {name} | {members} | {offset} | {pehes.mean():.3f} "
                             f"| {nine:.2f} | {others.mean():.3f} | {np.median(pehes):.3f} "
                             f"| {np.mean(seconds):.2f} |")
                print(lines[-1], flush=True)
            means = np.asarray(means)
            sd = means.std(ddof=1) if len(means) > 1 else float("nan")
            summary.append(f"| {name} | {members} | {means.mean():.3f} | {sd:.3f} "
                           f"| {means.min():.3f} | {means.max():.3f} |")
    lines += summary
    print("\n".join(summary))
    out = Path(__file__).parent / "results" / args.output
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
