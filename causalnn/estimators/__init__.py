"""causalnn estimators, grouped by family."""
from .iv import DeepIV
from .latent import CEVAE, Deconfounder
from .representation import CFRNet, Dragonnet, TARNet

__all__ = ["CEVAE", "CFRNet", "Deconfounder", "DeepIV", "Dragonnet", "TARNet"]
