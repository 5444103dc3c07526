"""The interface every supported layer type implements for bound propagation.

Two passes, after auto_LiRPA's one-module-per-operator split:

- ``ibp``: interval bound propagation (Gowal et al. 2018, "On the effectiveness of interval
  bound propagation"): elementwise bounds on the output from bounds on the input.
- ``backward``: one step of the backward linear relaxation of CROWN (Zhang et al. 2018,
  "Efficient neural network robustness certification with general activation functions")
  and DeepPoly (Singh et al. 2019): given coefficients ``A`` (S, *out_shape) of a linear
  function of the layer's output that is to be bounded from *below*, return ``A'``
  (S, *in_shape) and a bias (S,) with ``A . out >= A' . in + bias`` for every input in the
  given input bounds. Affine layers are exact; nonlinear ones use a linear relaxation.

All shapes are unbatched (one input of shape (C, H, W) or (N,)); the spec dimension S
takes the batch position, so the backward steps are plain batched tensor operations.
Parameters are always detached: gradients flow to the input box (epsilon) only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn


class OperatorBounds(ABC):
    """Bound propagation rules for one layer type.

    ``affine``: the output is an affine function of the input (no relaxation needed).
    ``elementwise``: affine and each output depends on one input, so IBP is exact on it.
    """

    affine: bool = True
    elementwise: bool = False

    @abstractmethod
    def ibp(self, layer: nn.Module, lower: torch.Tensor, upper: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sound elementwise bounds on the layer output for inputs in ``[lower, upper]``."""

    @abstractmethod
    def backward(self, layer: nn.Module, coef: torch.Tensor, lower: torch.Tensor,
                 upper: torch.Tensor, *, alpha: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A', bias)`` with ``A . layer(x) >= A' . x + bias`` for x in ``[lower, upper]``.

        ``alpha``: the free parameters of the layer's relaxation as optimized by
        alpha-CROWN (see ``initial_alpha``); None: CROWN's choice.
        """

    def initial_alpha(self, layer: nn.Module, lower: torch.Tensor, upper: torch.Tensor
                      ) -> torch.Tensor | None:
        """The relaxation's free parameters at CROWN's choice, every value in [0, 1] giving
        a valid relaxation (alpha-CROWN optimizes them); None: the layer has none."""
        return None


def interval_affine(center_out: torch.Tensor, radius_out: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Bounds from the image of the centre and the radius pushed through ``|W|``."""
    return center_out - radius_out, center_out + radius_out
