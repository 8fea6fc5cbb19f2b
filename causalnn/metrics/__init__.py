"""Metrics and scorers for causal-effect estimation.

- :func:`pehe`, :func:`ate_error`: errors against known true effects.
- :data:`factual_r2_scorer`, :data:`factual_mse_scorer`, :data:`pehe_scorer`:
  scorers for ``scoring=`` in scikit-learn model selection, with metadata
  routing of ``treatment`` and ``true_effect``.
- :data:`causal_validation_scorer`: the held-out causal validation loss of an
  instrumental-variable estimator (DeepIV), negated, with metadata routing of
  ``instrument``.
- :func:`get_scorer`, :func:`get_scorer_names`: scorers by name.
"""

from ._metrics import (
    ate_error,
    causal_validation_scorer,
    factual_mse_scorer,
    factual_r2_scorer,
    get_scorer,
    get_scorer_names,
    pehe,
    pehe_scorer,
)

__all__ = [
    "pehe",
    "ate_error",
    "factual_r2_scorer",
    "factual_mse_scorer",
    "pehe_scorer",
    "causal_validation_scorer",
    "get_scorer",
    "get_scorer_names",
]
