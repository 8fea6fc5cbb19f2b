"""causalnn estimators, grouped by family."""
from .latent import CEVAE
from .representation import CFRNet, Dragonnet, TARNet

__all__ = ["CEVAE", "CFRNet", "Dragonnet", "TARNet"]
