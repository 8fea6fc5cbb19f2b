"""Inference on average effects: doubly robust ATE/ATT/ATC with influence-function
standard errors, intervals from ensemble members, and overlap diagnostics."""
from ._average import (AverageEffectResult, aggregate_repeats, aipw,
                       estimate_average_effect, plugin, tmle)
from ._mixins import AverageEffectInferenceMixin, IntervalMixin, member_interval
from ._overlap import OverlapWarning, check_overlap, overlap_summary, plot_propensity

__all__ = ["AverageEffectInferenceMixin", "AverageEffectResult", "IntervalMixin",
           "OverlapWarning", "aggregate_repeats", "aipw", "check_overlap",
           "estimate_average_effect", "member_interval", "overlap_summary",
           "plot_propensity", "plugin", "tmle"]
