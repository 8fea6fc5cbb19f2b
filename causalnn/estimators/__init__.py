"""causalnn estimators, grouped by family."""
from .latent import Deconfounder
from .representation import CFRNet, Dragonnet, TARNet

__all__ = ["CFRNet", "Deconfounder", "Dragonnet", "TARNet"]
