"""IHDP benchmark: TARNet, CFR (each IPM) and Dragonnet (with and without targeted
regularisation) on the 10 shipped IHDP replications.

Protocol (Shalit et al. 2017): per replication the 63/27/10 split of
``causalnn.datasets.load_ihdp``; each estimator is fitted on the 90% train+validation rows
with its own stratified 30% validation split for early stopping (30% of 90% = 27%), and
scored in-sample (those 90%) and out-of-sample (the 10% test rows) by sqrt(PEHE) and
|ATE error|. A T-learner with scikit-learn gradient boosting is fitted in the same run as
the speed (and accuracy) baseline; fit times are reported as ratios to it.

Run:  python benchmarks/ihdp.py [--replications 10] [--device auto] [--threads 1]
      [--models ...] [--n-members M] [--fit-many] [--out DIR] [--force]
Writes benchmarks/results/ihdp_<device>[_members<M>][_fitmany].md (the table), the
matching .csv (per run) and .json (the run's machine, command, note and protocol);
if any of them exists the run is refused before any fit, unless ``--force``.
``--fit-many`` trains each neural model on all replications as one batched ``fit_many``
(the files share X and the treatment; all use replication 1's split, so the scores are
over one test set).

``--from-csv FILE`` fits nothing: it re-prints the table of an earlier run's CSV to
``<FILE stem>_reprint.md`` beside it (refused if that exists), with the machine, command
and protocol of the run that measured it (from ``<FILE stem>.json``; "unknown" without
it) and the replications counted from the CSV. The run's own files are left alone.
"""
import argparse
import csv
import json
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.ensemble import GradientBoostingRegressor

import causalnn
from causalnn import CFRNet, Dragonnet, TARNet
from causalnn.benchmark import machine_description, refuse_existing, save_markdown
from causalnn.engine import resolve_device, wait_for_gpu
from causalnn.datasets import load_ihdp
from causalnn.metrics import ate_error, pehe

# Published means over 1000 IHDP replications: (sqrt PEHE in, out, |ATE err| in, out),
# only the figures we have checked: out-of-sample sqrt(PEHE) of Shalit et al. 2017,
# Table 1, and the |ATE error| of Dragonnet + t-reg in Shi et al. 2019, Table 1.
PUBLISHED = {
    "TARNet": (None, 0.95, None, None),
    "CFR-wasserstein": (None, 0.76, None, None),
    "Dragonnet+treg (plug-in ATE)": (None, None, 0.14, 0.20),
}


class TLearnerGB:
    """Baseline: one gradient-boosting regressor per arm (sklearn defaults)."""

    def __init__(self, random_state):
        self.random_state = random_state

    def fit(self, X, y, treatment):
        self.models_ = [GradientBoostingRegressor(random_state=self.random_state).fit(
            X[treatment == arm], y[treatment == arm]) for arm in (0, 1)]
        self.device_ = "cpu"
        return self

    def effect(self, X):
        return self.models_[1].predict(X) - self.models_[0].predict(X)

    def ate(self, X):
        return float(np.mean(self.effect(X)))


def model_specs(device):
    return {
        "T-learner GB (baseline)": lambda r: TLearnerGB(random_state=r),
        "TARNet": lambda r: TARNet(random_state=r, device=device),
        # each IPM at the alpha its validation loss chose (tune_defaults.py)
        "CFR-mmd_linear": lambda r: CFRNet(ipm="mmd_linear", alpha=0.01, random_state=r,
                                           device=device),
        "CFR-wasserstein": lambda r: CFRNet(ipm="wasserstein", alpha=0.1, random_state=r,
                                            device=device),
        "CFR-mmd_rbf": lambda r: CFRNet(ipm="mmd_rbf", alpha=0.01, random_state=r,
                                        device=device),
        "Dragonnet": lambda r: Dragonnet(targeted_regularization=False, random_state=r,
                                         device=device),
        "Dragonnet+treg": lambda r: Dragonnet(random_state=r, device=device),
    }


def run_one(name, est, data):
    fit_rows = np.concatenate([data.train_index, data.valid_index])
    start = time.perf_counter()
    est.fit(data.X[fit_rows], data.y[fit_rows], treatment=data.treatment[fit_rows])
    wait_for_gpu()
    return score(name, est, data, fit_rows, data.test_index,
                 time.perf_counter() - start)


def run_many(name, est, files):
    """All replications as one batched fit (``fit_many``): the files share X and the
    treatment; they are fitted on replication 1's 90% rows and scored on its 10%."""
    split = files[0]
    fit_rows = np.concatenate([split.train_index, split.valid_index])
    Y = np.stack([f.y[fit_rows] for f in files])
    start = time.perf_counter()
    ests = est.fit_many(split.X[fit_rows], Y, treatment=split.treatment[fit_rows])
    wait_for_gpu()
    seconds = (time.perf_counter() - start) / len(files)  # per replication
    rows = []
    for f, fitted in zip(files, ests):
        rows += score(name, fitted, f, fit_rows, split.test_index, seconds)
    return rows


def score(name, est, data, fit_rows, test, seconds):
    rows = []
    ate_variants = [(name, {})]
    if name == "Dragonnet+treg":
        ate_variants = [("Dragonnet+treg (plug-in ATE)", {}),
                        ("Dragonnet+treg (targeted ATE)", {"targeted": True})]
    for label, ate_kw in ate_variants:
        rows.append({
            "model": label, "replication": data.replication, "fit_seconds": seconds,
            "device": str(est.device_),
            "pehe_in": pehe(data.ite[fit_rows], est.effect(data.X[fit_rows])),
            "pehe_out": pehe(data.ite[test], est.effect(data.X[test])),
            "ate_in": ate_error(data.ite[fit_rows], est.ate(data.X[fit_rows], **ate_kw)),
            "ate_out": ate_error(data.ite[test], est.ate(data.X[test], **ate_kw)),
            "epochs": getattr(est, "n_iter_", ""),
        })
    return rows


def summarise(records, models):
    def mean_se(values):
        values = np.asarray(values, dtype=float)
        return f"{values.mean():.2f} ± {values.std(ddof=1) / np.sqrt(len(values)):.2f}"

    baseline_seconds = [r["fit_seconds"] for r in records
                        if r["model"] == "T-learner GB (baseline)"]
    # a grid without the baseline (--models TARNet) has no ratio to report
    baseline = float(np.mean(baseline_seconds)) if baseline_seconds else None
    lines = [
        "| model | sqrt(PEHE) in | sqrt(PEHE) out | median out | |ATE err| in "
        "| |ATE err| out | median in / out | fit s (mean) | time / baseline | device "
        "| published (PEHE in/out, ATE in/out) |",
        "|---|---|---|---|---|---|---|---|---|---|---|"]
    for model in models:
        rows = [r for r in records if r["model"] == model]
        if not rows:
            continue
        col = {k: [r[k] for r in rows] for k in rows[0]}
        pub = PUBLISHED.get(model)
        pub_txt = ("—" if pub is None else
                   " / ".join("—" if v is None else f"{v:.2f}" for v in pub))
        fit = float(np.mean(col["fit_seconds"]))
        lines.append(
            f"| {model} | {mean_se(col['pehe_in'])} | {mean_se(col['pehe_out'])} "
            f"| {np.median(col['pehe_out']):.2f} | {mean_se(col['ate_in'])} "
            f"| {mean_se(col['ate_out'])} "
            f"| {np.median(col['ate_in']):.2f} / {np.median(col['ate_out']):.2f} "
            f"| {fit:.2f} | {'—' if baseline is None else f'{fit / baseline:.2f}'} "
            f"| {rows[0]['device']} | {pub_txt} |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description="IHDP benchmark of causalnn estimators")
    parser.add_argument("--replications", type=int, default=10)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (1 when sharing the machine)")
    parser.add_argument("--note", default=None,
                        help="a line about the run's conditions for the table's header "
                             "(e.g. that the machine was shared)")
    parser.add_argument("--n-members", type=int, default=None,
                        help="n_members of the neural estimators (default: theirs)")
    parser.add_argument("--fit-many", action="store_true",
                        help="fit all replications of a model as one batched fit_many "
                             "(replication 1's split for all; see run_many)")
    parser.add_argument("--force", action="store_true",
                        help="replace ihdp_<device><tag>.md/.csv/.json in --out if they "
                             "exist (without it they are refused before any fit)")
    parser.add_argument("--from-csv", metavar="FILE",
                        help="fit nothing: re-print an earlier run's table from its "
                             "CSV to <FILE stem>_reprint.md, with that run's machine and "
                             "command (<FILE stem>.json)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=causalnn.exceptions.ConvergenceWarning)

    specs = model_specs(args.device)
    names = args.models or list(specs)
    command = "python benchmarks/ihdp.py " + shlex.join(
        argv if argv is not None else sys.argv[1:])
    records = []
    if args.from_csv:
        return reprint(args.from_csv, command)
    # the file names hold the device and tag only, not --models or --replications: a
    # trial run would replace a full run's results (by default the committed ones)
    tag = (f"_members{args.n_members}" if args.n_members else "") + (
        "_fitmany" if args.fit_many else "")
    # and the device the records will name: CUDA where a neural model runs there (the
    # T-learner baseline always runs on the CPU)
    neural = any(not isinstance(specs[name](1), TLearnerGB) for name in names)
    device = "cuda" if neural and resolve_device(args.device).type == "cuda" else "cpu"
    stem = Path(args.out) / f"ihdp_{device}{tag}"
    md_path, csv_path, json_path = (Path(f"{stem}{ext}")
                                    for ext in (".md", ".csv", ".json"))
    refuse_existing([md_path, csv_path, json_path], args.force,
                    instead="or --out another folder (nothing was fitted)")

    def make(name, r):
        est = specs[name](r)
        if args.n_members and hasattr(est, "n_members"):
            est.set_params(n_members=args.n_members)
        return est

    if args.fit_many:
        files = [load_ihdp(r) for r in range(1, args.replications + 1)]
        for name in names:
            est = make(name, 0)
            rows = (run_many(name, est, files) if hasattr(est, "fit_many") else
                    [row for f in files for row in run_one(name, make(name, f.replication),
                                                           f)])
            records += rows
            for row in rows:
                print(f"rep {int(row['replication']):2d} {row['model']:<32s} pehe_out "
                      f"{row['pehe_out']:6.3f} fit {row['fit_seconds']:6.2f}s", flush=True)
    for r in range(1, args.replications + 1 if not args.fit_many else 1):
        data = load_ihdp(r)
        for name in names:
            rows = run_one(name, make(name, r), data)
            records += rows
            for row in rows:
                print(f"rep {r:2d} {row['model']:<32s} pehe_out {row['pehe_out']:6.3f} "
                      f"ate_out {row['ate_out']:6.3f} fit {row['fit_seconds']:6.2f}s "
                      f"epochs {row['epochs']}", flush=True)
    protocol = ("all replications as one fit_many on replication 1's 63/27/10 split"
                if args.fit_many else "63/27/10 split")
    provenance = {"machine": machine_description(), "command": command,
                  "note": args.note, "protocol": protocol}
    table = report(records, names, provenance)
    print("\n".join(table))
    save_markdown(table, md_path)
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    # the run's provenance, for a later --from-csv re-print of this CSV
    json_path.write_text(json.dumps(provenance, indent=1) + "\n")
    print(f"written to {csv_path} and {json_path}")


def report(records, names, provenance, reprinted=None):
    """The markdown lines: a header naming the run's machine, command and protocol,
    the replications counted from ``records``, and the table. ``reprinted``: the
    command re-printing an earlier run, named under its own."""
    order = []
    for name in names:
        order += ([f"{name} (plug-in ATE)", f"{name} (targeted ATE)"]
                  if name == "Dragonnet+treg" else [name])
    n_replications = len({int(r["replication"]) for r in records})
    header = [f"# IHDP benchmark ({n_replications} replications, "
              f"{provenance['protocol']})", "",
              f"Machine: {provenance['machine']}.", "",
              f"Command: `{provenance['command']}`", ""]
    if reprinted:
        header += [f"Re-printed by `{reprinted}` (nothing fitted; machine and command "
                   "above are those of the run that measured it).", ""]
    header += ["Mean ± standard error over replications; 'time / baseline' is the mean "
               "fit time divided by that of the gradient-boosting T-learner in the same "
               "run.", ""]
    if provenance.get("note"):
        header += [provenance["note"], ""]
    return header + summarise(records, order)


def reprint(csv_path, command):
    """Re-print an earlier run's table from its CSV to ``<stem>_reprint.md`` beside it,
    with that run's provenance (``<stem>.json``, written at run time); the CSV and the
    run's table are left as they are. Refuses an existing ``_reprint.md``."""
    csv_path = Path(csv_path)
    target = csv_path.with_name(csv_path.stem + "_reprint.md")
    if target.exists():
        raise SystemExit(f"--from-csv: {target} already exists; move it away to "
                         "re-print again (nothing was written).")
    with open(csv_path) as fh:
        records = [{k: (v if k in ("model", "device") else float(v or "nan"))
                    for k, v in row.items()} for row in csv.DictReader(fh)]
    if not records:
        raise SystemExit(f"--from-csv: {csv_path} holds no records.")
    sidecar = csv_path.with_suffix(".json")
    if sidecar.is_file():
        provenance = json.loads(sidecar.read_text())
    else:
        unknown = f"unknown (no {sidecar.name} beside the CSV)"
        provenance = {"machine": unknown, "command": unknown, "note": None,
                      "protocol": "split as in that run"}
    # every model of the CSV, in its order (Dragonnet+treg's two ATE rows included)
    in_csv = list(dict.fromkeys(r["model"] for r in records))
    table = report(records, in_csv, provenance, reprinted=command)
    print("\n".join(table))
    save_markdown(table, target)
    return target


if __name__ == "__main__":
    main()
