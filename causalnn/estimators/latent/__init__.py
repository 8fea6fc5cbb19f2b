"""Latent-confounder estimators."""
from ._deconfounder import Deconfounder, PredictiveCheckWarning

__all__ = ["Deconfounder", "PredictiveCheckWarning"]
