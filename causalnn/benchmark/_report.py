"""The benchmark's outputs: summary table, CSV / JSON, PNG plots, the README section."""
import csv
import json
import os
import platform
import re
import shutil
import uuid
from pathlib import Path

import numpy as np

from ._datasets import DATASETS

__all__ = ["machine_description", "summarize", "format_table", "write_results",
           "plot_results", "save_markdown", "check_readme", "check_out_folder",
           "held_results", "refuse_existing", "update_readme"]

# the files write_results and plot_results write under their folder; both (and
# ``causalnn bench``) refuse a folder holding any of them unless told to replace them.
# Plots are named per dataset of the registry, so a user's own "errorbars_mine.png"
# beside them is neither refused nor deleted
def _plot_names(datasets):
    """The plot files a run over ``datasets`` writes."""
    return tuple(f"{kind}_{name}.png" for name in datasets
                 for kind in ("errorbars", "effects"))


PLOT_FILE_PATTERNS = _plot_names(DATASETS)
OUTPUT_FILE_PATTERNS = ("results.md", "results.csv", "results.json") + PLOT_FILE_PATTERNS
# the run record run_benchmark(out=...) keeps so that resume=True can continue the run
# (see _journal.py): its settings, and its records appended as work items finish
RUN_SETTINGS_FILE = "bench_settings.json"
RUN_RECORDS_FILE = "bench_records.jsonl"
RUN_FILE_PATTERNS = (RUN_SETTINGS_FILE, RUN_RECORDS_FILE)
RESULT_FILE_PATTERNS = OUTPUT_FILE_PATTERNS + RUN_FILE_PATTERNS

METRIC_LABELS = {
    "pehe_in": "sqrt(PEHE) in", "pehe_out": "sqrt(PEHE) out", "ate_in": "|ATE err| in",
    "ate_out": "|ATE err| out", "coverage": "95% ATE interval coverage",
    "cf_mse": "counterfactual MSE", "cause_rmse": "per-cause RMSE",
}


def _cpu_model(cpuinfo="/proc/cpuinfo"):
    """The CPU's model name: ``/proc/cpuinfo``'s "model name" on Linux (where
    ``platform.processor()`` is empty or just the architecture), else
    ``platform.processor()``, else the architecture."""
    try:
        with open(cpuinfo) as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return " ".join(value.split())
    except OSError:   # not Linux, or no /proc
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _threads_text(threads):
    threads = threads or _torch_threads()
    return f"{threads} thread" + ("" if str(threads) == "1" else "s")


def _torch_threads():
    import torch
    return torch.get_num_threads()


def machine_description(device=None, threads=None):
    """One line naming the machine, its CPU and cores, torch's threads, the GPU and
    versions.

    ``device``: the run's torch device; its GPU is named only when it is a CUDA device
    this machine has (a ``"cpu"`` run names none; nor does a CUDA device, or a device
    name, that this machine or torch does not know: the line describes this machine).
    ``None`` or ``"auto"``: GPU 0 when there is one, as ``device="auto"`` would pick
    it. ``threads``: the torch threads the measured work ran with, when that was not
    this process (e.g. parallel workers); ``None`` reads this process's."""
    import sklearn
    import torch

    from .. import __version__
    cpu, arch = _cpu_model(), platform.machine()
    if arch and arch not in cpu:
        cpu += f" ({arch})"
    text = (f"{platform.node()}: {cpu}, {os.cpu_count()} CPU cores, "
            f"torch {torch.__version__} ({_threads_text(threads)}), "
            f"sklearn {sklearn.__version__}, causalnn {__version__}")
    if device in (None, "auto") and torch.cuda.is_available():
        device = torch.device("cuda", 0)
    elif device == "auto":
        device = None
    gpu = _gpu_here(device)
    if gpu is not None:
        text += f", GPU {torch.cuda.get_device_name(gpu)}"
    return text


def _gpu_here(device):
    """``device`` as a CUDA :class:`torch.device` when this machine has it, else
    ``None`` (also for ``None`` and a name torch does not know)."""
    import torch

    from ..engine.device import loadable_device
    if device is None:
        return None
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        return None
    # loadable_device falls back to the CPU for a GPU this machine lacks
    return device if device.type == "cuda" and loadable_device(device) == device else None


def _stats(values):
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], float)
    if len(values) == 0:
        return None
    se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    return {"mean": float(values.mean()), "se": float(se),
            "median": float(np.median(values)), "n": int(len(values))}


def _non_finite_metrics(row):
    """The scored metrics of an "ok" row that are NaN or infinite (``score`` refuses
    such predictions; this catches records made some other way)."""
    return [m for m in METRIC_LABELS if m in row and row[m] is not None
            and not np.isfinite(row[m])]


def summarize(result):
    """Per (dataset, model): replications ok / failed, and mean, standard error and
    median of each metric and of the fit time per replication.

    An "ok" record with a NaN or infinite metric counts as failed, so every mean is
    over the ``n_ok`` replications the table reports (coverage, which not every
    replication has, gives its own ``n``)."""
    groups = {}
    for row in result["records"]:
        groups.setdefault((row["dataset"], row["model"]), []).append(row)
    summary = []
    for (dataset, model), rows in groups.items():
        ok, errors = [], set()
        for r in rows:
            bad = _non_finite_metrics(r) if r["status"] == "ok" else []
            if r["status"] == "ok" and not bad:
                ok.append(r)
            elif bad:
                errors.add(f"non-finite {', '.join(bad)}")
            if r.get("error"):
                errors.add(r["error"])
        entry = {"dataset": dataset, "model": model, "family": rows[0]["family"],
                 "n_ok": len(ok), "n_failed": len(rows) - len(ok),
                 "errors": sorted(errors),
                 "coverage_errors": sorted({r["coverage_error"] for r in ok
                                            if r.get("coverage_error")}),
                 "n_coverage_failed": sum(bool(r.get("coverage_error")) for r in ok),
                 "device": ok[0]["device"] if ok else rows[0]["device"], "metrics": {}}
        for metric in list(METRIC_LABELS) + ["fit_seconds"]:
            stats = _stats([r.get(metric) for r in ok])
            if stats:
                entry["metrics"][metric] = stats
        summary.append(entry)
    return summary


def _fit_time_baselines(summary):
    """Per dataset, the summary entry whose mean fit time the others are divided by:
    the grid's first model with a fit time on that dataset."""
    baselines = {}
    for s in summary:
        if "fit_seconds" in s["metrics"] and s["metrics"]["fit_seconds"]["mean"] > 0:
            baselines.setdefault(s["dataset"], s)
    return baselines


def format_table(result, summary=None):
    """The markdown table: mean ± standard error (median) per metric, the fit time per
    replication in seconds and as a ratio to the baseline of the same run (the grid's
    first model on that dataset), failures, the models that could not run and why."""
    summary = summary if summary is not None else summarize(result)
    metrics = [m for m in METRIC_LABELS if any(m in s["metrics"] for s in summary)]
    baselines = _fit_time_baselines(summary)
    names = {b["model"] for b in baselines.values()}
    ratio_head = f"fit time / {names.pop() if len(names) == 1 else 'first model'}"
    head = (["dataset", "model", "ok / run"] + [METRIC_LABELS[m] for m in metrics]
            + ["fit s / replication", ratio_head, "device"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summary:
        cells = [s["dataset"], s["model"], f"{s['n_ok']} / {s['n_ok'] + s['n_failed']}"]
        for metric in metrics + ["fit_seconds"]:
            st = s["metrics"].get(metric)
            if st is None:
                cells.append("—")
            elif metric == "coverage":
                cells.append(f"{st['mean']:.2f} (n={st['n']})")
            else:
                se = "" if np.isnan(st["se"]) else f" ± {st['se']:.2f}"
                cells.append(f"{st['mean']:.2f}{se} ({st['median']:.2f})")
        base, own = baselines.get(s["dataset"]), s["metrics"].get("fit_seconds")
        cells.append("—" if base is None or own is None else
                     f"{own['mean'] / base['metrics']['fit_seconds']['mean']:.2f}")
        cells.append(s["device"])
        lines.append("| " + " | ".join(cells) + " |")
    notes = []
    for dataset, base in baselines.items():
        first = next(s["model"] for s in summary if s["dataset"] == dataset)
        which = (f"the grid's first model on {dataset}" if base["model"] == first else
                 f"the first model on {dataset} with a fit time; the grid's first, "
                 f"{first}, has none")
        notes.append(f"- fit time ratio on {dataset}: mean fit seconds per replication "
                     f"over those of {base['model']} ({which}) in this run.")
    for s in summary:
        for error in s["errors"]:
            notes.append(f"- {s['model']} on {s['dataset']}: {s['n_failed']} replication(s) "
                         f"failed: `{error}`")
        for error in s.get("coverage_errors", ()):
            notes.append(f"- {s['model']} on {s['dataset']}: the ATE interval failed on "
                         f"{s['n_coverage_failed']} replication(s) (no coverage for "
                         f"them): `{error}`")
    notes += _timing_notes(result, summary)
    for model, reason in result.get("unavailable", {}).items():
        notes.append(f"- {model}: not run: {reason}")
    return "\n".join(lines + ([""] + notes if notes else []))


def _timing_notes(result, summary):
    """Batched fit_many against the same model fitted one replication at a time (only
    where some of the model's replications did run as a batched fit)."""
    notes = []
    for s in summary:
        if not s["model"].endswith(" (one at a time)") or "fit_seconds" not in s["metrics"]:
            continue
        name = s["model"][: -len(" (one at a time)")]
        batched = next((b for b in summary if b["model"] == name
                        and b["dataset"] == s["dataset"] and "fit_seconds" in b["metrics"]),
                       None)
        if batched is None:
            continue
        rows = [r for r in result["records"] if r["model"] == name
                and r["dataset"] == s["dataset"] and r["status"] == "ok"]
        n_batched = sum(bool(r.get("batched")) for r in rows)
        if n_batched == 0:
            notes.append(
                f"- {name} on {s['dataset']}: no batched fit to compare with: its "
                "replications do not share X, treatment and fit rows, so every one was "
                "fitted one at a time (--shared-split lets the IHDP files batch).")
            continue
        n = batched["n_ok"]
        together = batched["metrics"]["fit_seconds"]["mean"] * n
        alone = s["metrics"]["fit_seconds"]["mean"]
        how = ("as batched fit_many" if n_batched == n else
               f"({n_batched} of them in batched fit_many, the rest one at a time)")
        notes.append(
            f"- {name} on {s['dataset']}: {n} replications {how} took "
            f"{together:.1f} s; one at a time {alone:.2f} s per replication (mean of "
            f"{s['n_ok']}), {alone * n:.1f} s for all {n} when scaled; "
            f"sequential / batched = {alone * n / together:.2f}.")
    return notes


def _worker_threads(result):
    """The torch threads the fits ran with, as the workers reported them ("1", or
    "1-2" when they differed); ``None`` for results without that record."""
    counts = sorted({r["torch_threads"] for r in result.get("records", ())
                     if "torch_threads" in r})
    if not counts:
        return None
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"


def _run_device(result):
    """The device the fits ran on, for the machine line: a CUDA device when any "ok"
    record ran on one, else ``"cpu"`` (no GPU named for a CPU run on a machine with a
    GPU). A failed record's device is the one asked for, which need not exist (CUDA
    on a machine without it), so it describes nothing; with no "ok" record the run's
    requested device is used, whose GPU ``machine_description`` names only when this
    machine has it."""
    devices = [str(r.get("device", "")) for r in result.get("records", ())
               if r.get("status") == "ok"]
    if not devices:
        return result.get("device")
    return next((d for d in devices if d.startswith("cuda")), "cpu")


def _machine(result):
    return machine_description(_run_device(result), threads=_worker_threads(result))


def _header(result, command):
    from ._datasets import DATASETS
    machine = result.get("machine") or _machine(result)
    resumed = result.get("resumed", 0)
    wall = "wall time of this resumed session" if resumed else "grid wall time"
    lines = [f"Command: `{command}`", "", f"Machine: {machine}.", "",
             f"{result['replications']} replications per dataset, the same replications "
             f"and splits for every model; {wall} {result['seconds']:.0f} s "
             f"({result['n_jobs']} jobs, {result['backend']} backend). Each cell: mean ± "
             "standard error over replications (median).", ""]
    lines += [f"- {d}: {DATASETS[d][3]}" for d in result["datasets"]]
    if result.get("shared_split"):
        lines.append("- every replication uses replication 1's split (--shared-split)")
    if resumed:
        # their metrics are what one uninterrupted run gives; their fit seconds were
        # measured by the earlier run, possibly under another load or with other jobs
        lines[:0] = [f"**Resumed: {resumed}/{result['planned']} replications from an "
                     "earlier run** (their fit times are that run's).", ""]
    if result.get("interrupted"):
        done = len(result["records"])
        lines[:0] = [f"**Partial results: interrupted after {done}/{result['planned']} "
                     "replications** (the work items that had finished).", ""]
    return "\n".join(lines)


def held_results(out, patterns=RESULT_FILE_PATTERNS):
    """The names of the files matching ``patterns`` (the benchmark's outputs) in the
    folder ``out``, sorted; ``[]`` when it does not exist."""
    out = Path(out)
    if not out.is_dir():
        return []
    return sorted({p.name for pattern in patterns for p in out.glob(pattern)
                   if p.is_file()})


def check_out_folder(out, force, patterns=RESULT_FILE_PATTERNS, flag="force=True",
                     resume_flag="resume=True"):
    """Refuse to write into ``out`` when it is a file, or when it holds files matching
    ``patterns`` and ``force`` is false. ``causalnn bench`` runs this one check before
    its grid; :func:`~causalnn.benchmark.run_benchmark` (given ``out``),
    :func:`write_results` and :func:`plot_results` run it again before they write (the
    last two not for the run recorded in ``out``, whose outputs they replace), and with
    ``force`` then delete those files (see :func:`_clear_results`).

    Raises
    ------
    NotADirectoryError
        ``out`` is a file.
    FileExistsError
        ``out`` holds results and ``force`` is false; the message names the files and
        ``flag``, the option that replaces them (and ``resume_flag`` when ``out`` holds
        a run record that could be continued instead).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} is a file, not a folder; name a folder for the "
                                 "results")
    held = held_results(out, patterns)
    resume = (f"{resume_flag} to continue the run recorded there, "
              if RUN_SETTINGS_FILE in held else "")
    refuse_existing([out / name for name in held], force, flag, folder=out,
                    instead=f"{resume}or choose another folder")


def refuse_existing(paths, force, flag="--force", *, folder=None,
                    instead="or choose another output name or folder"):
    """Refuse to replace files that already exist unless ``force`` is true.

    A results file is never overwritten by surprise: a benchmark script calls this once,
    before it fits anything, with every file its run will write (a long run must not
    end in a refusal), and writes those same paths afterwards.
    :func:`check_out_folder` (``causalnn bench``) refuses through it too.

    Parameters
    ----------
    paths : iterable of path-like
        The files about to be written.
    force : bool
        Whether to replace them; when true nothing is refused.
    flag : str, default="--force"
        The option that replaces them, named in the message.
    folder : path-like, optional
        When given, the message names the existing files relative to this folder
        (``"<folder> already holds a.md, b.csv"``) rather than by their paths.
    instead : str, default="or choose another output name or folder"
        The message's last part: what the user can do other than pass ``flag``.

    Returns
    -------
    held : list of pathlib.Path
        Those of ``paths`` that exist (the files ``force`` lets be replaced), in the
        order given; empty when none does.

    Raises
    ------
    FileExistsError
        Some of ``paths`` exist and ``force`` is false. The message names every one of
        them and ``flag``.
    IsADirectoryError, NotADirectoryError
        One of ``paths`` is a folder, or lies under a file (even with ``force``: the
        write would fail after the run).

    Examples
    --------
    >>> refuse_existing(["no/such/results.md"], force=False)
    []
    """
    paths = [Path(p) for p in dict.fromkeys(map(str, paths))]
    for path in paths:
        # a write that would fail anyway fails now, not after the run
        if path.is_dir():
            raise IsADirectoryError(f"{path} is a folder; name a file for the results")
        above = next((a for a in path.parents if a.exists()), None)
        if above is not None and not above.is_dir():
            raise NotADirectoryError(f"{above} is a file, not a folder; name a folder "
                                     "for the results")
    held = [path for path in paths if path.exists()]
    if held and not force:
        one = len(held) == 1
        if folder is None:
            names = ", ".join(map(str, held))
            what = f"{names} already {'exists' if one else 'exist'}"
        else:
            names = ", ".join(os.path.relpath(p, folder) for p in held)
            what = f"{folder} already holds {names}"
        raise FileExistsError(f"{what}; pass {flag} to replace {'it' if one else 'them'}"
                              f", {instead}")
    return held


def recorded_run_id(out):
    """The id of the run recorded in the folder ``out`` (its ``bench_settings.json``),
    or ``None`` when there is none or it cannot be read."""
    try:
        return json.loads((Path(out) / RUN_SETTINGS_FILE).read_text()).get("run_id")
    except (OSError, ValueError, AttributeError):
        return None


def _is_recorded_run(result, out):
    """Whether ``result`` is the run recorded in ``out`` (``run_benchmark(out=out)``):
    then the outputs there are its own, an interrupted write's or those of the
    session it resumed, and are replaced without ``force``."""
    run_id = result.get("run_id")
    return run_id is not None and run_id == recorded_run_id(out)


def _own_outputs(result):
    """The output files the run ``result`` writes: its table files and its own
    datasets' plots, which replacing it may delete (no other dataset's plot)."""
    return ("results.md", "results.csv", "results.json") + _plot_names(result["datasets"])


def write_atomically(path, text):
    """Write ``text`` to ``path`` through a temporary file in the same folder, so a
    crash leaves the old file or the new one, never half of one. A symbolic link is
    followed (the file it names is replaced) and the file's mode is kept."""
    target = Path(path).resolve()
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(text)
        if target.exists():
            shutil.copymode(target, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _clear_results(out, patterns):
    """Delete the files matching ``patterns`` in ``out`` (only those): an earlier run's
    plots for datasets the new run lacks would otherwise stay beside its table."""
    for name in held_results(out, patterns):
        (Path(out) / name).unlink()


def save_markdown(lines, path):
    """Write a results table to ``path`` (creating its folder) and say where.

    Parameters
    ----------
    lines : list of str or str
        Markdown lines (joined with newlines) or the whole text.
    path : path-like

    Returns
    -------
    path : pathlib.Path
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = lines if isinstance(lines, str) else "\n".join(lines) + "\n"
    write_atomically(path, text)  # an interrupted run leaves the old table whole
    print(f"written to {path}")
    return path


def write_results(result, out, command, *, force=False):
    """Write ``results.csv`` (one row per replication), ``results.json`` (records,
    summary, unavailable models, machine) and ``results.md`` (the table) under ``out``;
    return the markdown.

    Parameters
    ----------
    result : dict
        What :func:`run_benchmark` returned.
    out : path-like
        The folder (made when missing).
    command : str
        The command line (or script) that made ``result``, for the header.
    force : bool, default=False
        Replace an earlier run's outputs in ``out``: ``results.md``, ``.csv`` and
        ``.json``, every ``errorbars_<dataset>.png`` and ``effects_<dataset>.png`` of
        a benchmark dataset, and a run record (``bench_settings.json``,
        ``bench_records.jsonl``) there are deleted first (no other file is touched).
        Without it a folder holding any of them is refused, unless ``result`` is the
        run recorded in ``out`` (``run_benchmark(out=out)``, resumed or not): then its
        earlier outputs and plots are replaced and its run record kept.

    Raises
    ------
    FileExistsError
        ``out`` holds an earlier run's outputs and ``force`` is false.
    """
    out = Path(out)
    if _is_recorded_run(result, out):
        _clear_results(out, _own_outputs(result))
    else:
        check_out_folder(out, force)
        _clear_results(out, RESULT_FILE_PATTERNS)
    out.mkdir(parents=True, exist_ok=True)
    result.setdefault("machine", _machine(result))
    summary = summarize(result)
    markdown = _header(result, command) + "\n\n" + format_table(result, summary) + "\n"
    (out / "results.md").write_text(markdown)
    records = [{k: v for k, v in r.items() if not k.startswith("_")}
               for r in result["records"]]
    fields = []
    for r in records:
        fields += [k for k in r if k not in fields]
    with open(out / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(records)
    payload = {k: v for k, v in result.items() if k != "records"}
    payload.update(command=command, records=records, summary=summary)
    # strict JSON (jq, JavaScript) has no NaN: a missing number (the standard error of
    # one replication, a failed fit's seconds) is written as null
    (out / "results.json").write_text(json.dumps(_finite_or_null(payload), indent=1,
                                                 default=str, allow_nan=False))
    return markdown


def _finite_or_null(value):
    """``value`` with every non-finite float (NumPy's included) replaced by None."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite_or_null(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_null(item) for item in value]
    return value


class _Figures:
    """The two pyplot calls the plots make (``subplots``, ``close``), on bare
    ``Figure`` objects: no backend is chosen or registered."""

    def __init__(self, figure_class):
        self._figure_class = figure_class

    def subplots(self, nrows=1, ncols=1, *, figsize=None, **kwargs):
        fig = self._figure_class(figsize=figsize)
        return fig, fig.subplots(nrows, ncols, **kwargs)

    def close(self, fig):
        """Nothing to free: a bare figure is in no pyplot registry."""


def _save(plt, fig, path):
    """Write ``fig`` to ``path`` and free it; returns ``path``."""
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_results(result, out, *, force=False):
    """PNG plots (needs matplotlib): per dataset, one panel per metric with each
    model's mean and standard error; for binary datasets, estimated against true effects
    on replication 1's test rows. Returns the paths written ([] without matplotlib).

    A folder already holding ``errorbars_<dataset>.png`` or ``effects_<dataset>.png``
    (of a benchmark dataset) is refused
    (``FileExistsError``) unless ``force=True``, which deletes them first (so no plot
    of an earlier run stays beside these), or ``result`` is the run recorded in
    ``out`` (whose plots they are). Call it after :func:`write_results`, which
    clears the plots too when forced."""
    try:
        # figures built without pyplot: no matplotlib.use(), so the caller's backend
        # (a notebook's inline one, say) and open figures are left as they were
        from matplotlib.figure import Figure
    except ImportError:
        return []
    plt = _Figures(Figure)
    out = Path(out)
    if _is_recorded_run(result, out):   # its own datasets' plots, no other
        _clear_results(out, _plot_names(result["datasets"]))
    else:
        check_out_folder(out, force, PLOT_FILE_PATTERNS)
        _clear_results(out, PLOT_FILE_PATTERNS)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(result)
    paths = []
    for dataset in result["datasets"]:
        entries = [s for s in summary if s["dataset"] == dataset and s["n_ok"]]
        metrics = [m for m in METRIC_LABELS if m != "coverage"
                   and any(m in s["metrics"] for s in entries)]
        if not metrics:
            continue
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics),
                                                           0.35 * len(entries) + 1.5),
                                 squeeze=False)
        for ax, metric in zip(axes[0], metrics):
            rows = [s for s in entries if metric in s["metrics"]]
            y = np.arange(len(rows))
            means = [s["metrics"][metric]["mean"] for s in rows]
            errors = [np.nan_to_num(s["metrics"][metric]["se"]) for s in rows]
            colors = ["tab:blue" if s["family"] == "causalnn" else "tab:gray" for s in rows]
            ax.barh(y, means, xerr=errors, color=colors, capsize=3)
            ax.set_yticks(y, [s["model"] for s in rows] if ax is axes[0][0] else [])
            ax.invert_yaxis()
            ax.set_xlabel(METRIC_LABELS[metric] + " (mean ± s.e.)")
        fig.suptitle(f"{dataset}: {result['replications']} replications")
        fig.tight_layout()
        paths.append(_save(plt, fig, out / f"errorbars_{dataset}.png"))
        first = [r for r in result["records"] if r["dataset"] == dataset
                 and r["status"] == "ok" and "_effects" in r and r["replication"] == 1]
        if first:
            cols = min(4, len(first))
            nrows = int(np.ceil(len(first) / cols))
            fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 3.2 * nrows),
                                     squeeze=False)
            for ax in axes.ravel()[len(first):]:
                ax.axis("off")
            for ax, row in zip(axes.ravel(), first):
                truth, estimate = (np.asarray(v) for v in row["_effects"])
                ax.scatter(truth, estimate, s=6, alpha=0.6)
                low, high = min(truth.min(), estimate.min()), max(truth.max(),
                                                                  estimate.max())
                ax.plot([low, high], [low, high], color="k", lw=0.8)
                ax.set_title(row["model"], fontsize=8)
                ax.set_xlabel("true effect", fontsize=7)
                ax.set_ylabel("estimated", fontsize=7)
            fig.suptitle(f"{dataset}, replication 1, test rows")
            fig.tight_layout()
            paths.append(_save(plt, fig, out / f"effects_{dataset}.png"))
    return paths


README_START = "<!-- causalnn bench: start -->"
README_END = "<!-- causalnn bench: end -->"


def check_readme(path):
    """Return the text of the README at ``path`` if the table can be put in it: it
    exists, can be written and holds one start marker line followed by one end marker
    line (each marker alone on its line); raise ``ValueError``
    (naming ``readme``) otherwise. ``causalnn bench`` calls it before the grid runs."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise ValueError(f"readme: {path} {what}; name a README file holding the markers "
                         f"'{README_START}' and '{README_END}'.")
    try:
        text = path.read_text()
        with open(path, "a"):   # opening to append writes nothing: can it be written?
            pass
    except OSError as exc:
        raise ValueError(f"readme: cannot read and write {path}: "
                         f"{exc.strerror or exc}.") from None
    _marker_block(text, path)
    return text


def _marker_block(text, path):
    """The character spans of the start and end marker lines: each marker alone on its
    line (a marker quoted in prose does not count), one start line, then one end line;
    ``ValueError`` otherwise."""
    starts = [m.span() for m in re.finditer(rf"^[ \t]*{re.escape(README_START)}[ \t]*$",
                                            text, re.M)]
    ends = [m.span() for m in re.finditer(rf"^[ \t]*{re.escape(README_END)}[ \t]*$",
                                          text, re.M)]
    if len(starts) != 1 or len(ends) != 1 or ends[0][0] < starts[0][1]:
        order = ", the end first" if len(starts) == len(ends) == 1 else ""
        raise ValueError(
            f"readme: {path} needs the markers '{README_START}' and '{README_END}' "
            "to put the table between, each once and alone on its line, start first "
            f"(found {len(starts)} start and {len(ends)} end line(s){order}).")
    return starts[0], ends[0]


def update_readme(path, markdown):
    """Replace the lines between the benchmark marker lines of a README (nothing
    else); the markers must stand alone on their lines (see :func:`check_readme`)."""
    text = check_readme(path)
    start, end = _marker_block(text, path)
    # the user's file: a crash mid-write must leave the old README, never half of it
    write_atomically(path, text[:start[1]] + "\n" + markdown.rstrip() + "\n"
                     + text[end[0]:])
