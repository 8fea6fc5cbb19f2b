"""Peak host memory of fits and predictions on a large table, in multiples of the table.

Each case runs in a fresh Python process (Linux: it reads /proc/self/status): a warm-up
fit and prediction on 300 rows first, so that one-off costs (torch's kernels, the
modules the fused optimizer imports on its first use) are not counted; then the
process's peak resident memory is reset (/proc/self/clear_refs) and the measured call
runs. The figure is the peak during the call less the resident memory just before it,
divided by the float64 size of X (n x d x 8 bytes): 1.0 means the call needed one more
copy of the user's table. Networks are small and ``max_epochs=1``: the point is the
copies of the data, which do not depend on the width of the layers.

Run:  OMP_NUM_THREADS=1 python benchmarks/memory.py [--rows 800000] [--compare DIR]
      [--estimators NAME ...]
``--compare DIR`` measures the same cases on the causalnn source tree in DIR (e.g. a
checkout of an earlier commit, named by its commit) in the same run, as a column beside
this tree's.
Writes benchmarks/results/memory_cpu.md (``--out DIR`` for another folder); an existing
file is refused before any measurement unless ``--force``.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (estimator, phase, rows as a fraction of --rows, X as a NumPy array or a DataFrame)
CASES = [
    ("TARNet", "fit", 1.0, "array"),
    ("TARNet", "fit", 1.0, "DataFrame"),
    ("TARNet", "fit", 1.0, "float32 array"),
    ("TARNet", "fit", 1.0, "F-ordered float32 array"),
    ("TARNet", "fit", 1.0, "float32 DataFrame"),
    ("CFR-wasserstein", "fit", 1.0, "array"),
    ("Dragonnet", "fit", 1.0, "array"),
    ("CEVAE", "fit", 1.0, "array"),
    ("TARNet", "effect", 1.0, "array"),
    ("TARNet", "effect", 1.0, "DataFrame"),
    ("TARNet", "effect", 1.0, "float32 array"),
    ("TARNet", "effect", 1.0, "float32 DataFrame"),
    ("TARNet x10 bootstrap", "effect_interval", 1.0, "array"),
    ("TARNet", "ate_inference cv=5", 0.5, "array"),
    ("DeepIV", "fit", 1.0, "array"),
    ("DeepIV", "effect", 1.0, "array"),
    ("Deconfounder", "fit", 0.25, "array"),
    ("Deconfounder", "effect", 1.0, "array"),
]


def _estimator(name):
    from causalnn import CEVAE, CFRNet, DeepIV, Deconfounder, Dragonnet, TARNet
    small = dict(max_epochs=1, batch_size=8192, device="cpu", random_state=0,
                 patience=None)
    layers = dict(representation_layers=(32,), head_layers=(16,))
    return {"TARNet": lambda: TARNet(**layers, **small),
            "CFR-wasserstein": lambda: CFRNet(ipm="wasserstein", **layers, **small),
            "Dragonnet": lambda: Dragonnet(**layers, **small),
            "TARNet x10 bootstrap": lambda: TARNet(n_members=10, bootstrap=True,
                                                   **layers, **small),
            "CEVAE": lambda: CEVAE(hidden_layers=(16,), latent_dim=5, n_samples=5,
                                   **small),
            "DeepIV": lambda: DeepIV(first_stage_layers=(32,), outcome_layers=(32,),
                                     n_components=3, **small),
            # the linear outcome model: its causes, not the networks, are the data
            "Deconfounder": lambda: Deconfounder(factor_model="ppca", n_factors=3,
                                                 predictive_check=False,
                                                 random_state=0)}[name]()


def _resident_mb(key):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {key}")


def measure(name, phase, n, d, kind):
    """Run one case in this process; return the peak in MB above the start."""
    import warnings

    import numpy as np
    import torch
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d))
    t = (X[:, 0] + rng.standard_normal(n) > 0).astype(float)
    y = X[:, 1] + t * (1 + X[:, 2]) + rng.standard_normal(n)
    extra = {}
    if name == "DeepIV":  # a continuous treatment moved by one instrument
        z = rng.standard_normal(n)
        t = z + X[:, 0] + rng.standard_normal(n)
        extra = {"instrument": z}
    elif name == "Deconfounder":  # the d causes, and two covariates beside them
        t, X = X, np.ascontiguousarray(X[:, :2])
    if kind == "float32 array":
        X = X.astype(np.float32)
    elif kind == "F-ordered float32 array":
        X = np.asfortranarray(X, dtype=np.float32)
    elif kind in ("DataFrame", "float32 DataFrame"):
        import pandas as pd
        X = pd.DataFrame(X if kind == "DataFrame" else X.astype(np.float32),
                         columns=[f"x{j}" for j in range(d)], copy=False)

    def head(rows):
        return X.iloc[:rows] if kind.endswith("DataFrame") else X[:rows]

    def fit(rows=n):  # the first rows are views: no copy of the table
        return _estimator(name).fit(head(rows), y[:rows], treatment=t[:rows],
                                    **{k: v[:rows] for k, v in extra.items()})

    warm = fit(300)
    warm.effect(head(300))
    del warm
    if phase == "fit":
        call = fit
    else:
        # fitted on the first 4096 rows; the call runs on all n
        est = fit(4096)
        call = {"effect": lambda: est.effect(X),
                "effect_interval": lambda: est.effect_interval(X),
                "ate_inference cv=5": lambda: est.ate_inference(X, y, treatment=t, cv=5),
                }[phase]
    import gc
    gc.collect()
    before = _resident_mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # the peak (VmHWM) starts again from the resident size
    call()
    return _resident_mb("VmHWM") - before


def _run_case(tree, name, phase, n, d, kind):
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, __file__, "--case", name, phase, str(n), str(d),
                          kind],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=float, default=8e5)
    parser.add_argument("--columns", type=int, default=25)
    parser.add_argument("--compare", metavar="DIR", default=None)
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--estimators", nargs="+", metavar="NAME",
                        help="only the cases of these estimators (default: all)")
    parser.add_argument("--force", action="store_true",
                        help="replace the results file if it exists")
    parser.add_argument("--case", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        name, phase, n, d, kind = args.case
        print(json.dumps({"peak_mb": measure(name, phase, int(n), int(d), kind)}))
        return
    import torch

    from causalnn.benchmark import machine_description, refuse_existing, save_markdown
    out = Path(args.out) / "memory_cpu.md"
    refuse_existing([out], args.force)
    this_tree = HERE.parent
    trees = [("this tree", this_tree)]
    if args.compare:
        other = Path(args.compare).resolve()
        commit = subprocess.run(["git", "-C", str(other), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        trees.insert(0, (f"commit {commit}" if commit else f"`{other}`", other))
    command = "python benchmarks/memory.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    lines = ["# Peak host memory on a large table", "",
             f"Machine: {machine_description(torch.device('cpu'), threads=1)}.", "",
             f"Command: `OMP_NUM_THREADS=1 {command.strip()}`", "",
             f"X: n x {args.columns} float64 (a C-order array, or a DataFrame over it; "
             "'float32 array': the same values as a C-order float32 array, "
             "'F-ordered float32 array' and 'float32 DataFrame' likewise); each "
             "entry is "
             "the peak resident "
             "memory during the call less that just before it, in multiples of X's "
             "float64 size (n x d x 8 bytes), each case in a fresh process after a "
             "warm-up. Networks (32,)/(16,), batch 8192, one epoch. DeepIV: one "
             "instrument, a continuous treatment, three mixture components. "
             "Deconfounder: the table is its d causes, beside two covariates; PPCA "
             "with 3 factors, no predictive check, the linear outcome model; its "
             "effect sets every cause to 0 and to 1.", "",
             "| estimator | call | X | rows | " + " | ".join(label for label, _ in trees)
             + " |", "|---|---|---|---|" + "---|" * len(trees)]
    for name, phase, share, kind in CASES:
        if args.estimators and name not in args.estimators:
            continue
        n = int(args.rows * share)
        size_mb = n * args.columns * 8 / 2**20
        cells = []
        for _, tree in trees:
            peak = _run_case(tree, name, phase, n, args.columns, kind)
            cells.append(f"{peak / size_mb:.2f}")
        lines.append(f"| {name} | {phase} | {kind} | {n:,} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    save_markdown(lines, out)


if __name__ == "__main__":
    main()
