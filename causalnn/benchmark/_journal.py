"""The run record that lets an interrupted or crashed benchmark run be resumed.

``run_benchmark(..., out=DIR)`` writes, before its grid runs, ``DIR/bench_settings.json``
(a run id and the settings that decide which work items the run has and what each of
them computes) and an empty ``DIR/bench_records.jsonl``, to which every finished work
item's records are appended, one JSON object per line, flushed as they arrive: a Ctrl-C,
a crash or a killed job loses only the work items that were running.
``run_benchmark(..., out=DIR, resume=True)`` checks that its settings are the recorded
ones, reads the records back and runs only the work items that have none.
"""
import datetime
import functools
import hashlib
import importlib.metadata
import json
import re
import uuid
from pathlib import Path

import numpy as np

from ._report import (RUN_RECORDS_FILE, RUN_SETTINGS_FILE, RESULT_FILE_PATTERNS,
                      _clear_results, check_out_folder, held_results, write_atomically)

__all__ = ["run_settings", "start_run", "resume_run", "write_records", "append_records"]

FORMAT = 1


def _plain(value):
    """JSON for the numpy scalars and arrays a record may hold (a model of one's own
    may return them), keeping their type: an int stays an int."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    return str(value)


def _normalized(value):
    """``value`` as it reads back from JSON (tuples become lists), for comparison."""
    return json.loads(json.dumps(value, default=_plain))


@functools.lru_cache(maxsize=1)
def _distributions():
    # packages_distributions is Python >= 3.10; without it each module is looked up
    # under its own name (right for econml and catenets, the peers that record one)
    find = getattr(importlib.metadata, "packages_distributions", None)
    return find() if find is not None else {}


def _canonical(value):
    """A text for a parameter's value that is the same in every run of the same
    command: sets and dicts in sorted order (their order changes with Python's hash
    seed), arrays by dtype, shape and a hash of their bytes (numpy's repr elides the
    middle of a large one), estimators by their class and parameters, functions by
    their qualified name, and no memory addresses."""
    if isinstance(value, np.ndarray):
        digest = hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()[:16]
        return f"ndarray(dtype={value.dtype}, shape={value.shape}, sha256={digest})"
    if isinstance(value, (set, frozenset)):
        return "{" + ", ".join(sorted(_canonical(v) for v in value)) + "}"
    if isinstance(value, dict):
        items = sorted((_canonical(k), _canonical(v)) for k, v in value.items())
        return "{" + ", ".join(f"{k}: {v}" for k, v in items) + "}"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_canonical(v) for v in value)
        return (f"[{inner}]" if isinstance(value, list)
                else f"({inner}{',' if len(value) == 1 else ''})")
    if not isinstance(value, type) and callable(getattr(value, "get_params", None)):
        try:
            return f"{type(value).__qualname__}({_canonical(value.get_params(deep=False))})"
        except Exception:  # noqa: BLE001 - an odd get_params: fall back to its repr
            pass
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '?')}.{value.__qualname__}"
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(value))


def _library_version(module):
    """The installed version of the distribution providing ``module``, or None (not
    installed, or unknown): read from its metadata, without importing it."""
    top = module.split(".")[0]
    for name in _distributions().get(top, [top]):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _model_configuration(spec, seed, device):
    """What a model computes beyond its name: the parameters of the estimator its
    ``make`` builds (the seed and the device aside: they are settings of their own),
    when that estimator is a scikit-learn-style one built without data, and the
    versions of the libraries it requires. A model of the same name with other
    parameters (e.g. an edited ``ModelSpec``) is another model: its records must not
    be mixed with the recorded ones."""
    params = None
    if spec.unavailable() is None:
        try:
            fitter = spec.make(seed, device)
            estimator = getattr(fitter, "estimator", fitter)
            if callable(getattr(estimator, "get_params", None)):
                params = {key: _canonical(value) for key, value in
                          sorted(estimator.get_params(deep=True).items())
                          if key not in ("random_state", "device")}
        except Exception:  # noqa: BLE001 - the run itself records how make fails
            params = None
    return {"params": params,
            "versions": {module: _library_version(module) for module in spec.requires}}


def _model_differences(there, now):
    """What differs between two recorded models, where both are known: a model not
    installed on one machine records neither parameters nor a version there, and a
    record made before configurations were recorded has none; resuming there is
    allowed (a model not installed fails as not installed, as in a new run)."""
    if not isinstance(there, dict) or not isinstance(now, dict):
        return [] if there == now else [f"{there!r} there, {now!r} now"]
    differences = []
    for key in list(now) + [k for k in there if k not in now]:
        a, b = there.get(key, "missing"), now.get(key, "missing")
        if key != "configuration":
            if a != b:
                differences.append(f"{key} {a!r} there, {b!r} now")
            continue
        if not (isinstance(a, dict) and isinstance(b, dict)):
            continue
        for part in ("params", "versions"):
            values_a, values_b = a.get(part) or {}, b.get(part) or {}
            if part == "params" and (a.get(part) is None or b.get(part) is None):
                continue
            for name in sorted(set(values_a) | set(values_b)):
                va, vb = values_a.get(name), values_b.get(name)
                if part == "versions" and (va is None or vb is None):
                    continue
                if va != vb:
                    differences.append(f"{name}: {va if va is not None else 'missing'} "
                                       f"there, {vb if vb is not None else 'missing'} now")
    return differences


@functools.lru_cache(maxsize=1)
def _source_digest():
    """A hash of causalnn's own source files: the version string (0.1.0 across the
    whole history) does not tell one commit's code, or an edited checkout, from
    another's."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


# what every causalnn fit's numbers depend on besides causalnn itself (distributions)
_CORE_LIBRARIES = ("torch", "numpy", "scipy", "scikit-learn", "pandas")


def _core_versions():
    versions = {}
    for name in _CORE_LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def run_settings(specs, datasets, replications, seed, device, batch, batch_size,
                 sequential_subset, threads, shared_split):
    """The settings a resumed run must share with the recorded one: those that decide
    the work items (models, datasets, replications, batching, the sequential subset)
    and what each computes (seeds, splits, device, torch threads, causalnn's version).
    ``n_jobs``, ``backend`` and ``scheduler`` only decide where the work items run."""
    from .. import __version__
    from ..engine.device import resolve_device
    try:
        # "auto" is a GPU on one machine and the CPU on another: the numbers differ
        resolved = str(resolve_device(device))
    except ValueError:
        # a CUDA device this Dask client lacks (run_benchmark refuses any other
        # device this machine lacks before it gets here): the workers resolve it
        resolved = str(device)
    return _normalized({
        "models": [{"name": s.name, "family": s.family, "kinds": list(s.kinds),
                    "batched": bool(s.batched),
                    "configuration": _model_configuration(s, seed, resolved)}
                   for s in specs],
        "datasets": list(datasets), "replications": replications, "seed": seed,
        "device": device, "device_resolved": resolved, "batch": bool(batch),
        "batch_size": batch_size, "sequential_subset": sequential_subset,
        "threads": threads, "shared_split": bool(shared_split),
        "causalnn_version": __version__, "causalnn_source": _source_digest(),
        "libraries": _core_versions()})


def _differences(recorded, current):
    """One ``"name: X there, Y now"`` per setting that differs."""
    differences = []
    for key in list(current) + [k for k in recorded if k not in current]:
        there, now = recorded.get(key, "missing"), current.get(key, "missing")
        if key in ("causalnn_source", "libraries") and key not in recorded:
            continue   # a record made before they were recorded
        if key == "models":
            names_there = ([m.get("name") if isinstance(m, dict) else m for m in there]
                           if isinstance(there, list) else there)
            names_now = [m["name"] for m in now]
            if names_there != names_now:
                differences.append(f"{key}: {names_there!r} there, {names_now!r} now")
                continue
            # the same names: a model of one of them may have been edited
            for name, a, b in zip(names_now, there, now):
                changed = _model_differences(a, b)
                if changed:
                    differences.append(f"model {name!r}: {', '.join(changed)}")
            continue
        if there != now:
            differences.append(f"{key}: {there!r} there, {now!r} now")
    return differences


def start_run(out, settings, force):
    """Begin the record of a new run in the folder ``out``: refuse a folder holding an
    earlier run's outputs or record (``FileExistsError``) unless ``force``, which
    deletes them; write the settings and an empty records file; return the run id."""
    out = Path(out)
    check_out_folder(out, force)
    _clear_results(out, RESULT_FILE_PATTERNS)
    out.mkdir(parents=True, exist_ok=True)
    run_id = uuid.uuid4().hex
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    write_atomically(out / RUN_SETTINGS_FILE, json.dumps(
        {"format": FORMAT, "run_id": run_id, "started": started, "settings": settings},
        indent=1) + "\n")
    write_records(out, [])
    return run_id


def resume_run(out, settings):
    """The run id and the records of the run recorded in ``out``, after checking that
    it was made with ``settings``.

    Raises
    ------
    FileNotFoundError
        ``out`` holds no run record (it does not exist, is empty, or holds results
        written without one).
    ValueError
        The record cannot be read, or its settings differ from ``settings`` (the
        message names each difference).
    """
    out = Path(out)
    path = out / RUN_SETTINGS_FILE
    if not path.is_file():
        held = held_results(out)
        why = ("does not exist" if not out.exists() else
               f"holds {', '.join(held)} but no {RUN_SETTINGS_FILE} (results written "
               "without a run record: by write_results alone, or by an older causalnn)"
               if held else f"holds no {RUN_SETTINGS_FILE}")
        raise FileNotFoundError(f"resume: {out} {why}; there is no recorded run to "
                                "continue: run without resume to start one")
    try:
        recorded = json.loads(path.read_text())
        run_id, recorded_settings = recorded["run_id"], recorded["settings"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"resume: cannot read the run record {path}: "
                         f"{type(exc).__name__}: {exc}") from None
    differences = _differences(recorded_settings, settings)
    if differences:
        raise ValueError(
            f"resume: the run recorded in {out} was made with other settings: "
            f"{'; '.join(differences)}. Resume it with its own settings, or start a "
            "new run (replacing it with force, or in another folder).")
    return run_id, _read_records(out / RUN_RECORDS_FILE)


def _record_key(row):
    """``(model, dataset, replication)`` of a record read back, after checking that
    it is one (a hand-edited line may parse as JSON and still not be a record)."""
    if not isinstance(row, dict):
        raise TypeError(f"a JSON {type(row).__name__}, not an object")
    key = (row["model"], row["dataset"], row["replication"])
    if not (isinstance(key[0], str) and isinstance(key[1], str)
            and isinstance(key[2], int) and not isinstance(key[2], bool)):
        raise TypeError("model and dataset must be strings and replication an integer")
    if row["status"] not in ("ok", "failed"):
        raise ValueError(f"status {row['status']!r} is neither 'ok' nor 'failed'")
    return key


def _read_records(path):
    """The records of ``path``, one per (model, dataset, replication), the last line
    of each winning. A last line cut short (the process died while writing it) is
    dropped; an unreadable line before it is an error."""
    if not path.is_file():   # died between writing the settings and this file
        return []
    lines = path.read_text().splitlines()
    records = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            key = _record_key(row)
        except (ValueError, KeyError, TypeError) as exc:
            if number == len(lines):
                break
            raise ValueError(f"resume: line {number} of {path} is not a record "
                             f"({type(exc).__name__}: {exc}); mend or delete that "
                             "line (its work item then runs again)") from None
        records[key] = row
    return list(records.values())


def write_records(out, records):
    """Replace the records file of ``out`` by ``records`` (one JSON line each)."""
    write_atomically(Path(out) / RUN_RECORDS_FILE, "".join(
        json.dumps(row, default=_plain) + "\n" for row in records))


def append_records(stream, rows):
    """Append one work item's ``rows`` to the open records file ``stream`` and flush,
    so they survive a crash of this process."""
    stream.write("".join(json.dumps(row, default=_plain) + "\n" for row in rows))
    stream.flush()
