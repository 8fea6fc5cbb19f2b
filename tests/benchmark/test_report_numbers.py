"""The benchmark table's numbers against hand-computed values."""
import numpy as np
import pytest

from causalnn.benchmark import format_table, summarize


def _records(values, model="m", metric="pehe_out", **extra):
    return [dict({"dataset": "ihdp", "model": model, "family": "f", "status": "ok",
                  "error": "", "device": "cpu", "replication": r, metric: v,
                  "fit_seconds": 1.0}, **extra)
            for r, v in enumerate(values, 1)]


def test_the_median_is_the_median_not_the_mean():
    # skewed values: mean 4, median 2.5 (the existing test uses 1..4, where they agree)
    stats = summarize({"records": _records([1.0, 2.0, 3.0, 10.0])})[0]["metrics"]
    assert stats["pehe_out"]["mean"] == pytest.approx(4.0)
    assert stats["pehe_out"]["median"] == pytest.approx(2.5)


def test_a_table_cell_is_mean_plus_minus_se_then_the_median_in_brackets():
    table = format_table({"records": _records([1.0, 2.0, 3.0, 10.0]), "unavailable": {}})
    se = np.std([1.0, 2.0, 3.0, 10.0], ddof=1) / 2          # 2.0412
    assert f"| 4.00 ± {se:.2f} (2.50) |" in table


def test_the_batched_against_sequential_note_scales_to_all_replications():
    # 3 replications in one batched fit_many at 2 s per replication (6 s in all);
    # one replication fitted alone took 5 s: 15 s for all 3, 2.5 times the batched fit
    records = (_records([1.0, 1.0, 1.0], fit_seconds=2.0, batched=True)
               + _records([1.0], model="m (one at a time)", fit_seconds=5.0,
                          batched=False))
    table = format_table({"records": records, "unavailable": {}})
    assert ("- m on ihdp: 3 replications as batched fit_many took 6.0 s; one at a "
            "time 5.00 s per replication (mean of 1), 15.0 s for all 3 when scaled; "
            "sequential / batched = 2.50.") in table
