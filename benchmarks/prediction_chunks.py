"""Prediction speed of TARNet's ``effect(X)`` by the size of the chunks it runs in.

``effect`` runs the fitted network over ``X`` chunk by chunk
(:func:`causalnn.engine.prediction_chunk_rows`). A chunk is given as the number of
activation floats it holds: rows x members x the widest layer (200 for the default
TARNet). Each size is timed on the same fitted model and table, in the same run, with
``effect(X)`` as a user calls it (NumPy in and out, validation and scaling included);
'vs 2**26' is the ratio of rows/s to chunks of 2**26 floats, the size used on every
device before this benchmark. The row marked "used" is what the library picks on this
device. Each figure is the best of --repeats timings (the least disturbed by other work
on a shared machine).

Run (CPU):  python benchmarks/prediction_chunks.py --device cpu --threads 1
            python benchmarks/prediction_chunks.py --device cpu --threads 2
Run (GPU):  python benchmarks/prediction_chunks.py --device cuda --rows 10000000
Writes benchmarks/results/prediction_chunks_<device>.md (a section per run, appended).
"""
import argparse
import sys
import time
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from causalnn import TARNet
from causalnn.benchmark import machine_description
from causalnn.engine import prediction_chunk_rows, resolve_device, wait_for_gpu
from causalnn.estimators.representation import _common
from inference_coverage import append_section  # benchmarks/, next to this script

REP, HEAD = (200, 200, 200), (100, 100, 100)
WIDTH = max(REP + HEAD)


def fitted_tarnet(n_members, device, d=25, n=2000, seed=0):
    """A TARNet of the default network, briefly fitted (its speed, not its accuracy,
    is measured)."""
    rng = np.random.RandomState(seed)
    X = rng.randn(n, d)
    t = (rng.rand(n) < 0.5).astype(float)
    y = X[:, 0] + t + 0.1 * rng.randn(n)
    est = TARNet(representation_layers=REP, head_layers=HEAD, n_members=n_members,
                 max_epochs=1, patience=None, batch_size=512, random_state=seed,
                 device=device)
    return est.fit(X, y, treatment=t)


def best_rows_per_second(est, X, floats, repeats):
    """``effect(X)`` rows/s with chunks of ``floats`` activation floats; the best of
    ``repeats`` timings."""
    def rows_for(device, floats_per_row):
        return max(1, floats // floats_per_row)
    seconds = []
    with mock.patch.object(_common, "prediction_chunk_rows", rows_for):
        est.effect(X[:1000])  # allocator and kernels warmed up
        for _ in range(repeats):
            wait_for_gpu()
            start = time.perf_counter()
            est.effect(X)
            wait_for_gpu()
            seconds.append(time.perf_counter() - start)
    return len(X) / min(seconds)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--members", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--floats", type=int, nargs="+",
                        default=[2**17, 2**19, 2**21, 2**23, 2**26],
                        help="chunk sizes in activation floats")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    X = np.random.RandomState(1).randn(args.rows, 25)
    floats = sorted(set(args.floats) | {2**26})
    lines = [f"## {args.rows:,} rows, {torch.get_num_threads()} torch threads", "",
             f"Machine: {machine_description(device)}.", "",
             "Command: `python benchmarks/prediction_chunks.py "
             + " ".join(argv if argv is not None else sys.argv[1:]) + "`",
             "", "| members | chunk (floats) | rows per chunk | effect(X) rows/s | "
             "vs 2**26 |", "|---|---|---|---|---|"]
    start_all = time.perf_counter()
    for members in args.members:
        est = fitted_tarnet(members, device)
        per_row = members * WIDTH
        used = prediction_chunk_rows(est.device_, per_row)
        rates = {f: best_rows_per_second(est, X, f, args.repeats) for f in floats}
        for f in floats:
            mark = " (used)" if max(1, f // per_row) == used else ""
            lines.append(f"| {members} | 2**{int(np.log2(f))}{mark} | "
                         f"{max(1, f // per_row):,} | {rates[f] / 1e6:.3f} M | "
                         f"{rates[f] / rates[2**26]:.2f} |")
    lines += ["", f"Total wall time {time.perf_counter() - start_all:.0f} s.", ""]
    out = Path(args.out) / f"prediction_chunks_{device.type}.md"
    if not out.exists():
        lines = ["# Prediction speed by chunk size", "", __doc__.split("\n\n")[1],
                 ""] + lines
    append_section(lines, out)
    print(f"appended to {out}")


if __name__ == "__main__":
    main()
