"""Benchmark splits: fit and test rows are disjoint and cover the data, and
shared_split gives every replication replication 1's fit AND test rows."""
import numpy as np
import pytest

from causalnn.benchmark._datasets import load_replication


@pytest.mark.parametrize("name", ["proxy", "make_ihdp", "ihdp"])
@pytest.mark.parametrize("shared_split", [False, True])
def test_fit_and_test_rows_are_disjoint_and_cover_the_rows(name, shared_split):
    for r in (1, 2, 3):
        data = load_replication(name, r, seed=0, shared_split=shared_split)
        fit, test = np.asarray(data.fit_index), np.asarray(data.test_index)
        assert len(np.intersect1d(fit, test)) == 0, (name, r)
        assert len(fit) + len(test) == len(data.y), (name, r)
        if shared_split:
            first = load_replication(name, 1, seed=0)
            np.testing.assert_array_equal(fit, first.fit_index)
            np.testing.assert_array_equal(test, first.test_index)
