"""Shared-representation estimators for binary treatments."""
from ._cfr import CFRNet, TARNet
from ._dragonnet import Dragonnet

__all__ = ["CFRNet", "Dragonnet", "TARNet"]
