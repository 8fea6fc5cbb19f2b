"""Benchmark data sets for causal-effect estimation.

- :func:`load_ihdp`: the 10 shipped IHDP replications (Hill, 2011), in the
  form of Shalit et al. (2017).
- :func:`make_demand`: the airline ticket-demand IV simulation (Hartford et al., 2017).
- :func:`make_ihdp`: simulate new replications of IHDP response surface "B".
"""

from ._demand import demand_structural, demand_test_grid, make_demand
from ._ihdp import load_ihdp, make_ihdp

__all__ = ["demand_structural", "demand_test_grid", "load_ihdp", "make_demand",
           "make_ihdp"]
