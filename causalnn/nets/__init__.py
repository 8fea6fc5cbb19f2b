"""Pure ``nn.Module`` building blocks: no data handling, no training loops."""
from .mlp import ACTIVATIONS, MLP, init_weights
from .representation import RepresentationNet, RepresentationOutput

__all__ = ["ACTIVATIONS", "MLP", "RepresentationNet", "RepresentationOutput", "init_weights"]
