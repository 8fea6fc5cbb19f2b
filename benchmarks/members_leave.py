"""Ensembles with members that stop leaving the batched fit, against all members
training to the end, on the CPU.

A batched fit runs as many epochs as its slowest member. Since ``compact_members`` the
engine takes a member that has run out of patience out of the batched computation, so
the remaining epochs compute only the members still training. Each case is fitted on an
IHDP replication alternately without and with it (twice each, in one process); a fit's
time is the process CPU time (on a shared machine wall time also counts other people's
work), the better of its two. The members still training compute what they computed
before up to round-off (a batched product may split its sums differently for another
member count), so the table gives the largest effect move beside the effects' spread,
and whether early stopping chose the same epochs. 'share' is the fraction of
member-epochs the whole fit spent on members still training: the most that leaving can
save.

Run:  python benchmarks/members_leave.py --replications 1 2 3 4 5
Writes benchmarks/results/members_leave_cpu.md (a section per run, appended).
"""
import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from causalnn import CFRNet, Dragonnet, TARNet
from causalnn.benchmark import machine_description
from causalnn.datasets import load_ihdp
from causalnn.estimators.representation._common import RepresentationEstimator
from inference_coverage import append_section  # benchmarks/, next to this script

CASES = {
    "TARNet, 5 members": lambda: TARNet(n_members=5),
    "TARNet, 20 bootstrap members": lambda: TARNet(n_members=20, bootstrap=True),
    "CFR-Wasserstein, 5 members": lambda: CFRNet(ipm="wasserstein", n_members=5),
    "Dragonnet, 5 members": lambda: Dragonnet(n_members=5),
}


def timed_fit(make, data, leave):
    RepresentationEstimator._compact_members = leave
    est = make().set_params(random_state=0, device="cpu")
    start = time.process_time()
    est.fit(data.X, data.y, treatment=data.treatment)
    return (time.process_time() - start, est.effect(data.X, members=True),
            np.atleast_1d(est.best_epoch_), len(est.history_), est.patience)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replications", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES),
                        metavar="CASE", help="; ".join(CASES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    lines = [f"## IHDP replications {args.replications}, {args.threads} torch thread(s)",
             "", f"Machine: {machine_description(torch.device('cpu'))}.", "",
             "Command: `python benchmarks/members_leave.py "
             + " ".join(argv if argv is not None else sys.argv[1:]) + "`", "",
             "| case | replication | all train, CPU s | stopped leave, CPU s | speed-up | "
             "share | epochs | same best epochs | largest effect move | effects' sd |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    totals = {}
    try:
        for name in args.cases:
            totals[name] = np.zeros(2)
            for replication in args.replications:
                data = load_ihdp(replication)
                runs = {False: [], True: []}
                for leave in (False, True, False, True):
                    runs[leave].append(timed_fit(CASES[name], data, leave))
                if not np.array_equal(runs[True][0][1], runs[True][1][1]):
                    raise AssertionError("two fits of one seed differ")
                (cpu0, effect0, best0, epochs0, patience), (cpu1, effect1, best1, _, _) = (
                    min(runs[leave], key=lambda run: run[0]) for leave in (False, True))
                totals[name] += (cpu0, cpu1)
                share = np.minimum(best0 + patience, epochs0).sum() / (len(best0) * epochs0)
                lines.append(
                    f"| {name} | {replication} | {cpu0:.2f} | {cpu1:.2f} | "
                    f"{cpu0 / cpu1:.2f}x | {share:.2f} | {epochs0} | "
                    f"{'yes' if np.array_equal(best0, best1) else 'no'} | "
                    f"{np.abs(effect1 - effect0).max():.1e} | {np.std(effect0):.2f} |")
                print(lines[-1], flush=True)
    finally:
        RepresentationEstimator._compact_members = True
    lines += [""] + [
        f"Mean CPU seconds per fit, {name}: all train {t[0] / len(args.replications):.2f}, "
        f"stopped leave {t[1] / len(args.replications):.2f} ({t[0] / t[1]:.2f}x)."
        for name, t in totals.items()] + [""]
    out = Path(args.out) / "members_leave_cpu.md"
    append_section(lines, out, heading=[
        "# Members that stop leave the batched fit (CPU)", "",
        __doc__.split("\n\n")[1], ""])
    print(f"appended to {out}")


if __name__ == "__main__":
    main()
