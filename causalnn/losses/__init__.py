"""Loss terms shared by estimators."""
from .ipm import IPMS, mmd_linear, mmd_rbf, wasserstein
from .outcome import inverse_link, outcome_loss
from .targeted import TargetedRegularization, clever_covariate, fluctuate

__all__ = ["IPMS", "TargetedRegularization", "clever_covariate", "fluctuate", "inverse_link",
           "mmd_linear", "mmd_rbf", "outcome_loss", "wasserstein"]
