"""Pure ``nn.Module`` building blocks: no data handling, no training loops."""
from .members import MemberLinear
from .mlp import ACTIVATIONS, MLP, Dropout, dropout_masks_from, init_weights
from .representation import RepresentationNet, RepresentationOutput

__all__ = ["ACTIVATIONS", "MLP", "Dropout", "MemberLinear", "RepresentationNet",
           "RepresentationOutput", "dropout_masks_from", "init_weights"]
