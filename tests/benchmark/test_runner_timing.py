"""The fit seconds a batched fit_many records per replication."""
import types

import numpy as np
import pytest

from causalnn.benchmark import ModelSpec
from causalnn.benchmark import _runner


class _Clock:
    def __init__(self):
        self.now = 100.0

    def perf_counter(self):
        return self.now


class _Fitted:
    def effect(self, X):
        return np.full(len(X), 4.0)


def test_a_batched_fit_records_its_time_per_replication(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(_runner, "time", types.SimpleNamespace(perf_counter=clock.perf_counter))

    class _Batched:
        def fit_many(self, datas):
            clock.now += 6.0          # the batched fit of 3 replications takes 6 s
            return [_Fitted() for _ in datas]

    spec = ModelSpec("batched stand-in", lambda seed, device: _Batched(), ["binary"],
                     "test", batched=True)
    rows = _runner._run_unit(spec, spec.name, "make_ihdp", [1, 2, 3], 0, "cpu",
                             batched=True, shared_split=False)
    assert [r["status"] for r in rows] == ["ok"] * 3
    assert [r["fit_seconds"] for r in rows] == [pytest.approx(2.0)] * 3
