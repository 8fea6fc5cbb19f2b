"""Estimators that adjust for a latent confounder: CEVAE (proxies of one confounder)
and the deconfounder (a substitute confounder inferred from many causes)."""
from ._cevae import CEVAE
from ._deconfounder import Deconfounder, PredictiveCheckWarning

__all__ = ["CEVAE", "Deconfounder", "PredictiveCheckWarning"]
