"""The PEHE scorer takes an (n, 1) column of effects as a vector."""
import numpy as np
import pytest

from causalnn.metrics import pehe_scorer


class _ColumnEffects:
    def predict(self, X):
        return np.asarray(X)[:, :1] * 2.0          # (n, 1)


def test_pehe_scorer_accepts_a_column_of_effects():
    X = np.arange(8.0).reshape(4, 2)
    tau = X[:, 0] * 2.0 + np.array([1.0, -1.0, 1.0, -1.0])
    assert pehe_scorer(_ColumnEffects(), X, true_effect=tau) == pytest.approx(-1.0)
