"""causalnn.nets.distributions.sample against the laws it draws from."""
import numpy as np
import torch
from torch.distributions import (Categorical, Independent, MixtureSameFamily, Normal)

from causalnn.nets.distributions import sample


def _mixture():
    # row 0: 0.3 N(-20, 1) + 0.7 N(20, 2); row 1: everything far away (a row mix-up shows)
    logits = torch.log(torch.tensor([[0.3, 0.7], [0.5, 0.5]], dtype=torch.float64))
    loc = torch.tensor([[[-20.0], [20.0]], [[100.0], [100.0]]], dtype=torch.float64)
    scale = torch.tensor([[[1.0], [2.0]], [[0.1], [0.1]]], dtype=torch.float64)
    return MixtureSameFamily(Categorical(logits=logits),
                             Independent(Normal(loc, scale), 1))


def test_mixture_draws_follow_each_rows_mixture():
    draws = sample(_mixture(), 20000, torch.Generator().manual_seed(0)).numpy()
    assert draws.shape == (20000, 2, 1)
    row0, row1 = draws[:, 0, 0], draws[:, 1, 0]
    assert np.all(np.abs(row1 - 100.0) < 1.0)            # no draw of row 0 in row 1
    high = row0 > 0
    assert abs(high.mean() - 0.7) < 0.02                 # component weights
    assert abs(row0[high].mean() - 20.0) < 0.06 and abs(row0[high].std() - 2.0) < 0.05
    assert abs(row0[~high].mean() + 20.0) < 0.06 and abs(row0[~high].std() - 1.0) < 0.05


def test_categorical_draws_follow_each_rows_probabilities():
    probs = torch.tensor([[0.1, 0.2, 0.7], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]],
                         dtype=torch.float64)
    draws = sample(Categorical(probs=probs), 20000, torch.Generator().manual_seed(0))
    draws = draws.numpy()
    assert draws.shape == (20000, 3)
    np.testing.assert_allclose(np.bincount(draws[:, 0], minlength=3) / 20000,
                               [0.1, 0.2, 0.7], atol=0.015)
    assert np.all(draws[:, 1] == 2) and np.all(draws[:, 2] == 0)
    # rows draw independently: row 0's draws are not a function of one shared uniform
    b = sample(Categorical(probs=probs[[0, 0]]), 20000,
               torch.Generator().manual_seed(1)).numpy()
    assert abs(np.corrcoef(b[:, 0], b[:, 1])[0, 1]) < 0.05
