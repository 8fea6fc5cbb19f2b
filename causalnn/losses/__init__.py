"""Loss terms shared by estimators."""
from .ipm import IPMS, mmd_linear, mmd_rbf, wasserstein
from .outcome import outcome_loss
from .targeted import (TargetedRegularization, clever_covariate, fit_logistic_fluctuation,
                       fluctuate)

__all__ = ["IPMS", "TargetedRegularization", "clever_covariate", "fit_logistic_fluctuation",
           "fluctuate", "mmd_linear", "mmd_rbf", "outcome_loss", "wasserstein"]
