"""Pure ``nn.Module`` building blocks: no data handling, no training loops."""
from .members import MemberLinear
from .mlp import ACTIVATIONS, MLP, init_weights
from .representation import RepresentationNet, RepresentationOutput

__all__ = ["ACTIVATIONS", "MLP", "MemberLinear", "RepresentationNet", "RepresentationOutput", "init_weights"]
