"""balanced_subbatch: which rows it keeps, as its docstring states."""
import torch

from causalnn.losses import mmd_linear
from causalnn.losses.subbatch import balanced_subbatch


def test_each_half_is_the_first_rows_of_its_arm_in_batch_order():
    """The first ``size // 2`` rows of each arm, in batch order; a short arm fills its
    half cyclically with weight-0 repeats, while the long arm contributes distinct rows
    of weight 1 (a repeated row of weight 1 would pair with itself in the MMDs)."""
    t = torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    phi = torch.arange(12.0).view(12, 1)
    sub_phi, sub_t, sub_weight = balanced_subbatch(phi, t, 8)
    rows = sub_phi[:, 0].long().tolist()
    assert rows == [1, 5, 1, 5, 0, 2, 3, 4]
    assert sub_t.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert sub_weight.tolist() == [1, 1, 0, 0, 1, 1, 1, 1]


def test_a_batch_of_at_most_size_rows_is_used_whole():
    """``n <= size`` returns the inputs unchanged: the IPM is that of the whole batch
    (here 3 treated and 7 controls, which a sub-batch of 5 + 5 would cut)."""
    t = torch.tensor([1.0, 1.0, 1.0] + [0.0] * 7)
    phi = torch.randn(10, 3, generator=torch.Generator().manual_seed(0))
    weight = torch.rand(10, generator=torch.Generator().manual_seed(1))
    sub_phi, sub_t, sub_weight = balanced_subbatch(phi, t, 10, weight)
    assert sub_phi is phi and sub_t is t and sub_weight is weight
    _, _, none = balanced_subbatch(phi, t, 10)
    assert none is None
    assert float(mmd_linear(*balanced_subbatch(phi, t, 10)[:2])) == float(mmd_linear(phi, t))
