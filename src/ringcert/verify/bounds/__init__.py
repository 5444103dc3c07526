"""Bound propagation through the supported layers: IBP, CROWN and alpha-CROWN.

Public API (stable; other modules depend on it):

- ``BoundMethod``: IBP, CROWN, ALPHA_CROWN.
- ``network_bounds(network, lo, hi, *, method) -> NetworkBounds``: sound elementwise
  bounds on the output of every layer of a ``nn.Sequential`` for inputs in ``[lo, hi]``
  (unbatched shapes, e.g. (C, H, W)).
- ``margin_bound(problem, eps, *, method, joint=True, network_bounds=None) -> MarginBound``:
  a sound lower bound on the top-k margin over the epsilon box, differentiable in eps,
  with the box point minimizing its final linear bound and the bound per candidate k-set.

Each layer type's rules live in its module of ``ringcert.layers`` (found with
``ringcert.layers.registry.layer_type``); ``crown`` holds the backward pass, ``patches`` its
receptive-field form, ``topk`` the joint top-k specification, ``alpha`` the slope
optimization.
"""

from ringcert.verify.bounds.margin import MarginBound, margin_bound
from ringcert.verify.bounds.network import BoundMethod, NetworkBounds, network_bounds
from ringcert.verify.bounds.topk import candidate_sets

__all__ = ["BoundMethod", "MarginBound", "NetworkBounds", "candidate_sets", "margin_bound",
           "network_bounds"]
