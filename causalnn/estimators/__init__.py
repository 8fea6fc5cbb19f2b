"""causalnn estimators, grouped by family."""
from .latent import CEVAE, Deconfounder
from .representation import CFRNet, Dragonnet, TARNet

__all__ = ["CEVAE", "CFRNet", "Deconfounder", "Dragonnet", "TARNet"]
