"""What TARNet/CFR and Dragonnet share: a representation network with one outcome head
per arm, trained by the shared engine, and prediction of both arms at once."""
import numpy as np
import torch

from ..._base import BaseCausalEstimator, LayerWidths, Options
from ...engine import predict_in_batches
from ...nets import RepresentationNet, init_weights
from ...nets.mlp import ACTIVATIONS

__all__ = ["RepresentationEstimator"]


class RepresentationEstimator(BaseCausalEstimator):
    """Base of the shared-representation estimators (binary treatment)."""

    _parameter_constraints = {
        **BaseCausalEstimator._parameter_constraints,
        "representation_layers": [LayerWidths()],
        "head_layers": [LayerWidths()],
        "activation": [Options(*ACTIVATIONS)],
    }
    _propensity_head = False
    _normalize_representation = False

    def _build_module(self, generator):
        """``nn.ModuleDict`` whose ``"net"`` is the representation network; subclasses
        add the modules their loss trains (e.g. Dragonnet's fluctuation ``epsilon``)."""
        net = RepresentationNet(
            self.n_features_in_, self.representation_layers, self.head_layers,
            normalize_representation=self._normalize_representation,
            propensity_head=self._propensity_head, activation=self.activation)
        return torch.nn.ModuleDict({"net": init_weights(net, generator)})

    def _forward(self, X, select):
        """Run the fitted network on ``X`` in batches; ``select`` picks from its output."""
        X = torch.as_tensor(X, dtype=torch.float32)
        net = self.module_["net"]
        return predict_in_batches(lambda x: select(net(x)), [X], device=self.device_)

    def _predict_outcome(self, X, *treatments):
        arms = self._forward(X, lambda out: out.outcome)  # one pass serves every level
        return [np.where(t == 1, arms[:, 1], arms[:, 0]) for t in treatments]
