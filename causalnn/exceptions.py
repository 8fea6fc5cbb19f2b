"""Exceptions and warnings raised by causalnn."""
from sklearn.exceptions import NotFittedError

__all__ = ["NotFittedError", "StopTraining", "TrainingDivergedError", "ConvergenceWarning",
           "ExtrapolationWarning", "ProxyAdjustmentWarning", "WeakInstrumentWarning"]


class StopTraining(Exception):
    """Raised by a callback to end training after the current epoch.

    The training engine catches it; it never reaches the user.
    """


class TrainingDivergedError(RuntimeError):
    """Training produced a non-finite (NaN or infinite) loss."""


class ConvergenceWarning(UserWarning):
    """Training stopped at ``max_epochs`` before early stopping triggered."""


class ExtrapolationWarning(UserWarning):
    """A query asks for a continuous treatment level outside the range seen in fit,
    where the fitted function rests on no training row."""


class WeakInstrumentWarning(UserWarning):
    """The instruments barely move the treatment (first-stage partial F below 10)."""


class ProxyAdjustmentWarning(UserWarning):
    """A doubly robust estimate of a latent-confounder model (CEVAE) weights by a
    propensity of the observed proxies, so it adjusts for the proxies, not the latent
    confounder."""
