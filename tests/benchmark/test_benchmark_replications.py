"""The benchmark's replication r is the simulator's replication r."""
import numpy as np

from causalnn.benchmark import load_replication
from causalnn.datasets import make_ihdp


def test_make_ihdp_replication_r_is_the_simulators_rth():
    reps = make_ihdp(3, random_state=7)
    for r in (1, 2, 3):
        data = load_replication("make_ihdp", r, 7)
        np.testing.assert_array_equal(data.ite, reps[r - 1].ite)
        np.testing.assert_array_equal(data.y, reps[r - 1].y)


def test_replications_of_two_seeds_are_different_draws():
    # seed 0's replication 2 must not be seed 1's replication 1
    for name in ("proxy", "multi_cause"):
        a, b = load_replication(name, 2, 0), load_replication(name, 1, 1)
        assert not np.array_equal(a.y, b.y), name


def test_the_proxy_split_is_90_10():
    data = load_replication("proxy", 1, 0)
    assert (len(data.fit_index), len(data.test_index)) == (1800, 200)
