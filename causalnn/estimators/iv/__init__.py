"""Instrumental-variable estimators."""
from ._deepiv import DeepIV

__all__ = ["DeepIV"]
