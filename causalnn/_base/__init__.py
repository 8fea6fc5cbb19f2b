from ._estimator import BaseCausalEstimator, PropensityMixin
from ._param_validation import Interval, LayerWidths, Options, validate_params

__all__ = ["BaseCausalEstimator", "Interval", "LayerWidths", "Options", "PropensityMixin", "validate_params"]
