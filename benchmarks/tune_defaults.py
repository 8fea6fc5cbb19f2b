"""Choose the estimators' default training settings on *validation* data only.

For every candidate configuration, each of the 10 IHDP replications is fitted on its
63/27 train/validation rows (the estimator's own stratified 30% validation split) and
scored by the factual loss on that validation split at the restored (best) epoch, on the
standardised outcome scale. The configuration with the lowest mean validation loss wins.
Neither the test rows nor the true effects are used for the choice; the last columns
(out-of-sample sqrt(PEHE) and |ATE error|) are printed for information only.

Run: python benchmarks/tune_defaults.py [--models tarnet cfr dragonnet tarnet-scope
     dragonnet-scope] [--output results/tune_defaults.md]
"""
import argparse
import itertools
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from causalnn import CFRNet, Dragonnet, TARNet
from causalnn.datasets import load_ihdp
from causalnn.metrics import ate_error, pehe

TRAINING_GRID = {"learning_rate": [1e-3, 3e-4], "weight_decay": [1e-4, 1e-3],
                 "batch_size": [64, 128]}
CANDIDATES = {
    "tarnet": (TARNet, [dict(zip(TRAINING_GRID, v), normalize_representation=norm)
                        for norm in (True, False)
                        for v in itertools.product(*TRAINING_GRID.values())]),
    "dragonnet": (Dragonnet, [dict(zip(TRAINING_GRID, v))
                              for v in itertools.product(*TRAINING_GRID.values())]),
    "cfr": (CFRNet, [{"ipm": ipm, "alpha": a}
                     for ipm in ("wasserstein", "mmd_rbf", "mmd_linear")
                     for a in (0.01, 0.1, 1.0)]),
    # which weight matrices weight_decay penalises (the papers: the outcome heads only)
    "tarnet-scope": (TARNet, [{"weight_decay_scope": s} for s in ("all", "heads")]),
    "dragonnet-scope": (Dragonnet, [{"weight_decay_scope": s} for s in ("all", "heads")]),
    # network sizes (the defaults are the papers' 200-wide representation, 100-wide heads)
    "tarnet-size": (TARNet, [{"representation_layers": r, "head_layers": h}
                             for r in ((200, 200, 200), (200, 200), (100, 100))
                             for h in ((100, 100, 100), (100,))]),
}


def validation_factual_loss(est):
    record = est.history_[est.best_epoch_ - 1]
    return record.get("valid_factual", record["valid_loss"])


def evaluate(cls, params, replications):
    rows = []
    for r in replications:
        data = load_ihdp(r)
        fit_idx = np.concatenate([data.train_index, data.valid_index])
        test = data.test_index
        est = cls(random_state=r, max_epochs=1000, **params)
        est.fit(data.X[fit_idx], data.y[fit_idx], treatment=data.treatment[fit_idx])
        rows.append((validation_factual_loss(est),
                     pehe(data.ite[test], est.effect(data.X[test])),
                     ate_error(data.ite[test], est.ate(data.X[test]))))
    return np.mean(rows, axis=0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(CANDIDATES))
    parser.add_argument("--replications", type=int, default=10)
    parser.add_argument("--output", default="tune_defaults.md",
                        help="file name under benchmarks/results/")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (1 when sharing the machine)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    lines = [f"# Default selection by validation factual loss ({platform.node()}, "
             f"{platform.processor() or platform.machine()}, CPU)", "",
             "| model | configuration | valid loss (selects) | oos sqrt(PEHE) (info) "
             "| oos ATE err (info) |", "|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for name in args.models:
        cls, candidates = CANDIDATES[name]
        scored = []
        for params in candidates:
            start = time.perf_counter()
            loss, p, a = evaluate(cls, params, range(1, args.replications + 1))
            scored.append((loss, params))
            line = (f"| {name} | {params} | {loss:.4f} | {p:.3f} | {a:.3f} |")
            lines.append(line)
            print(line, f"({time.perf_counter() - start:.0f} s)", flush=True)
        best = min(scored, key=lambda s: s[0])
        lines.append(f"| {name} | **selected: {best[1]}** | {best[0]:.4f} | | |")
        print(lines[-1], flush=True)
        if name == "cfr":  # also the best alpha within each IPM
            for ipm in ("wasserstein", "mmd_rbf", "mmd_linear"):
                b = min((s for s in scored if s[1]["ipm"] == ipm), key=lambda s: s[0])
                lines.append(f"| cfr | best for {ipm}: {b[1]} | {b[0]:.4f} | | |")
                print(lines[-1], flush=True)
    out = Path(__file__).parent / "results" / args.output
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
