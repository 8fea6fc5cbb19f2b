"""DeepIV on the airline-demand simulation of Hartford et al. (2017).

Counterfactual MSE of the structural function h on causalnn's fixed test grid (20 prices x
20 times x 7 customer types, scored against the noise-free standardised h), for:

- ``DeepIV``: causalnn's DeepIV with its defaults;
- ``2SLS-poly3``: two-stage least squares with cubic polynomial features of (p, t, s)
  instrumented by cubic features of (z, t, s);
- ``blind-NN``: the same outcome network as DeepIV's h, regressing y on (p, x), which
  ignores the instrument (biased under confounding);
- ``floor-NN``: that network fitted on unconfounded data (rho = 0) of the same size and
  seed: what h's architecture achieves without confounding.

All rows are measured in the same run. The default grid is the issue's "must show" rows
(n = 10000, rho in {0.5, 0.9}, 3 seeds); ``--full`` runs n in {1000, 5000, 10000} x
rho in {0.1, 0.5, 0.9}.

Beside the test-grid error (which needs the true h), DeepIV's row reports the paper's
model-selection criterion, ``DeepIV.causal_validation_loss`` on 10000 held-out rows of
the same simulation (seed ``10000 + seed``, never trained on): the figure a user without
the true h would choose settings by. ``--param KEY=VALUE`` sets a DeepIV parameter (the
value read as a Python literal, else as a string: ``--param dropout=auto``).

Usage::

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/deepiv_demand.py [--full]
        [--n 10000 ...] [--rho 0.5 0.9 ...] [--seeds 3] [--param KEY=VALUE ...]
        [--deepiv-only] [--out NAME_OR_PATH] [--force]

Writes benchmarks/results/deepiv_demand.md (``deepiv_demand_full.md`` with ``--full``;
``--out`` names another file); an existing file is refused before any fit unless
``--force``.
"""
import argparse
import ast
import time
from pathlib import Path

import numpy as np
import torch

from causalnn import DeepIV
from causalnn.datasets import demand_test_grid, make_demand
from causalnn.engine import Trainer, make_generator
from causalnn.nets import MLP, init_weights
from causalnn.nets.mlp import dropout_masks_from
from causalnn.benchmark import (machine_description, refuse_existing, save_markdown,
                                 two_stage_least_squares)

RESULTS = Path(__file__).resolve().parent / "results"
# held-out rows for the causal validation loss, and their seeds' offset from the fit's
HELD_OUT_ROWS = 10000
HELD_OUT_SEED = 10000


def blind_network(data, grid, seed, reference):
    """DeepIV's outcome network (with its dropout) and training settings, fitted to y on
    (p, x) directly."""
    inputs = np.column_stack([data.treatment, data.X])
    mean, scale = inputs.mean(0), np.where(inputs.std(0) > 0, inputs.std(0), 1.0)
    y_mean, y_scale = data.y.mean(), data.y.std()
    generator = make_generator(seed)
    net = init_weights(MLP(inputs.shape[1], reference.outcome_layers, out_features=1,
                           activation=reference.activation, dropout=reference.dropout_),
                       generator, scale=1.0).double()
    # masks from a stream of their own (seeded after the weights), so the seed fixes
    # them; without dropout nothing is drawn, and the baseline is the one of before
    masks = None if reference.dropout_ == 0 else torch.Generator().manual_seed(
        int(torch.randint(2 ** 62, (1,), generator=generator)))

    def loss(module, batch):
        return {"loss": ((module(batch["x"])[:, 0] - batch["y"]) ** 2).mean()}

    trainer = Trainer(loss_fn=loss, optimizer=reference.optimizer,
                      learning_rate=reference.learning_rate,
                      weight_decay=reference.weight_decay, batch_size=reference.batch_size,
                      max_epochs=reference.max_epochs,
                      validation_fraction=reference.validation_fraction,
                      patience=reference.patience, generator=generator)
    with dropout_masks_from(net, masks):
        trainer.fit(net, {"x": torch.tensor((inputs - mean) / scale),
                          "y": torch.tensor((data.y - y_mean) / y_scale)})
    grid_inputs = torch.tensor((np.column_stack([grid.treatment, grid.X]) - mean) / scale)
    with torch.no_grad():
        return net(grid_inputs)[:, 0].numpy() * y_scale + y_mean


def run(sizes, rhos, seeds, params=None, baselines=True):
    torch.set_num_threads(1)
    grid = demand_test_grid()
    rows = []
    for n in sizes:
        for rho in rhos:
            for seed in range(seeds):
                data = make_demand(n, rho=rho, random_state=seed)
                clean = make_demand(n, rho=0.0, random_state=seed)
                record = {"n": n, "rho": rho, "seed": seed}
                start = time.perf_counter()
                est = DeepIV(**(params or {}), random_state=seed).fit(
                    data.X, data.y, treatment=data.treatment, instrument=data.instrument)
                record["DeepIV_s"] = time.perf_counter() - start
                record["DeepIV_epochs"] = (f"{len(est.first_stage_history_)}+"
                                           f"{est.n_iter_}")
                held_out = make_demand(HELD_OUT_ROWS, rho=rho,
                                       random_state=HELD_OUT_SEED + seed)
                record["DeepIV_causal_val"] = est.causal_validation_loss(
                    held_out.X, held_out.y, held_out.instrument)
                predictions = {"DeepIV": est.predict_outcome(grid.X, grid.treatment)}
                if baselines:
                    predictions["2SLS-poly3"] = two_stage_least_squares(data, grid)
                    start = time.perf_counter()
                    predictions["blind-NN"] = blind_network(data, grid, seed, est)
                    record["blind_s"] = time.perf_counter() - start
                    predictions["floor-NN"] = blind_network(clean, grid, seed, est)
                for name, pred in predictions.items():
                    record[name] = float(np.mean((pred - grid.structural) ** 2))
                rows.append(record)
                print({k: round(v, 4) if isinstance(v, float) else v
                       for k, v in record.items()}, flush=True)
    return rows


METHODS = ["DeepIV", "2SLS-poly3", "blind-NN", "floor-NN"]


def summarise(rows, seeds):
    baselines = "blind-NN" in rows[0]
    methods = METHODS if baselines else METHODS[:1]
    lines = ["| n | rho | " + " | ".join(methods) + " | DeepIV causal val loss | "
             + ("DeepIV / blind | " if baselines else "") + "DeepIV fit s |"
             + (" blind fit s |" if baselines else ""),
             "|---|---|" + "---|" * (len(methods) + 2 + 2 * baselines)]
    keys = sorted({(r["n"], r["rho"]) for r in rows})
    for n, rho in keys:
        cell = [r for r in rows if r["n"] == n and r["rho"] == rho]
        stats = {m: np.array([r[m] for r in cell])
                 for m in methods + ["DeepIV_causal_val"]}
        text = [f"{stats[m].mean():.3f} ± {stats[m].std():.3f}"
                for m in methods + ["DeepIV_causal_val"]]
        line = f"| {n} | {rho} | " + " | ".join(text) + " | "
        if baselines:
            line += f"{stats['DeepIV'].mean() / stats['blind-NN'].mean():.2f} | "
        line += f"{np.mean([r['DeepIV_s'] for r in cell]):.1f} |"
        if baselines:
            line += f" {np.mean([r['blind_s'] for r in cell]):.1f} |"
        lines.append(line)
    header = (f"DeepIV demand benchmark: counterfactual MSE on the 2800-point test grid "
              f"(mean ± sd over {seeds} seeds; standardised h scale) and DeepIV's causal "
              f"validation loss on {HELD_OUT_ROWS} held-out rows (units of y). Machine: "
              f"{machine_description()}; the cores are shared with other jobs, so fit "
              f"times are contended: compare them within a run only.\n")
    return header + "\n" + "\n".join(lines) + "\n"


def parse_param(text):
    """``KEY=VALUE`` to ``(key, value)``, the value a Python literal or a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--param takes KEY=VALUE; got {text!r}.")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[10000])
    parser.add_argument("--rho", type=float, nargs="+", default=[0.5, 0.9])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--full", action="store_true",
                        help="n in {1000, 5000, 10000} x rho in {0.1, 0.5, 0.9}")
    parser.add_argument("--patience", type=int, default=None,
                        help="DeepIV's (and the baseline networks') patience; default: "
                             "DeepIV's default")
    parser.add_argument("--param", type=parse_param, action="append", default=[],
                        metavar="KEY=VALUE",
                        help="a DeepIV parameter (repeatable), e.g. dropout=auto")
    parser.add_argument("--deepiv-only", action="store_true",
                        help="skip 2SLS and the blind and floor networks")
    parser.add_argument("--out", default=None,
                        help="file name under benchmarks/results, or a path")
    parser.add_argument("--force", action="store_true",
                        help="replace the results file if it exists")
    args = parser.parse_args(argv)
    name = args.out or ("deepiv_demand_full.md" if args.full else "deepiv_demand.md")
    out = RESULTS / name
    refuse_existing([out], args.force)
    sizes, rhos = ((1000, 5000, 10000), (0.1, 0.5, 0.9)) if args.full else (args.n, args.rho)
    params = {} if args.patience is None else {"patience": args.patience}
    params.update(dict(args.param))
    rows = run(sizes, rhos, args.seeds, params, baselines=not args.deepiv_only)
    table = summarise(rows, args.seeds)
    if params:
        table += f"\nDeepIV parameters beside the defaults: {params}\n"
    print(table)
    save_markdown(table, out)


if __name__ == "__main__":
    main()
