"""Resuming an interrupted or crashed benchmark run (``run_benchmark(out=..., resume=True)``,
``causalnn bench --resume``): the resumed records equal one uninterrupted run's, a run
with other settings is refused, and the output folder's protection still holds."""
import csv
import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from causalnn import TARNet
from causalnn.benchmark import MODELS, ModelSpec, run_benchmark, write_results
from causalnn.benchmark._report import (README_END, README_START, plot_results,
                                        update_readme)
from causalnn.benchmark import _runner
from causalnn.benchmark._models import _Causalnn
from causalnn.cli import main
# pytest's default (prepend) import mode puts this folder on sys.path
from test_benchmark import _ConstantFit, _FailsOn

TIMING = {"fit_seconds"}
RECORDS = "bench_records.jsonl"
SETTINGS = "bench_settings.json"


@pytest.fixture(autouse=True)
def no_warm_up(monkeypatch):
    """Skip the runner's untimed torch warm-up: it changes no record."""
    monkeypatch.setattr(_runner, "warm_up", lambda device: None)


def _tiny_tarnet(seed, device):
    return _Causalnn(TARNet(representation_layers=(8,), head_layers=(4,), max_epochs=2,
                            batch_size=256, random_state=seed, device=device))


# batched: groups of --batch-size replications share one fit_many seeded from their
# first replication; one at a time: each replication seeded seed + r
BATCHED = ModelSpec("tiny TARNet", _tiny_tarnet, ["binary"], "test", batched=True)
ALONE = ModelSpec("tiny TARNet alone", _tiny_tarnet, ["binary"], "test")
FLAKY = ModelSpec("flaky", lambda seed, device: _FailsOn(2), ["binary"], "test")
CONSTANT = ModelSpec("constant", lambda seed, device: _ConstantFit(), ["binary"], "test")
GRID = dict(models=[BATCHED, FLAKY, ALONE], datasets=["make_ihdp"], replications=4,
            seed=3, batch_size=2, sequential_subset=1, progress=False)


class _CtrlC:
    """The runner's ``run_unit``, noting the work items each session starts as
    (model, dataset, replications), and raising KeyboardInterrupt (as Ctrl-C would)
    when a session starts its work item number ``after + 1``."""

    def __init__(self, run_unit):
        self.run_unit, self.after, self.calls = run_unit, None, []

    def session(self, after=None):
        self.after, self.calls = after, []
        return self

    def __call__(self, *unit):
        self.calls.append(unit[1:4])
        if self.after is not None and len(self.calls) > self.after:
            raise KeyboardInterrupt
        return self.run_unit(*unit)


@pytest.fixture
def ctrl_c(monkeypatch):
    stopper = _CtrlC(_runner.run_unit)
    monkeypatch.setattr(_runner, "run_unit", stopper)
    return stopper


def _without_timing(records):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def _csv_rows(folder, drop=TIMING):
    with open(folder / "results.csv", newline="") as fh:
        return [{k: v for k, v in row.items() if k not in drop}
                for row in csv.DictReader(fh)]


def test_a_resumed_run_gives_the_records_of_one_uninterrupted_run(tmp_path, ctrl_c):
    whole = run_benchmark(**GRID)
    write_results(whole, tmp_path / "whole", command="whole")
    assert whole["planned"] == 13 and whole["resumed"] == 0
    out = tmp_path / "resumed"
    # Ctrl-C after the first batched group (replications 1, 2 of tiny TARNet) ...
    ctrl_c.session(after=1)
    first = run_benchmark(**GRID, out=out)
    assert first["interrupted"] and len(first["records"]) == 2
    write_results(first, out, command="first")
    # ... again after the second group, the one-at-a-time fit and flaky's
    # replications 1 and 2 (the second failed)
    ctrl_c.session(after=4)
    second = run_benchmark(**GRID, out=out, resume=True)
    assert second["interrupted"] and second["resumed"] == 2
    assert len(second["records"]) == 7
    # the first session's work items were not fitted again
    assert ctrl_c.calls[0] == ("tiny TARNet", "make_ihdp", [3, 4])
    ctrl_c.session()
    third = run_benchmark(**GRID, out=out, resume=True)
    assert not third["interrupted"] and third["resumed"] == 7
    assert [c[0] for c in ctrl_c.calls] == ["flaky"] * 2 + ["tiny TARNet alone"] * 4
    # an earlier session's results.md is this run's own: replaced without force
    markdown = write_results(third, out, command="third")
    assert markdown.startswith("**Resumed: 7/13 replications from an earlier run** "
                               "(their fit times are that run's).")
    resumed_rows = _csv_rows(out)
    assert resumed_rows == _csv_rows(tmp_path / "whole")
    failed = [r for r in resumed_rows if r["status"] == "failed"]
    assert [(r["model"], r["replication"]) for r in failed] == [("flaky", "2")]
    # the fit times of the first two sessions' replications are theirs
    seconds = {(r["model"], r["replication"]): r["fit_seconds"] for r in third["records"]}
    assert seconds[("tiny TARNet", 1)] == first["records"][0]["fit_seconds"]


def test_a_crash_mid_write_or_a_partial_batched_group_runs_that_work_item_again(
        tmp_path, ctrl_c):
    grid = dict(GRID, models=[BATCHED], sequential_subset=0)
    whole = run_benchmark(**grid)
    out = tmp_path / "run"
    ctrl_c.session(after=1)
    run_benchmark(**grid, out=out)
    # a crash left replication 2's line half written: replication 1 alone stays of
    # the batched group (1, 2), which is one fit and so runs again whole
    lines = (out / RECORDS).read_text().splitlines()
    assert len(lines) == 2
    (out / RECORDS).write_text(lines[0] + "\n" + lines[1][:40])
    ctrl_c.session()
    resumed = run_benchmark(**grid, out=out, resume=True)
    assert resumed["resumed"] == 0 and [c[2] for c in ctrl_c.calls] == [[1, 2], [3, 4]]
    assert _without_timing(resumed["records"]) == _without_timing(whole["records"])
    # the record holds each replication once
    records = [json.loads(line) for line in (out / RECORDS).read_text().splitlines()]
    assert sorted(r["replication"] for r in records) == [1, 2, 3, 4]


def test_a_damaged_line_before_the_last_is_an_error_naming_it(tmp_path):
    grid = dict(models=[CONSTANT], datasets=["ihdp"], replications=2, progress=False)
    run_benchmark(**grid, out=tmp_path)
    lines = (tmp_path / RECORDS).read_text().splitlines()
    (tmp_path / RECORDS).write_text(lines[0][:30] + "\n" + lines[1] + "\n")
    with pytest.raises(ValueError, match="resume: line 1 of .*bench_records.jsonl is "
                                         "not a record"):
        run_benchmark(**grid, out=tmp_path, resume=True)


@pytest.mark.parametrize("line, why", [
    ('{"model": "constant", "dataset": "ihdp", "replication": 1}', "KeyError: 'status'"),
    ('{"model": "constant", "dataset": "ihdp", "replication": [1], "status": "ok"}',
     "replication an integer"),
    ('[1, 2]', "a JSON list, not an object"),
    ('{"model": "constant", "dataset": "ihdp", "replication": 1, "status": "done"}',
     "neither 'ok' nor 'failed'")])
def test_a_json_line_that_is_no_record_is_an_error_naming_it(tmp_path, line, why):
    """A hand-edited line may parse as JSON and still not be a record: the same
    message as for a garbled line, not a KeyError traceback or an unnamed TypeError."""
    grid = dict(models=[CONSTANT], datasets=["ihdp"], replications=2, progress=False)
    run_benchmark(**grid, out=tmp_path)
    lines = (tmp_path / RECORDS).read_text().splitlines()
    (tmp_path / RECORDS).write_text(line + "\n" + lines[1] + "\n")
    with pytest.raises(ValueError, match=r"resume: line 1 of .*bench_records.jsonl is "
                                         r"not a record \(.*" + re.escape(why)):
        run_benchmark(**grid, out=tmp_path, resume=True)


def test_replacing_a_recorded_runs_outputs_leaves_other_datasets_plots(tmp_path):
    """Only the run's own table and its own datasets' plots are replaced: a plot of
    another benchmark dataset that the user put beside them stays."""
    pytest.importorskip("matplotlib")
    grid = dict(models=[CONSTANT], datasets=["ihdp"], replications=2, progress=False)
    result = run_benchmark(**grid, out=tmp_path)
    (tmp_path / "errorbars_make_ihdp.png").write_bytes(b"the user's")
    write_results(result, tmp_path, "test")
    plot_results(result, tmp_path)
    again = run_benchmark(**grid, out=tmp_path, resume=True)
    write_results(again, tmp_path, "test")
    plot_results(again, tmp_path)
    assert (tmp_path / "errorbars_make_ihdp.png").read_bytes() == b"the user's"
    assert (tmp_path / "errorbars_ihdp.png").exists()


def test_the_readme_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    """update_readme writes through a temporary file: a failure mid-write (a kill, a
    full disk) leaves the user's README as it was, not truncated."""
    readme = tmp_path / "README.md"
    original = f"# mine\n{README_START}\nold table\n{README_END}\nmore text\n"
    readme.write_text(original)

    def dies_mid_write(self, text, *args, **kwargs):
        with open(self, "w") as fh:
            fh.write(text[:5])
        raise OSError("No space left on device")

    monkeypatch.setattr(pathlib.Path, "write_text", dies_mid_write)
    with pytest.raises(OSError, match="No space left"):
        update_readme(readme, "new table")
    monkeypatch.undo()
    assert readme.read_text() == original
    assert [p.name for p in tmp_path.iterdir()] == ["README.md"]  # no litter
    update_readme(readme, "new table")
    assert readme.read_text() == original.replace("old table", "new table")


def test_a_finished_run_resumes_without_fitting_anything(tmp_path, ctrl_c):
    done = run_benchmark([CONSTANT], ["ihdp"], 2, out=tmp_path, progress=False)
    ctrl_c.session()
    again = run_benchmark([CONSTANT], ["ihdp"], 2, out=tmp_path, resume=True,
                          progress=False)
    assert ctrl_c.calls == [] and again["resumed"] == 2 and not again["interrupted"]
    assert again["records"] == json.loads(json.dumps(done["records"]))


@pytest.mark.parametrize("changed, message", [
    (dict(replications=3), "replications: 2 there, 3 now"),
    (dict(seed=1, shared_split=True), "seed: 0 there, 1 now; shared_split: False "
                                      "there, True now"),
    (dict(models=[CONSTANT, FLAKY]), "models: ['constant'] there, ['constant', "
                                     "'flaky'] now"),
    (dict(datasets=["proxy"]), "datasets: ['ihdp'] there, ['proxy'] now"),
    (dict(batch_size=2), "batch_size: None there, 2 now"),
    (dict(threads=1), "threads: None there, 1 now"),
    # the same name, another model
    (dict(models=[ModelSpec("constant", CONSTANT.make, ["binary"], "other")]),
     "model 'constant': family 'test' there, 'other' now"),
])
def test_resuming_with_other_settings_is_refused_naming_them(tmp_path, changed, message):
    settings = dict(models=[CONSTANT], datasets=["ihdp"], replications=2,
                    progress=False)
    run_benchmark(**settings, out=tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(ValueError, match="resume: the run recorded in") as err:
        run_benchmark(**dict(settings, **changed), out=tmp_path, resume=True)
    assert message in str(err.value)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    # where the work items run is not a setting of the run
    run_benchmark(**settings, out=tmp_path, resume=True, backend="threading",
                  n_jobs=2)


def test_resuming_with_an_edited_model_of_the_same_name_is_refused(tmp_path):
    """A ModelSpec edited between the sessions (here one more epoch) under the same
    name computes other numbers: its records must not join the recorded ones."""
    def longer(seed, device):
        fitter = _tiny_tarnet(seed, device)
        fitter.estimator.set_params(max_epochs=3)
        return fitter

    settings = dict(datasets=["make_ihdp"], replications=1, progress=False)
    run_benchmark([ALONE], **settings, out=tmp_path)
    edited = ModelSpec(ALONE.name, longer, ["binary"], "test")
    with pytest.raises(ValueError, match="resume: the run recorded in") as err:
        run_benchmark([edited], **settings, out=tmp_path, resume=True)
    assert "model 'tiny TARNet alone': max_epochs: 2 there, 3 now" in str(err.value)
    # the same parameters through another function is the same model
    same = ModelSpec(ALONE.name, lambda seed, device: _tiny_tarnet(seed, device),
                     ["binary"], "test")
    assert run_benchmark([same], **settings, out=tmp_path, resume=True)["resumed"] == 1


def test_resuming_after_a_peer_library_changed_version_is_refused(tmp_path, monkeypatch):
    from causalnn.benchmark import _journal
    peer = ModelSpec("constant", CONSTANT.make, ["binary"], "test", requires=["sklearn"])
    settings = dict(datasets=["ihdp"], replications=1, progress=False)
    run_benchmark([peer], **settings, out=tmp_path)
    monkeypatch.setattr(_journal, "_library_version", lambda module: "0.0-other")
    with pytest.raises(ValueError, match="model 'constant': sklearn: .+ there, "
                                         "0.0-other now"):
        run_benchmark([peer], **settings, out=tmp_path, resume=True)
    # not installed here: not a difference (its work items fail as not installed)
    monkeypatch.setattr(_journal, "_library_version", lambda module: None)
    assert run_benchmark([peer], **settings, out=tmp_path, resume=True)["resumed"] == 1


class _Params(_ConstantFit):
    """A model of one's own with scikit-learn's get_params: a set, a large array."""

    def __init__(self, columns=frozenset({"a", "b", "c", "d"}), weights=None):
        self.columns, self.weights = columns, weights

    def get_params(self, deep=True):
        return {"columns": self.columns, "weights": self.weights}


def test_model_parameters_are_recorded_as_the_same_text_in_every_run():
    """A set prints in an order that changes with Python's hash seed, and numpy elides
    the middle of a large array: neither may make a rerun of one command differ, nor
    hide an edit."""
    from causalnn.benchmark._journal import _model_configuration
    script = ("from causalnn.benchmark._journal import _canonical;"
              "print(_canonical({'x', 'y', 'z', 'w', 'v'}))")
    texts = {subprocess.run([sys.executable, "-c", script], capture_output=True,
                            text=True, env=dict(os.environ, PYTHONHASHSEED=str(seed)),
                            check=True).stdout for seed in (1, 2, 3)}
    assert len(texts) == 1
    weights = np.ones(2000)
    edited = weights.copy()
    edited[1000] = 5.0
    spec = ModelSpec("own", lambda seed, device: _Params(weights=weights), ["binary"], "t")
    spec_edited = ModelSpec("own", lambda seed, device: _Params(weights=edited),
                            ["binary"], "t")
    assert (_model_configuration(spec, 0, "cpu")
            != _model_configuration(spec_edited, 0, "cpu"))


def test_a_model_whose_parameters_cannot_be_read_still_runs_and_resumes(tmp_path):
    class Broken(_Params):
        def get_params(self, deep=True):
            raise AttributeError("stores its argument under another name")

    spec = ModelSpec("broken", lambda seed, device: Broken(), ["binary"], "test")
    settings = dict(datasets=["ihdp"], replications=1, progress=False)
    run_benchmark([spec], **settings, out=tmp_path)
    assert run_benchmark([spec], **settings, out=tmp_path, resume=True)["resumed"] == 1


def test_a_record_from_before_model_configurations_resumes(tmp_path):
    settings = dict(datasets=["ihdp"], replications=1, progress=False)
    run_benchmark([CONSTANT], **settings, out=tmp_path)
    path = tmp_path / SETTINGS
    record = json.loads(path.read_text())
    for model in record["settings"]["models"]:
        del model["configuration"]
    path.write_text(json.dumps(record))
    assert run_benchmark([CONSTANT], **settings, out=tmp_path, resume=True)["resumed"] == 1


def test_resuming_where_no_run_is_recorded_is_an_error(tmp_path):
    grid = dict(models=[CONSTANT], datasets=["ihdp"], replications=1, progress=False)
    with pytest.raises(FileNotFoundError, match="resume: .*new does not exist; there "
                                                "is no recorded run to continue"):
        run_benchmark(**grid, out=tmp_path / "new", resume=True)
    assert not (tmp_path / "new").exists()
    with pytest.raises(FileNotFoundError, match="holds no bench_settings.json"):
        run_benchmark(**grid, out=tmp_path, resume=True)
    # results written without a run record (write_results alone) cannot be continued
    write_results(run_benchmark(**grid), tmp_path / "plain", command="x")
    with pytest.raises(FileNotFoundError, match="holds results.csv, results.json, "
                                                "results.md but no bench_settings"):
        run_benchmark(**grid, out=tmp_path / "plain", resume=True)


def test_resume_with_force_or_without_out_is_refused(tmp_path):
    grid = dict(models=[CONSTANT], datasets=["ihdp"], replications=1, progress=False)
    with pytest.raises(ValueError, match="resume and force: contradictory"):
        run_benchmark(**grid, out=tmp_path, resume=True, force=True)
    with pytest.raises(ValueError, match="resume: needs out"):
        run_benchmark(**grid, resume=True)
    assert list(tmp_path.iterdir()) == []


def test_a_recorded_run_is_neither_overwritten_nor_mixed_with_another(tmp_path):
    grid = dict(models=[CONSTANT], datasets=["ihdp"], replications=1, progress=False)
    (tmp_path / "notes.txt").write_text("not ours\n")
    recorded = run_benchmark(**grid, out=tmp_path)
    # a new run in the same folder: refused (naming resume) unless forced
    with pytest.raises(FileExistsError, match="pass force=True to replace them, "
                                              "resume=True to continue the run"):
        run_benchmark(**grid, out=tmp_path)
    # another run's result is not this folder's run: its write is refused
    with pytest.raises(FileExistsError, match="bench_records.jsonl"):
        write_results(run_benchmark(**grid), tmp_path, command="other")
    write_results(recorded, tmp_path, command="recorded")
    forced = run_benchmark(**grid, out=tmp_path, force=True)
    assert forced["run_id"] != recorded["run_id"]
    # force deleted the earlier run's outputs and record, and nothing else
    assert sorted(p.name for p in tmp_path.iterdir()) == [RECORDS, SETTINGS, "notes.txt"]


def test_a_model_that_cannot_run_now_is_an_error_not_a_dropped_row(tmp_path):
    run_benchmark([CONSTANT], ["ihdp"], 1, out=tmp_path, progress=False)
    gone = ModelSpec("constant", CONSTANT.make, ["binary"], "test",
                     requires=["no_such_module_for_causalnn_tests"])
    with pytest.raises(ValueError, match="holds a result of 'constant' on ihdp "
                                         r"\(replication 1\) that this run would not "
                                         "make: 'constant' cannot run here now"):
        run_benchmark([gone], ["ihdp"], 1, out=tmp_path, resume=True, progress=False)


# ---- the command line ------------------------------------------------------------------
BENCH = ["bench", "--datasets", "make_ihdp", "--replications", "3", "--models",
         "tiny TARNet", "--batch-size", "2", "--seed", "2", "--quiet", "--no-plots"]


@pytest.fixture
def tiny_model(monkeypatch):
    monkeypatch.setitem(MODELS, "tiny TARNet", BATCHED)


def _error(capsys):
    captured = capsys.readouterr()
    assert captured.err.startswith("causalnn: error: ")
    return captured.err


def test_cli_resume_end_to_end(tmp_path, capsys, ctrl_c, tiny_model):
    assert main(BENCH + ["--out", str(tmp_path / "whole")]) == 0
    out = str(tmp_path / "resumed")
    ctrl_c.session(after=1)
    assert main(BENCH + ["--out", out]) == 130
    assert "interrupted after 2/3 replications" in capsys.readouterr().err
    ctrl_c.session()
    # without --resume the recorded run is refused, naming both ways on
    assert main(BENCH + ["--out", out]) == 2
    assert "pass --force to replace them, --resume to continue the run" in _error(capsys)
    assert main(BENCH + ["--out", out, "--resume", "--force"]) == 2
    assert "--resume and --force contradict each other" in _error(capsys)
    assert main(BENCH + ["--seed", "5", "--out", out, "--resume"]) == 2
    err = _error(capsys)
    assert "--resume: the run recorded in" in err and "seed: 2 there, 5 now" in err
    assert main(BENCH + ["--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "--resume: " in _error(capsys) and not (tmp_path / "none").exists()
    # --n-jobs is not a setting of the run
    assert main(BENCH + ["--out", out, "--resume", "--n-jobs", "1"]) == 0
    assert "**Resumed: 2/3 replications from an earlier run**" in (
        capsys.readouterr().out)
    assert _csv_rows(tmp_path / "resumed") == _csv_rows(tmp_path / "whole")


def test_resuming_with_other_causalnn_code_or_libraries_is_refused(tmp_path, monkeypatch):
    """The version string is 0.1.0 at every commit: the code is told apart by a hash of
    its source files, and the libraries that compute the numbers by their versions."""
    from causalnn.benchmark import _journal
    settings = dict(models=[CONSTANT], datasets=["ihdp"], replications=2,
                    progress=False)
    run_benchmark(**settings, out=tmp_path)
    record = json.loads((tmp_path / SETTINGS).read_text())
    recorded = record["settings"]
    assert recorded["causalnn_source"] == _journal._source_digest()
    assert set(recorded["libraries"]) == {"torch", "numpy", "scipy", "scikit-learn",
                                          "pandas"}
    monkeypatch.setattr(_journal, "_source_digest", lambda: "edited")
    with pytest.raises(ValueError, match="causalnn_source: '[0-9a-f]{16}' there, "
                                         "'edited' now"):
        run_benchmark(**settings, out=tmp_path, resume=True)
    monkeypatch.undo()
    monkeypatch.setattr(_journal, "_core_versions", lambda: {"torch": "0.0"})
    with pytest.raises(ValueError, match="libraries: "):
        run_benchmark(**settings, out=tmp_path, resume=True)
    # a record written before these were kept resumes as before
    monkeypatch.undo()
    for key in ("causalnn_source", "libraries"):
        recorded.pop(key)
    (tmp_path / SETTINGS).write_text(json.dumps(record))
    run_benchmark(**settings, out=tmp_path, resume=True)


@pytest.mark.parametrize("changed, message", [
    (dict(seed=50000, datasets=["multi_cause"]), "seed: at most 42948 with 2 "
                                                 "replications of multi_cause"),
    (dict(seed=-1), "seed: expected a non-negative integer"),
    (dict(backend="bogus"), "backend: unknown 'bogus'"),
])
def test_a_seed_or_backend_that_cannot_run_is_refused_before_anything(tmp_path,
                                                                      changed, message):
    """Refused before the run record is written (which would block the corrected
    command) and before any fit (the derived seed overflowed at the first simulated
    dataset, after the other datasets' fits)."""
    settings = dict(models=[CONSTANT], datasets=["ihdp"], replications=2,
                    progress=False)
    with pytest.raises(ValueError, match=re.escape(message)):
        run_benchmark(**dict(settings, **changed), out=tmp_path / "run")
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
