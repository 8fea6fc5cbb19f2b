"""Benchmark data sets for causal-effect estimation.

- :func:`load_ihdp`: the 10 shipped IHDP replications (Hill, 2011), in the
  form of Shalit et al. (2017).
- :func:`make_demand`: the airline ticket-demand IV simulation (Hartford et al., 2017).
- :func:`make_linear_iv`: a linear IV design with a known slope (a check).
- :func:`make_ihdp`: simulate new replications of IHDP response surface "B".
- :func:`make_multi_cause`, :func:`make_films`: many causes with a latent confounder
  (the deconfounder's simulations).
- :func:`make_proxy_confounded`: a binary latent confounder seen through noisy
  proxies (Louizos et al., 2017).
"""

from ._demand import demand_structural, demand_test_grid, make_demand, make_linear_iv
from ._ihdp import load_ihdp, make_ihdp
from ._multi_cause import make_films, make_multi_cause
from ._proxy import make_proxy_confounded

__all__ = ["demand_structural", "demand_test_grid", "load_ihdp", "make_demand",
           "make_films", "make_ihdp", "make_linear_iv", "make_multi_cause",
           "make_proxy_confounded"]
