"""The member axis: many IHDP-sized TARNets trained as one batched fit, against the same
networks fitted one after another in the same run.

Three measurements (pick with --part; all by default):

* ``impl``: one training step (forward, backward, Adam) of ``--members`` TARNets as
  stacked weights with batched products (``causalnn.nets.MemberLinear``, what causalnn
  uses) against ``torch.func.functional_call`` + ``torch.vmap`` over stacked copies of
  the same network.
* ``batched``: ``--datasets`` IHDP files x ``--seeds`` seeds. Batched: one
  ``TARNet(n_members=seeds).fit_many`` over the files. Sequential: single-member fits of
  the same files and seeds, one after another; ``--sequential-fits`` caps how many are
  run (their mean time is multiplied up to the full count, and said so). Accuracy:
  out-of-sample sqrt(PEHE) of every member / every sequential fit, mean +- standard
  error. All files use replication 1's 90/10 split (fit_many needs the same rows; the
  IHDP files share X and the treatment).
* ``seeds``: standard deviation of TARNet's ATE over ``--n-seeds`` seeds on one IHDP
  replication, for each ``n_members`` in ``--seed-members``.
* ``default``: accuracy against time of ``n_members`` in ``--grid`` on
  ``--default-datasets`` files (each replication's own split), the measurement behind
  the default.

Run (CPU):  python benchmarks/members.py --device cpu
Run (GPU):  python benchmarks/members.py --device cuda --datasets 10 --seeds 10
            --sequential-fits 20 --part impl batched
Writes benchmarks/results/members_<device>.md (``--out DIR`` for another folder); an
existing file is refused before any fit unless ``--force``.
"""
import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import causalnn
from causalnn import TARNet
from causalnn.datasets import load_ihdp
from causalnn.metrics import pehe
from causalnn.nets import RepresentationNet, init_weights
from causalnn.benchmark import machine_description, refuse_existing, save_markdown


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def mean_se(values):
    values = np.asarray(values, dtype=float)
    se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    return values.mean(), se


# ---- impl: stacked weights vs vmap ---------------------------------------------------
def time_steps(step, device, n_steps):
    for _ in range(3):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(n_steps):
        step()
    sync(device)
    return (time.perf_counter() - start) / n_steps


def part_impl(args, device):
    M, batch, d = args.members, 64, 25
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, d, generator=g).to(device)
    y = torch.randn(batch, generator=g).to(device)
    t = (torch.rand(batch, generator=g) < 0.2).to(device)
    layers = dict(representation_layers=(200, 200, 200), head_layers=(100, 100, 100),
                  normalize_representation=True)

    stacked = init_weights(RepresentationNet(d, n_members=M, **layers), g).to(device)
    opt_s = torch.optim.Adam(stacked.parameters(), lr=1e-3)

    def step_stacked():
        out = stacked(x)
        eta = torch.where(t, out.outcome[..., 1], out.outcome[..., 0])
        loss = (eta - y).pow(2).mean(dim=1).sum()
        opt_s.zero_grad(set_to_none=True)
        loss.backward()
        opt_s.step()

    nets = [init_weights(RepresentationNet(d, **layers), g).to(device) for _ in range(M)]
    params, buffers = torch.func.stack_module_state(nets)
    params = {k: v.detach().requires_grad_() for k, v in params.items()}
    base = RepresentationNet(d, **layers).to("meta")
    opt_v = torch.optim.Adam(params.values(), lr=1e-3)

    def one(p, b, xx):
        return torch.func.functional_call(base, (p, b), (xx,)).outcome

    def step_vmap():
        outcome = torch.vmap(one, in_dims=(0, 0, None))(params, buffers, x)
        eta = torch.where(t, outcome[..., 1], outcome[..., 0])
        loss = (eta - y).pow(2).mean(dim=1).sum()
        opt_v.zero_grad(set_to_none=True)
        loss.backward()
        opt_v.step()

    single = nets[0]
    opt_1 = torch.optim.Adam(single.parameters(), lr=1e-3)

    def step_single():
        out = single(x)
        eta = torch.where(t, out.outcome[:, 1], out.outcome[:, 0])
        loss = (eta - y).pow(2).mean()
        opt_1.zero_grad(set_to_none=True)
        loss.backward()
        opt_1.step()

    n = args.impl_steps
    ms = {name: 1e3 * time_steps(fn, device, n) for name, fn in
          [("stacked", step_stacked), ("vmap", step_vmap), ("single", step_single)]}
    return [
        f"### One training step of {M} TARNets (batch {batch}, 25 features), "
        f"mean of {n} steps", "",
        "| implementation | ms / step | vs stacked | vs {M} single steps |".replace(
            "{M}", str(M)),
        "|---|---|---|---|",
        f"| stacked weights, batched products (MemberLinear; used) | {ms['stacked']:.2f} "
        f"| 1.00 | {M * ms['single'] / ms['stacked']:.2f}x faster |",
        f"| torch.func.functional_call + vmap | {ms['vmap']:.2f} "
        f"| {ms['vmap'] / ms['stacked']:.2f} | {M * ms['single'] / ms['vmap']:.2f}x faster |",
        f"| one network (for scale) | {ms['single']:.2f} | | |", ""]


# ---- batched vs sequential -----------------------------------------------------------
def part_batched(args, device):
    files = [load_ihdp(r) for r in range(1, args.datasets + 1)]
    split = files[0]
    fit_rows = np.concatenate([split.train_index, split.valid_index])
    test = split.test_index
    X, t = split.X, split.treatment
    Y = np.stack([f.y[fit_rows] for f in files])
    kw = dict(device=device, max_epochs=args.max_epochs)

    sync(device)
    start = time.perf_counter()
    ests = TARNet(n_members=args.seeds, random_state=0, **kw).fit_many(
        X[fit_rows], Y, treatment=t[fit_rows])
    sync(device)
    batched_s = time.perf_counter() - start
    batched_pehe, ensemble_pehe = [], []
    for f, est in zip(files, ests):
        taus = est.effect(X[test], members=True)
        batched_pehe += [pehe(f.ite[test], tau) for tau in taus]
        ensemble_pehe.append(pehe(f.ite[test], taus.mean(axis=0)))

    total = args.datasets * args.seeds
    jobs = [(k, s) for s in range(args.seeds) for k in range(args.datasets)]
    jobs = jobs[:args.sequential_fits or total]
    seq_pehe, seq_times = [], []
    for k, seed in jobs:
        sync(device)
        start = time.perf_counter()
        est = TARNet(random_state=1000 + seed, **kw).fit(
            X[fit_rows], files[k].y[fit_rows], treatment=t[fit_rows])
        sync(device)
        seq_times.append(time.perf_counter() - start)
        seq_pehe.append(pehe(files[k].ite[test], est.effect(X[test])))
    seq_s = float(np.mean(seq_times)) * total
    extrapolated = len(jobs) < total
    b_mean, b_se = mean_se(batched_pehe)
    s_mean, s_se = mean_se(seq_pehe)
    e_mean, e_se = mean_se(ensemble_pehe)
    note = (f" (mean of {len(jobs)} fits x {total})" if extrapolated else "")
    return [
        f"### {total} IHDP TARNets: {args.datasets} files x {args.seeds} seeds", "",
        "| fit | seconds | speed-up | out-of-sample sqrt(PEHE) per network, mean ± SE |",
        "|---|---|---|---|",
        f"| batched: one fit_many, n_members={args.seeds} | {batched_s:.1f} "
        f"| {seq_s / batched_s:.1f}x | {b_mean:.3f} ± {b_se:.3f} (n={len(batched_pehe)}) |",
        f"| sequential: {total} single fits{note} | {seq_s:.1f} | 1.0x "
        f"| {s_mean:.3f} ± {s_se:.3f} (n={len(seq_pehe)}) |",
        f"| ensemble of each file's {args.seeds} members (batched) | | "
        f"| {e_mean:.3f} ± {e_se:.3f} (n={len(ensemble_pehe)}) |", "",
        f"Per-network sqrt(PEHE) differ by {abs(b_mean - s_mean):.3f}; one standard error "
        f"of the difference is {np.hypot(b_se, s_se):.3f}.", ""]


# ---- default: accuracy against time ------------------------------------------------------
def part_default(args, device):
    lines = [f"### n_members: accuracy against time, {args.default_datasets} IHDP "
             "replications "
             "(own 90/10 splits), TARNet defaults otherwise", "",
             "| n_members | out-of-sample sqrt(PEHE) mean ± SE | median | worst "
             "| best valid loss (mean) | fit seconds (mean) | epochs (mean) |",
             "|---|---|---|---|---|---|---|"]
    for M in args.grid:
        scores, seconds, valid, epochs = [], [], [], []
        for r in range(1, args.default_datasets + 1):
            f = load_ihdp(r)
            rows = np.concatenate([f.train_index, f.valid_index])
            sync(device)
            start = time.perf_counter()
            est = TARNet(n_members=M, random_state=r, device=device).fit(
                f.X[rows], f.y[rows], treatment=f.treatment[rows])
            sync(device)
            seconds.append(time.perf_counter() - start)
            scores.append(pehe(f.ite[f.test_index], est.effect(f.X[f.test_index])))
            # each member's validation loss at its restored epoch, averaged: the
            # history's valid_loss is the mean over the members still training (those
            # that stopped have left the batched fit and record NaN)
            best = np.atleast_1d(est.best_epoch_)
            valid.append(float(np.mean([est.history_[b - 1]["valid_member_loss"][m]
                                        for m, b in enumerate(best)])))
            epochs.append(est.n_iter_)
            print(f"  n_members={M} rep {r}: pehe_out {scores[-1]:.3f} "
                  f"{seconds[-1]:.1f}s", flush=True)
        m, se = mean_se(scores)
        lines.append(f"| {M} | {m:.3f} ± {se:.3f} | {np.median(scores):.3f} "
                     f"| {np.max(scores):.3f} | {np.mean(valid):.4f} "
                     f"| {np.mean(seconds):.2f} | {np.mean(epochs):.0f} |")
    return lines + [""]


# ---- seeds: stability of the ATE ---------------------------------------------------------
def part_seeds(args, device):
    f = load_ihdp(args.seed_replication)
    rows = np.concatenate([f.train_index, f.valid_index])
    lines = [f"### Seed stability: TARNet ATE over {args.n_seeds} seeds, IHDP replication "
             f"{args.seed_replication} (true ATE {f.ite.mean():.3f})", "",
             "| n_members | std of ATE over seeds | mean |ATE error| "
             "| out-of-sample sqrt(PEHE) mean (std) | fit seconds (mean) |",
             "|---|---|---|---|---|"]
    for M in args.seed_members:
        ates, scores, seconds = [], [], []
        for seed in range(args.n_seeds):
            sync(device)
            start = time.perf_counter()
            est = TARNet(n_members=M, random_state=seed, device=device).fit(
                f.X[rows], f.y[rows], treatment=f.treatment[rows])
            sync(device)
            seconds.append(time.perf_counter() - start)
            ates.append(est.ate(f.X))
            scores.append(pehe(f.ite[f.test_index], est.effect(f.X[f.test_index])))
        lines.append(f"| {M} | {np.std(ates, ddof=1):.4f} "
                     f"| {np.mean(np.abs(np.array(ates) - f.ite.mean())):.4f} "
                     f"| {np.mean(scores):.3f} ({np.std(scores, ddof=1):.3f}) "
                     f"| {np.mean(seconds):.2f} |")
        print(lines[-1], flush=True)
    return lines + [""]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--part", nargs="+", default=["impl", "batched", "seeds", "default"],
                        choices=["impl", "batched", "seeds", "default"])
    parser.add_argument("--members", type=int, default=10, help="impl: networks")
    parser.add_argument("--impl-steps", type=int, default=50)
    parser.add_argument("--datasets", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--sequential-fits", type=int, default=None,
                        help="run at most this many sequential fits (time extrapolated)")
    parser.add_argument("--max-epochs", type=int, default=300)
    parser.add_argument("--grid", type=int, nargs="+", default=[1, 5, 10],
                        help="default: the n_members compared")
    parser.add_argument("--default-datasets", type=int, default=10,
                        help="default: IHDP replications")
    parser.add_argument("--n-seeds", type=int, default=10, help="seeds: fits per setting")
    parser.add_argument("--seed-members", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--seed-replication", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--force", action="store_true",
                        help="replace the results file if it exists")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=causalnn.exceptions.ConvergenceWarning)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = causalnn.engine.resolve_device(args.device)
    out = Path(args.out) / f"members_{device.type}.md"
    refuse_existing([out], args.force)

    lines = [f"# Member axis benchmark ({device.type})", "",
             f"Machine: {machine_description(device)}.", "",
             "Command: `python benchmarks/members.py "
             + " ".join(argv if argv is not None else __import__("sys").argv[1:]) + "`", ""]
    parts = {"impl": part_impl, "batched": part_batched, "default": part_default,
             "seeds": part_seeds}
    for name in args.part:
        start = time.perf_counter()
        part = parts[name](args, device)
        part += [f"({name}: {time.perf_counter() - start:.0f} s wall)", ""]
        lines += part
        print("\n".join(part), flush=True)
    print("\n".join(lines))
    save_markdown(lines, out)


if __name__ == "__main__":
    main()
