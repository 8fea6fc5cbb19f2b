"""Choose the estimators' default training settings on *validation* data only.

For every candidate configuration, each of the 10 IHDP replications is fitted on its
63/27 train/validation rows (the estimator's own stratified 30% validation split) and
scored by the factual loss on that validation split at the restored (best) epoch, on the
standardised outcome scale. The configuration with the lowest mean validation loss wins.
Neither the test rows nor the true effects are used for the choice; the last columns
(out-of-sample sqrt(PEHE) and |ATE error|) are printed for information only.

An ensemble (``n_members`` > 1) is scored by its members' mean prediction on the same
validation rows (every fit from one ``random_state`` holds out the same rows, whatever
its size). ``--budget`` restricts the choice to configurations whose mean fit time per
replication (the "fit s" column, this machine) is within the budget.

Run: python benchmarks/tune_defaults.py [--models tarnet cfr dragonnet tarnet-scope
     dragonnet-scope tarnet-size tarnet-ensemble] [--max-epochs 1000] [--budget S]
     [--threads N] [--output tune_defaults.md] [--force]
Writes benchmarks/results/<--output>; an existing file is refused before any fit unless
``--force``.
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
from causalnn.benchmark import refuse_existing, save_markdown
from causalnn.datasets import load_ihdp
from causalnn.engine import make_generator, spawn_generator, stratified_split
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
    # ensembles of smaller networks against one network of the papers' size, under the
    # time budget of one IHDP fit (--budget); scored by the ensemble's validation loss
    "tarnet-ensemble": (TARNet, [{"n_members": m, "representation_layers": r,
                                  "head_layers": h}
                                 for m in (1, 3, 5)
                                 for r, h in (((200, 200, 200), (100, 100, 100)),
                                              ((100, 100), (100,)),
                                              ((64, 64), (64,)))]),
}


def validation_rows(est, treatment):
    """The rows ``est``'s fit held out: its split stream is spawned from
    ``random_state``'s generator before the weights (see ``spawn_generator``)."""
    split = spawn_generator(make_generator(est.random_state))
    _, valid = stratified_split(len(treatment), est.validation_fraction, split,
                                torch.as_tensor(treatment))
    return valid.numpy()


def validation_factual_loss(est, X=None, y=None, treatment=None):
    """Factual loss on the validation rows at the restored epoch, on the standardised
    outcome scale and with the fit's row weights. An ensemble is scored by its members'
    mean prediction (what ``effect`` averages), recomputed from ``X, y, treatment``;
    one network's loss is read from its history."""
    if getattr(est, "n_members_", 1) == 1 or X is None:
        record = est.history_[np.min(est.best_epoch_) - 1]
        return record.get("valid_factual", record["valid_loss"])
    rows = validation_rows(est, treatment)
    t = treatment[rows]
    u = est.treated_fraction_
    weight = (t / (2 * u) + (1 - t) / (2 * (1 - u)) if est.reweight_sample
              else np.ones_like(t))
    residual = (y[rows] - est.predict_outcome(X[rows], t)) / est.y_scale_
    return float(np.mean(weight * residual ** 2))


def evaluate(cls, params, replications, max_epochs=1000):
    rows = []
    for r in replications:
        data = load_ihdp(r)
        fit_idx = np.concatenate([data.train_index, data.valid_index])
        test = data.test_index
        est = cls(random_state=r, max_epochs=max_epochs, **params)
        X, y, t = data.X[fit_idx], data.y[fit_idx], data.treatment[fit_idx]
        start = time.perf_counter()
        est.fit(X, y, treatment=t)
        seconds = time.perf_counter() - start
        rows.append((validation_factual_loss(est, X, y, t),
                     pehe(data.ite[test], est.effect(data.X[test])),
                     ate_error(data.ite[test], est.ate(data.X[test])), seconds))
    return np.mean(rows, axis=0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(CANDIDATES))
    parser.add_argument("--replications", type=int, default=10)
    parser.add_argument("--output", default="tune_defaults.md",
                        help="file name under benchmarks/results/")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (1 when sharing the machine)")
    parser.add_argument("--max-epochs", type=int, default=1000)
    parser.add_argument("--budget", type=float, default=None,
                        help="select only among configurations whose mean fit time "
                             "per replication is at most this many seconds")
    parser.add_argument("--force", action="store_true",
                        help="replace the results file if it exists")
    args = parser.parse_args(argv)
    out = Path(__file__).parent / "results" / args.output
    refuse_existing([out], args.force)
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    lines = [f"# Default selection by validation factual loss ({platform.node()}, "
             f"{platform.processor() or platform.machine()}, CPU)", "",
             "| model | configuration | valid loss (selects) | oos sqrt(PEHE) (info) "
             "| oos ATE err (info) | fit s |", "|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for name in args.models:
        cls, candidates = CANDIDATES[name]
        scored = []
        for params in candidates:
            loss, p, a, seconds = evaluate(cls, params, range(1, args.replications + 1),
                                           args.max_epochs)
            if args.budget is None or seconds <= args.budget:
                scored.append((loss, params))
            line = f"| {name} | {params} | {loss:.4f} | {p:.3f} | {a:.3f} | {seconds:.2f} |"
            lines.append(line)
            print(line, flush=True)
        best = min(scored, key=lambda s: s[0])
        budget = "" if args.budget is None else f" within {args.budget:g} s"
        lines.append(f"| {name} | **selected{budget}: {best[1]}** | {best[0]:.4f} | | | |")
        print(lines[-1], flush=True)
        if name == "cfr":  # also the best alpha within each IPM
            for ipm in ("wasserstein", "mmd_rbf", "mmd_linear"):
                b = min((s for s in scored if s[1]["ipm"] == ipm), key=lambda s: s[0])
                lines.append(f"| cfr | best for {ipm}: {b[1]} | {b[0]:.4f} | | | |")
                print(lines[-1], flush=True)
    save_markdown(lines, out)


if __name__ == "__main__":
    main()
