"""causalnn: neural causal-effect estimators with the scikit-learn interface."""
from .estimators import CEVAE, CFRNet, Deconfounder, DeepIV, Dragonnet, TARNet

__version__ = "0.1.0"

__all__ = ["CEVAE", "CFRNet", "Deconfounder", "DeepIV", "Dragonnet", "TARNet",
           "__version__"]
