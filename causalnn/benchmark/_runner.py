"""The benchmark grid: models x datasets x replications, through joblib (or Dask)."""
import contextlib
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

from .._warnings import shared_filter
from ..engine import wait_for_gpu
from ..metrics import ate_error, pehe
from ._datasets import (DATASETS, check_datasets, check_seed, dataset_kind,
                        demand_grid, load_replication, same_design)
from ._journal import append_records, resume_run, run_settings, start_run, write_records
from ._models import MODELS, ModelSpec, default_models
from ._report import RUN_RECORDS_FILE

__all__ = ["run_benchmark", "score"]

METRICS = {
    "binary": ["pehe_in", "pehe_out", "ate_in", "ate_out", "coverage"],
    "iv": ["cf_mse"],
    "multi_cause": ["cause_rmse"],
}


def _checked_prediction(values, n, what):
    """``values`` as a finite vector of length ``n`` (an ``(n, 1)`` column is taken as
    one); a ``ValueError`` naming ``what`` otherwise, so the replication is recorded
    as failed rather than scored with a NaN or a broadcast ``(n, n)`` difference."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.shape != (n,):
        raise ValueError(f"{what} returned shape {arr.shape}, expected ({n},).")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} returned {int(np.sum(~np.isfinite(arr)))} NaN or "
                         "infinite value(s).")
    return arr


def _has_interval(fitted):
    """Whether ``fitted`` claims an ATE interval: it has ``ate_interval`` and, for
    causalnn's estimators, at least two members (one member has no spread)."""
    members = getattr(fitted, "n_members_", None)
    return (getattr(fitted, "ate_interval", None) is not None
            and (members is None or members >= 2))


def score(fitted, data):
    """The metrics of ``data.kind`` for a fitted model on one replication.

    A prediction of the wrong shape or with NaN or infinite values raises
    ``ValueError`` (the runner records the replication as failed). An ATE interval
    that fails is not a failed replication: its error is returned as
    ``coverage_error`` and listed under the table.
    """
    if data.kind == "iv":
        grid = demand_grid()
        predicted = _checked_prediction(fitted.predict_outcome(grid.X, grid.treatment),
                                        len(grid.structural), "predict_outcome")
        return {"cf_mse": float(np.mean((predicted - grid.structural) ** 2))}
    if data.kind == "multi_cause":
        estimate = _checked_prediction(fitted.cause_effects(), len(data.effects),
                                       "cause_effects")
        return {"cause_rmse": float(np.sqrt(np.mean((estimate - data.effects) ** 2)))}
    rows = {"in": data.fit_index, "out": data.test_index}
    effects = {part: np.asarray(fitted.effect(data.X[idx]), dtype=float).reshape(-1)
               for part, idx in rows.items()}
    result = {}
    for part, idx in rows.items():
        result[f"pehe_{part}"] = pehe(data.ite[idx], effects[part])
        result[f"ate_{part}"] = ate_error(data.ite[idx], float(np.mean(effects[part])))
    if _has_interval(fitted):
        try:
            low, high = fitted.ate_interval(data.X[data.test_index])
            low, high = float(np.squeeze(low)), float(np.squeeze(high))
            if not (np.isfinite(low) and np.isfinite(high)):
                raise ValueError(f"ate_interval returned [{low}, {high}].")
            truth = float(np.mean(data.ite[data.test_index]))
            result["coverage"] = float(low <= truth <= high)
        except Exception as exc:   # reported under the table, not a failed fit
            result["coverage_error"] = _failure(exc)
    result["_effects"] = (data.ite[data.test_index].tolist(), effects["out"].tolist())
    return result


def _record(spec, label, data, seconds, device, metrics=None, error=None,
            batched=False):
    row = {"dataset": data.dataset, "model": label, "family": spec.family,
           "replication": int(data.replication), "status": "ok" if error is None
           else "failed", "error": error or "", "fit_seconds": seconds, "device": device,
           "batched": batched}
    row.update(metrics or {})
    return row


def _device_of(fitted):
    for obj in (fitted, getattr(fitted, "estimator", None)):
        if obj is not None and hasattr(obj, "device_"):
            return str(obj.device_)
    return "cpu"


def _check_device(device, backend):
    """Refuse a ``device`` that causalnn's estimators would refuse, before the grid
    rather than in each of its fits: the rules of the estimators' ``fit``
    (:func:`~causalnn.engine.resolve_device`, then the CPU/CUDA check), with their
    messages. With ``backend="dask"`` a CUDA device this machine lacks is let through:
    the cluster's workers may have the GPUs the client has not."""
    import torch

    from .._base._validation import check_device_type
    from ..engine.device import resolve_device
    try:
        resolved = resolve_device(device)
    except ValueError:
        try:
            cuda = torch.device(device).type == "cuda"
        except (RuntimeError, TypeError):
            cuda = False
        if backend != "dask" or not cuda:
            raise
        resolved = torch.device(device)
    check_device_type(resolved, "causalnn's estimators")


def _failure(exc):
    last = traceback.extract_tb(exc.__traceback__)[-1:]
    where = f" ({last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}"[:300] + where


_WARMED_UP = set()   # the devices this process has run its warm-up fits on


def warm_up(device):
    """Run two small untimed fits (TARNet's ``fit`` and ``fit_many``, 2 epochs on 64
    rows) once per process and device.

    The first torch fit in a process pays one-time costs (lazy imports, kernel and
    allocator set-up, a CUDA context) several times a later fit's time; without this
    they would be timed as the fit of whichever work item a worker runs first. A
    failure (e.g. a device that does not exist) is left for the timed fit to report.
    """
    if device in _WARMED_UP:
        return
    _WARMED_UP.add(device)
    from .. import TARNet
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 4))
    treatment = np.arange(64) % 2
    Y = X[:, 0] + treatment + 0.1 * rng.normal(size=(2, 64))
    small = TARNet(representation_layers=(8,), head_layers=(4,), max_epochs=2,
                   batch_size=32, random_state=0, device=device)
    try:
        small.fit(X, Y[0], treatment=treatment).effect(X)
        small.fit_many(X, Y, treatment=treatment)
        wait_for_gpu()
    except Exception:
        pass


def _silenced_warnings():
    # one shared "ignore" for work items overlapping in threads (run_benchmark called
    # from threads with n_jobs=1, a Dask worker's threads): catch_warnings in each
    # restored the others' saved filters and could leave the process silenced for good
    return shared_filter("ignore")


#: set while run_benchmark runs a threading-backend grid with the warnings silenced
#: once, in the caller's thread: its work items then leave the filters alone
_GRID_SILENCED = threading.Event()


@contextlib.contextmanager
def _grid_silenced():
    with _silenced_warnings():
        _GRID_SILENCED.set()
        try:
            yield
        finally:
            _GRID_SILENCED.clear()


def run_unit(spec, label, dataset, replications, seed, device, batched, threads=None,
             shared_split=False):
    """Fit one model on some replications of one dataset and score each.

    Any exception is caught and recorded as a failed row for the replications it
    concerns, so one bad replication never stops the grid. Warnings (convergence, the
    deconfounder's predictive check, peers' deprecations) are silenced inside; the
    caller's warning filters and torch threads are left as they were. The process's
    first call runs :func:`warm_up` first, and a model is built (its library imported)
    before its fit is timed.
    """
    import torch
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        # warnings.catch_warnings saves and restores the process-wide filter list: two
        # overlapping in threads (joblib's threading backend) can restore each other's
        # "ignore" and leave every warning of the caller's process silenced. Under that
        # backend run_benchmark has silenced them around the whole grid instead; any
        # other work item (the main thread, a loky or Dask worker, a caller's thread
        # with n_jobs=1) silences its own.
        with (contextlib.nullcontext() if _GRID_SILENCED.is_set()
              else _silenced_warnings()):
            warm_up(device)
            rows = _run_unit(spec, label, dataset, replications, seed, device, batched,
                             shared_split)
        # the threads this worker really ran with (a loky worker's default is set by
        # joblib, not by the parent), for the report's machine line
        for row in rows:
            row["torch_threads"] = torch.get_num_threads()
        return rows
    finally:
        torch.set_num_threads(before)


def _run_unit(spec, label, dataset, replications, seed, device, batched, shared_split):
    datas = []
    for r in replications:
        data = load_replication(dataset, r, seed, shared_split)
        data.dataset = dataset
        datas.append(data)
    rows = []
    if batched and len(datas) > 1:
        try:
            # seed + (first replication - 1): the default single group gets ``seed``,
            # and groups of --batch-size never share initial weights and batch order
            model = spec.make(seed + datas[0].replication - 1, device)  # not timed
            start = time.perf_counter()
            fits = model.fit_many(datas)
            wait_for_gpu()
            seconds = (time.perf_counter() - start) / len(datas)
        except Exception as exc:
            return [_record(spec, label, d, np.nan, device, error=_failure(exc),
                            batched=True) for d in datas]
        for data, fitted in zip(datas, fits):
            try:
                rows.append(_record(spec, label, data, seconds, _device_of(fitted),
                                    score(fitted, data), batched=True))
            except Exception as exc:
                rows.append(_record(spec, label, data, seconds, device,
                                    error=_failure(exc), batched=True))
        return rows
    for data in datas:
        start = time.perf_counter()
        try:
            model = spec.make(seed + data.replication, device)   # not timed
            start = time.perf_counter()
            fitted = model.fit(data)
            wait_for_gpu()
            seconds = time.perf_counter() - start
            rows.append(_record(spec, label, data, seconds, _device_of(fitted),
                                score(fitted, data)))
        except Exception as exc:
            rows.append(_record(spec, label, data, time.perf_counter() - start, device,
                                error=_failure(exc)))
    return rows


class _Progress:
    """A one-line progress bar on stderr (replications done / all; ``done`` of them,
    ``failed`` failed, before it starts: those a resumed run takes from its record)."""

    def __init__(self, total, stream=None, enabled=True, done=0, failed=0):
        self.total, self.done, self.failed = total, done, failed
        self.stream, self.enabled = stream or sys.stderr, enabled
        self.start = time.perf_counter()

    def update(self, rows):
        self.done += len(rows)
        self.failed += sum(r["status"] == "failed" for r in rows)
        if not self.enabled:
            return
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        last = rows[-1] if rows else {}
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
            f"{time.perf_counter() - self.start:6.0f}s failed {self.failed} "
            f"| {last.get('model', '')[:28]:<28s} {last.get('dataset', '')[:10]:<10s}")
        if self.done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


def _units(specs, datasets, replications, seed, device, batch, batch_size,
           sequential_subset, threads, shared_split):
    units = []
    for dataset in datasets:
        kind = dataset_kind(dataset)
        reps = list(range(1, replications + 1))
        for spec in specs:
            if kind not in spec.kinds:
                continue
            batched = batch and spec.batched
            if not batched:
                units += [(spec, spec.name, dataset, [r], seed, device, False, threads,
                           shared_split)
                          for r in reps]
                continue
            # batch consecutive replications that share X, treatment and fit rows
            groups, current, first = [], [], None
            for r in reps:
                data = load_replication(dataset, r, seed, shared_split)
                if current and (len(current) == batch_size or not same_design(first, data)):
                    groups.append(current)
                    current = []
                if not current:
                    first = data
                current.append(r)
            groups.append(current)
            units += [(spec, spec.name, dataset, g, seed, device, True, threads,
                       shared_split)
                      for g in groups]
            if sequential_subset:
                label = f"{spec.name} (one at a time)"
                units += [(spec, label, dataset, [r], seed, device, False, threads,
                           shared_split)
                          for r in reps[:sequential_subset]]
    return units


def _unit_keys(unit):
    """The (model label, dataset, replication) of each replication a work item fits."""
    return [(unit[1], unit[2], r) for r in unit[3]]


def _units_left(units, recorded, out, unavailable):
    """The work items of ``units`` that the recorded run did not finish, and the
    recorded records of those it did (in the order of ``units``).

    A work item finished when every replication it fits has a record, "ok" or
    "failed". One with only some of them (a record file cut short) runs again whole:
    a batched group is one fit, whose members' numbers depend on each other's places
    in it. A record this run would not make (a model that cannot run here now) is an
    error rather than a row silently dropped from the table."""
    done = {(r["model"], r["dataset"], r["replication"]): r for r in recorded}
    planned = {key for unit in units for key in _unit_keys(unit)}
    for model, dataset, replication in done:
        if (model, dataset, replication) not in planned:
            base = model.removesuffix(" (one at a time)")
            why = (f": {base!r} cannot run here now ({unavailable[base]})"
                   if base in unavailable else "")
            raise ValueError(f"resume: {out} holds a result of {model!r} on {dataset} "
                             f"(replication {replication}) that this run would not "
                             f"make{why}.")
    left, reused = [], []
    for unit in units:
        keys = _unit_keys(unit)
        if all(key in done for key in keys):
            reused += [done[key] for key in keys]
        else:
            left.append(unit)
    return left, reused


def run_benchmark(models=None, datasets=("ihdp",), replications=10, *, seed=0,
                  device="auto", n_jobs=1, backend="loky", scheduler=None, batch=True,
                  batch_size=None, sequential_subset=0, threads=None, shared_split=False,
                  progress=True, out=None, resume=False, force=False):
    """Run models x datasets x replications and return the per-replication records.

    Parameters
    ----------
    models : list of str or ModelSpec, default=None
        Names from :data:`causalnn.benchmark.MODELS` or :class:`ModelSpec` objects;
        ``None`` runs every model that applies to one of ``datasets`` (the peers whose
        library is installed; the others are listed in ``unavailable``).
    datasets : sequence of str
        Names from :data:`causalnn.benchmark.DATASETS`.
    replications : int
        Replications per dataset (numbered 1..replications; the same for every model).
    seed : int
        Seed of the simulated datasets and of the models (replication r fitted one at a
        time gets ``seed + r``; a batched fit of replications r0, r0 + 1, ... gets
        ``seed + r0 - 1``, so ``seed`` without ``batch_size``. Within a batched fit the
        members are drawn in order, so a replication's initial weights depend on its
        place in the group, and so on ``batch_size``).
    device : str
        Device of causalnn's estimators: ``"auto"`` (CUDA when available), ``"cpu"``,
        ``"cuda"`` or ``"cuda:N"``. Checked before the grid with the estimators' own
        rules: a device this machine lacks (CUDA without a GPU, a GPU index it does not
        have) or that torch or causalnn does not know is refused, except that with
        ``backend="dask"`` a CUDA device is left for the workers to resolve.
    n_jobs : int
        Parallel work items (joblib).
    backend : {"loky", "threading", "dask", ...}
        joblib backend; ``"dask"`` connects to ``scheduler``.
    scheduler : str or distributed.Client, default=None
        With ``backend="dask"``: the scheduler's address or a ``distributed.Client``;
        ``None`` starts a local cluster. Ignored by the other backends.
    batch : bool
        Fit the replications of a representation estimator as one batched ``fit_many``
        when they share X, treatment and fit rows (the IHDP files do not: each has its own
        split; make_ihdp's do).
    batch_size : int or None
        At most this many replications per batched fit (``None``: all).
    sequential_subset : int
        Also fit the first ``sequential_subset`` replications of each batched model one
        at a time, as the model "<name> (one at a time)", to time the batched fit
        against sequential fits (scale the per-replication time to the full grid).
        Needs ``batch=True``.
    threads : int or None
        ``torch.set_num_threads`` in each worker.
    shared_split : bool
        Give every replication replication 1's fit and test rows (so the IHDP files can
        run as one batched fit; the standard protocol is their own splits).
    progress : bool
        Show a progress bar on stderr.
    out : path-like or None, default=None
        Keep a run record in this folder, so that an interrupted or crashed run can be
        resumed: before the grid, ``bench_settings.json`` (the settings and a run id);
        as each work item finishes, its records appended to ``bench_records.jsonl``.
        A folder holding an earlier run's outputs or record is refused unless
        ``force`` or ``resume``. Pass the same folder to :func:`write_results`, which
        then replaces this run's earlier outputs there without ``force``. ``None``:
        no record.
    resume : bool, default=False
        Continue the run recorded in ``out``: its settings must equal this call's
        (``models``, ``datasets``, ``replications``, ``seed``, ``device``, ``batch``,
        ``batch_size``, ``sequential_subset``, ``threads``, ``shared_split`` and the
        causalnn version; ``n_jobs``, ``backend`` and ``scheduler`` may differ). Every
        replication with a record, "ok" or "failed", is taken from it; the others run
        with the seeds and splits they have in one uninterrupted run, so the records
        equal that run's but for the fit times (the recorded ones are the earlier
        run's).
    force : bool, default=False
        Delete an earlier run's outputs and record in ``out`` (only those files) and
        start a new record there.

    Returns
    -------
    result : dict
        ``records`` (one dict per model x dataset x replication, with ``status`` "ok" or
        "failed" and ``error``), ``unavailable`` ({model: reason}), ``seconds`` (wall
        time of the grid; of this session when resumed), ``interrupted`` (``True`` when
        a ``KeyboardInterrupt`` stopped the grid: ``records`` then holds the work items
        that had finished, of ``planned`` replications), ``resumed`` (how many records
        came from the run recorded in ``out``), ``run_id`` (of that record; ``None``
        without ``out``) and the run's settings.

    Raises
    ------
    ValueError
        For an unknown or repeated model or dataset name, an option out of range, a
        ``device`` refused as above, ``sequential_subset`` with ``batch=False``,
        ``resume`` without ``out`` or with ``force``, or a recorded run whose settings
        differ from this call's (the message names each difference).
    FileExistsError
        ``out`` holds an earlier run's outputs or record, and neither ``force`` nor
        ``resume`` is given.
    FileNotFoundError
        ``resume`` and ``out`` holds no run record.
    """
    import joblib

    if resume and force:
        raise ValueError("resume and force: contradictory: resume continues the run "
                         "recorded in out, force deletes it; pass one of them.")
    if out is None and (resume or force):
        raise ValueError(f"{'resume' if resume else 'force'}: needs out, the folder "
                         "of the run record.")
    # before the grid: one message now, not a failed fit per replication for hours
    _check_device(device, backend)
    if sequential_subset and not batch:
        raise ValueError(f"sequential_subset={sequential_subset!r} times batched fits "
                         "against one-at-a-time fits, but batch=False fits nothing "
                         "batched: pass one of them.")
    datasets = list(datasets)
    check_datasets(datasets, replications)
    check_seed(seed, datasets, replications)
    if backend != "dask" and backend not in joblib.parallel.BACKENDS:
        # before the run record is written, not at the grid's first work item
        raise ValueError(f"backend: unknown {backend!r}; choose from "
                         f"{sorted(joblib.parallel.BACKENDS) + ['dask']}.")
    for name, value, least in (("batch_size", batch_size, 1), ("threads", threads, 1),
                               ("sequential_subset", sequential_subset, 0)):
        if value is not None and (isinstance(value, bool) or not isinstance(
                value, (int, np.integer)) or value < least):
            raise ValueError(f"{name}: expected an integer of at least {least}"
                             f"{' or None' if name != 'sequential_subset' else ''}, "
                             f"got {value!r}.")
    kinds = {dataset_kind(d) for d in datasets}
    if models is None:
        models = default_models(kinds)
    models = list(models)
    names = [m.name if isinstance(m, ModelSpec) else m for m in models]
    for what, seq in (("models", names), ("datasets", datasets)):
        repeated = sorted({str(n) for n in seq if seq.count(n) > 1})
        if repeated:
            # rows are grouped by name: two copies would be pooled as if they were
            # independent replications (twice the count, a smaller standard error)
            own = (" (a ModelSpec of your own needs a name no other model has)"
                   if what == "models" else "")
            raise ValueError(f"{what}: {', '.join(map(repr, repeated))} named more than "
                             f"once; name each once{own}.")
    specs, requested, unavailable = [], [], {}
    for model in models:
        if isinstance(model, ModelSpec):
            spec = model
        elif model in MODELS:
            spec = MODELS[model]
        else:
            raise ValueError(f"models: unknown {model!r}; choose from {list(MODELS)}.")
        if not set(spec.kinds) & kinds:
            # it would run nothing and leave an empty row-less table
            fitting = [d for d in DATASETS if dataset_kind(d) in spec.kinds]
            raise ValueError(f"models: {spec.name!r} fits none of the datasets "
                             f"{', '.join(datasets)}; it takes {'/'.join(spec.kinds)} "
                             f"data ({', '.join(fitting)}).")
        requested.append(spec)
        reason = spec.unavailable()
        if reason:
            unavailable[spec.name] = reason
        else:
            specs.append(spec)
    global_seeded = [s.name for s in specs if s.family == "catenets"]
    if backend == "threading" and n_jobs != 1 and global_seeded:
        # their fits seed and draw from the process's global generators, which work
        # items in other threads draw from, seed and restore at the same time
        warnings.warn(f"backend='threading': {', '.join(global_seeded)} draw from "
                      "torch's and numpy's global generators, which the other threads "
                      "share: their rows differ from run to run and the caller's "
                      "generators may be left changed. Use the default loky backend "
                      "for reproducible rows.", UserWarning, stacklevel=2)
    all_units = _units(specs, datasets, replications, seed, device, batch, batch_size,
                       sequential_subset, threads, shared_split)
    total = sum(len(u[3]) for u in all_units)
    units, reused, run_id = all_units, [], None
    if out is not None:
        # the settings hold every requested model, also one not installed here: the
        # same command finds the same record wherever it runs
        settings = run_settings(requested, datasets, replications, seed, device, batch,
                                batch_size, sequential_subset, threads, shared_split)
        if resume:
            run_id, recorded = resume_run(out, settings)
            units, reused = _units_left(all_units, recorded, out, unavailable)
            # drop what will be fitted again and a line cut short by a crash
            write_records(out, reused)
        else:
            run_id = start_run(out, settings, force)
    bar = _Progress(total, enabled=progress, done=len(reused),
                    failed=sum(r["status"] == "failed" for r in reused))
    records = list(reused)
    start = time.perf_counter()
    client = None
    config = {"backend": backend, "n_jobs": n_jobs}
    if backend == "dask":
        from distributed import Client
        client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
        config = {"backend": "dask", "n_jobs": -1}
    interrupted = False
    journal = open(Path(out) / RUN_RECORDS_FILE, "a") if out is not None else None
    try:
        # the work items' warnings are silenced here, in the caller's thread, for the
        # threading backend (see run_unit); the other backends run them in processes
        grid_context = (_grid_silenced() if backend == "threading"
                        else contextlib.nullcontext())
        with joblib.parallel_config(**config), grid_context:
            parallel = joblib.Parallel(return_as="generator_unordered")
            for rows in parallel(joblib.delayed(run_unit)(*u) for u in units):
                if journal is not None:
                    append_records(journal, rows)
                bar.update(rows)
                records.extend(rows)
    except KeyboardInterrupt:
        # keep what finished: hours of fits are not thrown away by one Ctrl-C
        interrupted = True
        if progress:
            sys.stderr.write("\n")
    finally:
        if journal is not None:
            journal.close()
        if client is not None and client is not scheduler:
            client.close()
    order = {name: k for k, name in enumerate(u[1] for u in all_units)}
    records.sort(key=lambda r: (datasets.index(r["dataset"]), order[r["model"]],
                                r["replication"]))
    return {"records": records, "unavailable": unavailable,
            "seconds": time.perf_counter() - start, "datasets": datasets,
            "models": [s.name for s in specs], "replications": replications,
            "seed": seed, "device": device, "n_jobs": n_jobs, "backend": backend,
            "shared_split": shared_split, "interrupted": interrupted,
            "planned": total, "resumed": len(reused),
            "out": None if out is None else str(out), "run_id": run_id}
