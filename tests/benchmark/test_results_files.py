"""results.json / results.csv hold every model's numbers."""
import csv
import json

import pytest

from causalnn.benchmark import summarize, write_results


def _result():
    records = [{"dataset": "ihdp", "model": model, "family": "f", "replication": r,
                "status": "ok", "error": "", "device": "cpu", "batched": False,
                "fit_seconds": 1.0, "pehe_out": value}
               for model, values in (("first", [1.0, 2.0]), ("second", [5.0, 9.0]))
               for r, value in enumerate(values, 1)]
    return {"records": records, "unavailable": {}, "datasets": ["ihdp"],
            "models": ["first", "second"], "replications": 2, "seconds": 1.0,
            "n_jobs": 1, "backend": "loky", "machine": "test machine"}


def test_results_json_holds_the_summary_of_every_model(tmp_path):
    result = _result()
    write_results(result, tmp_path, "test")
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["summary"] == summarize(result)
    means = {s["model"]: s["metrics"]["pehe_out"]["mean"] for s in payload["summary"]}
    assert means == {"first": pytest.approx(1.5), "second": pytest.approx(7.0)}


def test_results_csv_holds_each_records_values(tmp_path):
    result = _result()
    write_results(result, tmp_path, "test")
    with open(tmp_path / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["model"], int(r["replication"]), float(r["pehe_out"])) for r in rows] == \
        [("first", 1, 1.0), ("first", 2, 2.0), ("second", 1, 5.0), ("second", 2, 9.0)]


def test_force_deletes_an_earlier_run_record_too(tmp_path):
    # write_results(force=True) documents that a run record there is deleted first: a
    # stale bench_settings.json would let --resume continue another run beside these
    for name in ("results.md", "bench_settings.json", "bench_records.jsonl"):
        (tmp_path / name).write_text('{"run_id": "earlier"}\n')
    (tmp_path / "notes.txt").write_text("mine")
    write_results(_result(), tmp_path, "test", force=True)
    assert not (tmp_path / "bench_settings.json").exists()
    assert not (tmp_path / "bench_records.jsonl").exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_the_device_column_is_where_the_ok_fits_ran():
    # a failed record carries the device asked for, which may not exist
    records = _result()["records"][:2]
    records[0] = dict(records[0], status="failed", error="boom", device="cuda:3")
    entry = summarize({"records": records})[0]
    assert (entry["n_ok"], entry["n_failed"], entry["device"]) == (1, 1, "cpu")


def test_results_json_is_strict_json_with_null_for_missing_numbers(tmp_path):
    """One replication has no standard error and a failed fit no seconds: strict JSON
    readers (jq, JavaScript) refuse a bare NaN, so they are written as null."""
    result = _result()
    result["records"] = result["records"][:1] + [dict(
        result["records"][2], status="failed", error="boom", fit_seconds=float("nan"),
        pehe_out=float("nan"))]
    write_results(result, tmp_path, "test")

    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    payload = json.loads((tmp_path / "results.json").read_text(), parse_constant=refuse)
    assert payload["records"][1]["fit_seconds"] is None
    first = next(s for s in payload["summary"] if s["model"] == "first")
    assert first["metrics"]["pehe_out"]["mean"] == pytest.approx(1.0)
    assert first["metrics"]["pehe_out"]["se"] is None
