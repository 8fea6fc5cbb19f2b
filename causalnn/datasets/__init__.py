"""Benchmark data sets for causal-effect estimation.

- :func:`load_ihdp`: the 10 shipped IHDP replications (Hill, 2011), in the
  form of Shalit et al. (2017).
- :func:`make_ihdp`: simulate new replications of IHDP response surface "B".
- :func:`make_multi_cause`, :func:`make_films`: many causes with a latent confounder
  (the deconfounder's simulations).
"""

from ._ihdp import load_ihdp, make_ihdp
from ._multi_cause import make_films, make_multi_cause

__all__ = ["load_ihdp", "make_films", "make_ihdp", "make_multi_cause"]
