"""Factual outcome losses on the linear-predictor scale.

Continuous outcomes use the identity link and squared error; binary outcomes the logit
link and cross-entropy. Keeping losses on the linear predictor lets targeted
regularisation fluctuate the same quantity for both; the estimators map the linear
predictor back to the outcome scale at prediction.
"""
import torch.nn.functional as F

__all__ = ["outcome_loss"]


def outcome_loss(eta, y, kind):
    """Per-row loss of linear predictor ``eta`` for outcome ``y``."""
    if kind == "binary":
        return F.binary_cross_entropy_with_logits(eta, y, reduction="none")
    return (eta - y).pow(2)
