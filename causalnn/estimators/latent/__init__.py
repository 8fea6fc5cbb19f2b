"""Estimators that adjust for a latent confounder."""
from ._cevae import CEVAE

__all__ = ["CEVAE"]
