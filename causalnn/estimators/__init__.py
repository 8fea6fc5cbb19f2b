"""causalnn estimators, grouped by family."""
from .representation import CFRNet, Dragonnet, TARNet

__all__ = ["CFRNet", "Dragonnet", "TARNet"]
