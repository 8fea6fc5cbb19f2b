"""TARNet fits with torch's fused Adam against its per-parameter Adam, on the CPU.

The engine runs Adam fused on CUDA and, since torch 2.4 has the kernel, on the CPU
too. Each IHDP replication is fitted with the default TARNet, ``random_state=0``,
alternately per-parameter / fused (twice each, in one process); a fit's time is the
process CPU time (on a shared machine wall time also counts other people's work), the
better of its two. The fused kernel runs the update in another order of operations,
so effects move by float32 round-off: the table gives the largest move beside the
effects' own spread, and whether early stopping chose the same epoch.

Run:  python benchmarks/fused_adam.py --replications 1 2 3 4 5
Writes benchmarks/results/fused_adam_cpu.md (a section per run, appended).
"""
import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from causalnn import TARNet
from causalnn.benchmark import machine_description
from causalnn.datasets import load_ihdp
from causalnn.engine import trainer
from inference_coverage import append_section  # benchmarks/, next to this script


def timed_fit(data, fused):
    trainer._FUSED_ADAM_ON_CPU = fused
    start = time.process_time()
    est = TARNet(random_state=0, device="cpu").fit(data.X, data.y,
                                                  treatment=data.treatment)
    return time.process_time() - start, est.effect(data.X), len(est.history_)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replications", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    if not trainer._FUSED_ADAM_ON_CPU:
        sys.exit(f"torch {torch.__version__} has no fused Adam for CPU tensors (>= 2.4)")
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    lines = [f"## IHDP replications {args.replications}, {args.threads} torch thread(s)",
             "", f"Machine: {machine_description(torch.device('cpu'))}.", "",
             "Command: `python benchmarks/fused_adam.py "
             + " ".join(argv if argv is not None else sys.argv[1:]) + "`", "",
             "| replication | per-parameter CPU s | fused CPU s | speed-up | epochs "
             "(per-parameter / fused) | largest effect move | effects' sd |",
             "|---|---|---|---|---|---|---|"]
    totals = np.zeros(2)
    for replication in args.replications:
        data = load_ihdp(replication)
        runs = {False: [], True: []}
        for fused in (False, True, False, True):
            runs[fused].append(timed_fit(data, fused))
        if not np.array_equal(runs[True][0][1], runs[True][1][1]):
            raise AssertionError("two fused fits of one seed differ")
        (cpu0, effect0, epochs0), (cpu1, effect1, epochs1) = (
            min(runs[f], key=lambda run: run[0]) for f in (False, True))
        totals += (cpu0, cpu1)
        lines.append(f"| {replication} | {cpu0:.2f} | {cpu1:.2f} | {cpu0 / cpu1:.2f}x | "
                     f"{epochs0} / {epochs1} | {np.abs(effect1 - effect0).max():.1e} | "
                     f"{np.std(effect0):.2f} |")
    trainer._FUSED_ADAM_ON_CPU = True
    lines += ["", f"Mean CPU seconds per fit: per-parameter {totals[0] / len(args.replications):.2f}, "
              f"fused {totals[1] / len(args.replications):.2f} "
              f"({totals[0] / totals[1]:.2f}x).", ""]
    out = Path(args.out) / "fused_adam_cpu.md"
    append_section(lines, out, heading=[
        "# Fused against per-parameter Adam on the CPU", "",
        __doc__.split("\n\n")[1], ""])
    print(f"appended to {out}")


if __name__ == "__main__":
    main()
