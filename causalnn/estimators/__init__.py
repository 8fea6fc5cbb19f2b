"""causalnn estimators, grouped by family."""
from .iv import DeepIV
from .representation import CFRNet, Dragonnet, TARNet

__all__ = ["CFRNet", "DeepIV", "Dragonnet", "TARNet"]
