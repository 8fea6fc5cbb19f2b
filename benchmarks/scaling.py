"""Speed of the feature scaling every fit and prediction runs, against plain NumPy.

``column_scaling`` (the columns' mean and standard deviation, at fit) and
``apply_scaling`` (``(X - offset) / scale`` with the float32 range check, at fit and at
every prediction) work block by block of rows, without a float64 copy of the table;
the baseline is the plain NumPy computation they give the bits of: ``mean`` and ``std``
of the C-ordered float64 copy, and ``((X - offset) / scale)`` rounded to float32 with
its extremes read after. Both run in the same process on the same table; each figure
is the best of --repeats timings. The script checks that the results agree to the bit.

Run:  OMP_NUM_THREADS=1 python benchmarks/scaling.py [--rows 2000000]
Writes benchmarks/results/scaling_cpu.md (``--out DIR`` for another folder); an existing
file is refused before any timing unless ``--force``.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from causalnn._base._scaling import apply_scaling, column_scaling
from causalnn.benchmark import machine_description, refuse_existing, save_markdown


def best_seconds(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def numpy_statistics(X):
    copy = np.array(X, dtype=np.float64, order="C")
    return copy.mean(axis=0), copy.std(axis=0)


def numpy_scaling(X, offset, scale):
    scaled = ((np.asarray(X, dtype=np.float64) - offset) / scale).astype(np.float32)
    scaled.max(), scaled.min()  # the range check's reads
    return scaled


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--columns", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--force", action="store_true",
                        help="replace the results file if it exists")
    args = parser.parse_args(argv)
    out = Path(args.out) / "scaling_cpu.md"
    refuse_existing([out], args.force)
    rng = np.random.default_rng(0)
    base = rng.normal(size=(args.rows, args.columns)) * 3.0 + 10.0
    lines = ["# Feature scaling: causalnn against plain NumPy", "",
             f"Machine: {machine_description(torch.device('cpu'), threads=1)}.", "",
             "Command: `OMP_NUM_THREADS=1 python benchmarks/scaling.py "
             + " ".join(argv if argv is not None else sys.argv[1:]) + "`", "",
             f"{args.rows:,} x {args.columns}; seconds, the best of {args.repeats}. "
             "Statistics: plain NumPy is mean and std of the C-ordered float64 copy. "
             "Scaling: plain NumPy is (X - offset) / scale in float64, rounded to "
             "float32, its maximum and minimum read after. Every pair agrees to the bit.",
             "", "| X | step | plain NumPy | causalnn | speed-up |", "|---|---|---|---|---|"]
    start_all = time.perf_counter()
    for label, X in (("float64, C order", base),
                     ("float32, C order", base.astype(np.float32)),
                     ("float32, F order", np.asfortranarray(base, dtype=np.float32))):
        plain_s, (mean, std) = best_seconds(lambda: numpy_statistics(X), args.repeats)
        ours_s, (offset, scale) = best_seconds(lambda: column_scaling(X), args.repeats)
        assert np.array_equal(mean, offset) and np.array_equal(std, scale), label
        lines.append(f"| {label} | column statistics | {plain_s:.3f} | {ours_s:.3f} "
                     f"| {plain_s / ours_s:.1f}x |")
        print(lines[-1], flush=True)
        plain_s, expected = best_seconds(lambda: numpy_scaling(X, offset, scale),
                                         args.repeats)
        ours_s, got = best_seconds(
            lambda: apply_scaling(X, offset, scale, dtype=np.float32), args.repeats)
        assert np.array_equal(expected, got), label
        lines.append(f"| {label} | scaling to float32 | {plain_s:.3f} | {ours_s:.3f} "
                     f"| {plain_s / ours_s:.1f}x |")
        print(lines[-1], flush=True)
    lines += ["", f"Total wall time {time.perf_counter() - start_all:.0f} s."]
    save_markdown(lines, out)


if __name__ == "__main__":
    main()
