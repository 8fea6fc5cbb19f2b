"""CEVAE's stochastic heads (causalnn.nets.vae) against their definitions."""
import torch
from torch import nn

from causalnn.nets.vae import CEVAEModule, NormalHead


def _last_linear(module):
    return [m for m in module.modules() if isinstance(m, nn.Linear)][-1]


def test_normal_heads_keep_their_scale_at_least_the_floor():
    torch.manual_seed(0)
    context = torch.randn(5, 3)
    constant = NormalHead(3, 2, (4,), learned_scale="constant")
    with torch.no_grad():
        constant.raw_scale.fill_(-100.0)      # softplus(-100) is 0 in float32
    network = NormalHead(3, 2, (4,))
    with torch.no_grad():
        last = _last_linear(network.net)
        last.weight.zero_()
        last.bias.fill_(-100.0)
    for head in (constant, network):
        scale = head(context).scale
        assert torch.allclose(scale, torch.full_like(scale, 1e-3))


def test_the_encoder_reads_the_outcome():
    torch.manual_seed(0)
    module = CEVAEModule(4, 2, [0, 1], [2, 3], (8, 8))
    x, t = torch.randn(6, 4), torch.tensor([0, 1, 0, 1, 0, 1])
    y = torch.randn(6)
    a, b = module.encode(x, t, y), module.encode(x, t, y + 1.0)
    assert not torch.allclose(a.loc, b.loc)
