"""Where the IHDP error lies: the share of each file's squared effect error that comes
from its single worst test unit.

IHDP's response surface B draws the control outcome as ``exp((x + 0.5) beta)``, so a few
units have control outcomes far above the rest (replication 9 reaches 256 in training
and 192 in its test rows, where the median is near 4). Out-of-sample sqrt(PEHE) is a
root mean over 75 test units, so one such unit can carry most of a file's error, and
the 10-file mean that benchmarks report then follows that one unit.

For each replication and seed (``random_state = replication + offset``, as in
``ihdp_seeds.py``), each model is fitted as in ``ihdp.py`` (on the 90% train+validation
rows, its own validation split) and scored on the 10% test rows. The table gives, per
replication, the mean over seeds of: sqrt(PEHE); the share of the squared error from the
test unit that is worst on average over the seeds; and sqrt(PEHE) without that unit;
beside the unit's true mu0, mu1 and effect. The last rows give the 10-file means with
and without each file's worst unit.

Run:  python benchmarks/ihdp_worst_unit.py [--models TARNet] [--offsets 0 100 200]
      [--replications 10] [--threads 2] [--out DIR] [--force]
Writes ``ihdp_worst_unit_cpu.md`` under ``--out`` (default ``benchmarks/results``);
refuses to replace it without ``--force``.
"""
import argparse
import shlex
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from causalnn.benchmark import machine_description, refuse_existing, save_markdown
from causalnn.datasets import load_ihdp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ihdp import model_specs  # noqa: E402


def squared_errors(est, data):
    """Each test unit's squared effect error after fitting ``est`` as ihdp.py does."""
    fit_rows = np.concatenate([data.train_index, data.valid_index])
    est.fit(data.X[fit_rows], data.y[fit_rows], treatment=data.treatment[fit_rows])
    test = data.test_index
    return (est.effect(data.X[test]) - data.ite[test]) ** 2


def file_row(errors, data):
    """errors: (seeds, test units). The per-file figures of the table, averaged over
    the seeds; the worst unit is the one with the largest mean squared error."""
    worst = int(np.argmax(errors.mean(axis=0)))
    unit = data.test_index[worst]
    rest = np.delete(errors, worst, axis=1)
    return {
        "pehe": float(np.sqrt(errors.mean(axis=1)).mean()),
        "share": float((errors[:, worst] / errors.sum(axis=1)).mean()),
        "pehe_without": float(np.sqrt(rest.mean(axis=1)).mean()),
        "mu0": float(data.mu0[unit]), "mu1": float(data.mu1[unit]),
        "ite": float(data.ite[unit]),
        "mu0_test_median": float(np.median(data.mu0[data.test_index])),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["TARNet"])
    parser.add_argument("--offsets", type=int, nargs="+", default=[0, 100, 200])
    parser.add_argument("--replications", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--force", action="store_true",
                        help="replace an existing results file")
    args = parser.parse_args(argv)
    target = Path(args.out) / "ihdp_worst_unit_cpu.md"
    refuse_existing([target], args.force)
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    specs = model_specs("cpu")
    unknown = sorted(set(args.models) - set(specs))
    if unknown:
        parser.error(f"unknown --models {unknown}; choose from {sorted(specs)}")
    files = [load_ihdp(r) for r in range(1, args.replications + 1)]
    lines = ["# IHDP: the share of each file's error from its worst test unit (cpu)", "",
             f"Machine: {machine_description()}.", "",
             f"Command: `python benchmarks/ihdp_worst_unit.py {shlex.join(sys.argv[1:])}`",
             "",
             f"Out-of-sample, {len(args.offsets)} seeds per file (`random_state` = "
             f"replication + offset, offsets {args.offsets}); each figure is the mean "
             f"over the seeds. 'worst unit' is the test unit with the largest mean "
             f"squared effect error.", "",
             "| model | replication | sqrt(PEHE) | worst unit's share of squared error "
             "| sqrt(PEHE) without it | its mu0 | its mu1 | its effect "
             "| median test mu0 |",
             "|---|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    summary = ["", f"| model | {len(files)}-file mean sqrt(PEHE) | without each file's "
               "worst unit | median over files |", "|---|---|---|---|"]
    for name in args.models:
        rows = []
        for data in files:
            errors = np.stack([squared_errors(specs[name](data.replication + offset), data)
                               for offset in args.offsets])
            row = file_row(errors, data)
            rows.append(row)
            lines.append(
                f"| {name} | {data.replication} | {row['pehe']:.2f} | {row['share']:.2f} "
                f"| {row['pehe_without']:.2f} | {row['mu0']:.1f} | {row['mu1']:.1f} "
                f"| {row['ite']:.1f} | {row['mu0_test_median']:.1f} |")
            print(lines[-1], flush=True)
        pehes = np.array([r["pehe"] for r in rows])
        without = np.array([r["pehe_without"] for r in rows])
        summary.append(f"| {name} | {pehes.mean():.3f} | {without.mean():.3f} "
                       f"| {np.median(pehes):.3f} |")
    lines += summary
    print("\n".join(summary))
    save_markdown(lines, target)


if __name__ == "__main__":
    main()
