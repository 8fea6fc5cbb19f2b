from ._estimator import BaseCausalEstimator, PropensityMixin
from ._param_validation import Interval, Options, validate_params

__all__ = ["BaseCausalEstimator", "Interval", "Options", "PropensityMixin", "validate_params"]
