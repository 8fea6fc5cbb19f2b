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

Usage::

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/deepiv_demand.py [--full]
        [--n 10000 ...] [--rho 0.5 0.9 ...] [--seeds 3]
"""
import argparse
import time
from pathlib import Path

import numpy as np
import torch

from causalnn import DeepIV
from causalnn.datasets import demand_test_grid, make_demand
from causalnn.engine import Trainer, make_generator
from causalnn.nets import MLP, init_weights
from causalnn.benchmark import (machine_description, save_markdown,
                                 two_stage_least_squares)

RESULTS = Path(__file__).resolve().parent / "results"


def blind_network(data, grid, seed, reference):
    """DeepIV's outcome network and training settings, fitted to y on (p, x) directly."""
    inputs = np.column_stack([data.treatment, data.X])
    mean, scale = inputs.mean(0), np.where(inputs.std(0) > 0, inputs.std(0), 1.0)
    y_mean, y_scale = data.y.mean(), data.y.std()
    generator = make_generator(seed)
    net = init_weights(MLP(inputs.shape[1], reference.outcome_layers, out_features=1,
                           activation=reference.activation), generator, scale=1.0).double()

    def loss(module, batch):
        return {"loss": ((module(batch["x"])[:, 0] - batch["y"]) ** 2).mean()}

    trainer = Trainer(loss_fn=loss, optimizer=reference.optimizer,
                      learning_rate=reference.learning_rate,
                      weight_decay=reference.weight_decay, batch_size=reference.batch_size,
                      max_epochs=reference.max_epochs,
                      validation_fraction=reference.validation_fraction,
                      patience=reference.patience, generator=generator)
    trainer.fit(net, {"x": torch.tensor((inputs - mean) / scale),
                      "y": torch.tensor((data.y - y_mean) / y_scale)})
    grid_inputs = torch.tensor((np.column_stack([grid.treatment, grid.X]) - mean) / scale)
    with torch.no_grad():
        return net(grid_inputs)[:, 0].numpy() * y_scale + y_mean


def run(sizes, rhos, seeds, params=None):
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
                predictions = {
                    "DeepIV": est.predict_outcome(grid.X, grid.treatment),
                    "2SLS-poly3": two_stage_least_squares(data, grid),
                }
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
    lines = ["| n | rho | " + " | ".join(METHODS)
             + " | DeepIV / blind | DeepIV fit s | blind fit s |",
             "|---|---|" + "---|" * (len(METHODS) + 3)]
    keys = sorted({(r["n"], r["rho"]) for r in rows})
    for n, rho in keys:
        cell = [r for r in rows if r["n"] == n and r["rho"] == rho]
        stats = {m: np.array([r[m] for r in cell]) for m in METHODS}
        text = [f"{stats[m].mean():.3f} ± {stats[m].std():.3f}" for m in METHODS]
        ratio = stats["DeepIV"].mean() / stats["blind-NN"].mean()
        lines.append(f"| {n} | {rho} | " + " | ".join(text) + f" | {ratio:.2f} | "
                     f"{np.mean([r['DeepIV_s'] for r in cell]):.1f} | "
                     f"{np.mean([r['blind_s'] for r in cell]):.1f} |")
    header = (f"DeepIV demand benchmark: counterfactual MSE on the 2800-point test grid "
              f"(mean ± sd over {seeds} seeds; standardised h scale). Machine: "
              f"{machine_description()}; the cores are shared with other jobs, so fit "
              f"times are contended: compare them within a run only.\n")
    return header + "\n" + "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[10000])
    parser.add_argument("--rho", type=float, nargs="+", default=[0.5, 0.9])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--full", action="store_true",
                        help="n in {1000, 5000, 10000} x rho in {0.1, 0.5, 0.9}")
    parser.add_argument("--patience", type=int, default=None,
                        help="DeepIV's (and the baseline networks') patience; default: "
                             "DeepIV's default")
    parser.add_argument("--out", default=None, help="file name under benchmarks/results")
    args = parser.parse_args()
    sizes, rhos = ((1000, 5000, 10000), (0.1, 0.5, 0.9)) if args.full else (args.n, args.rho)
    params = {} if args.patience is None else {"patience": args.patience}
    rows = run(sizes, rhos, args.seeds, params)
    table = summarise(rows, args.seeds)
    if params:
        table += f"\nDeepIV parameters beside the defaults: {params}\n"
    print(table)
    name = args.out or ("deepiv_demand_full.md" if args.full else "deepiv_demand.md")
    save_markdown(table, RESULTS / name)


if __name__ == "__main__":
    main()
