"""Targeted regularisation: the clever covariate and the fluctuation."""
import torch

from causalnn.losses import TargetedRegularization, clever_covariate, fluctuate


def test_clever_covariate():
    t = torch.tensor([1.0, 0.0])
    g = torch.tensor([0.25, 0.25])
    torch.testing.assert_close(clever_covariate(t, g), torch.tensor([4.0, -1.0 / 0.75]))


def test_factual_fluctuation_agrees_with_both_arm_fluctuation():
    reg = TargetedRegularization()
    with torch.no_grad():
        reg.epsilon.fill_(0.3)
    eta0, eta1 = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 5.0])
    g = torch.tensor([0.2, 0.6])
    t = torch.tensor([1.0, 0.0])
    tilde0, tilde1 = fluctuate(eta0, eta1, g, reg.epsilon)
    factual = reg(torch.where(t == 1, eta1, eta0), t, g)
    torch.testing.assert_close(factual, torch.where(t == 1, tilde1, tilde0))
