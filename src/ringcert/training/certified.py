"""Certified training on the multi-label top-k property: interval bounds with an epsilon ramp.

The fourth training regime (issue 16), after Gowal et al. 2018 (docs/references.md#gowal2018ibp):
the loss mixes the clean multi-label BCE with a *robust* term computed from interval bounds
(IBP) over the whole image's L-infinity ball, ``kappa * clean + (1 - kappa) * robust``; epsilon
ramps from 0 and kappa from 1 to their final values over a share of training, because IBP from
the start does not train.

The robust term bounds the property the verifiers prove, all N digits in the top-k (k = N),
not a single-label margin. With k = N that holds iff every label beats every non-label, so
for each label ``t`` the bound is the lower bound of ``z_t - z_j`` for every non-label ``j``,
computed with the last layer folded into the differences (the "elision" of Gowal et al., tighter
than subtracting two logit intervals). The term is the cross-entropy on the worst-case logits
``-lb(z_t - z_j)`` (``0`` for ``t``): ``log(1 + sum_j exp(-lb(z_t - z_j)))``, a smooth surrogate
that is small only when every such bound is positive, i.e. when IBP certifies the image. The
other labels are left out of each label's competitors: being above them is not required.

Each layer's interval rule lives with the layer (``LayerType.interval``, here with ``live=True``
so that the gradients reach the weights).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ringcert.errors import RingcertError
from ringcert.layers.base import weight_and_bias
from ringcert.layers.registry import layer_type


@dataclass(frozen=True, kw_only=True)
class CertifiedSettings:
    """The ramp: clean training until ``ramp_start`` (a share of all steps), then epsilon
    grows linearly to ``epsilon`` and kappa falls to ``final_kappa`` by ``ramp_end``."""

    epsilon: float = 0.05  # 0.1 costs clean accuracy: 77-79% top-2 against 86.5% (README)
    ramp_start: float = 0.2
    ramp_end: float = 0.7
    final_kappa: float = 0.5

    def schedule(self, progress: float) -> tuple[float, float]:
        """``(epsilon, kappa)`` at ``progress`` in [0, 1] of training."""
        if progress <= self.ramp_start:
            return 0.0, 1.0
        share = min(1.0, (progress - self.ramp_start) / max(self.ramp_end - self.ramp_start, 1e-12))
        return self.epsilon * share, 1.0 - (1.0 - self.final_kappa) * share


def difference_lower_bounds(network: nn.Sequential, images: torch.Tensor, labels: torch.Tensor,
                            epsilon: float, *, live: bool = True) -> torch.Tensor:
    """Lower bounds (B, N, C) on ``z_t - z_j`` for each label ``t`` (``labels`` (B, N)) and
    every class ``j`` over the box ``[x - eps, x + eps] & [0, 1]`` of each image (B, C, H, W);
    IBP through all layers but the last, which must be Linear and is folded into the
    differences. Sound for any epsilon; differentiable in the weights when ``live``."""
    last = network[-1]
    if not isinstance(last, nn.Linear):
        raise RingcertError("certified training needs a network that ends in a Linear layer")
    lower, upper = (images - epsilon).clamp(0, 1), (images + epsilon).clamp(0, 1)
    for layer in list(network)[:-1]:
        lower, upper = layer_type(layer, "certified training").interval(layer, lower, upper, live=live)
    weight, bias = weight_and_bias(last, live=live)
    rows = weight[labels][:, :, None, :] - weight[None, None, :, :]          # (B, N, C, F)
    offsets = bias[labels][:, :, None] - bias[None, None, :]                 # (B, N, C)
    center, radius = ((upper + lower) / 2)[:, None, None, :], ((upper - lower) / 2)[:, None, None, :]
    return (rows * center).sum(-1) - (rows.abs() * radius).sum(-1) + offsets


def certified_loss(network: nn.Sequential, images: torch.Tensor, labels: torch.Tensor,
                   epsilon: float) -> torch.Tensor:
    """The robust term: mean over images and labels of ``log(1 + sum_{j not a label}
    exp(-lb(z_t - z_j)))`` (the cross-entropy on IBP's worst-case logits)."""
    bounds = difference_lower_bounds(network, images, labels, epsilon)
    own = _is_label(labels, bounds.shape[-1])[:, None, :]
    worst = (-bounds).masked_fill(own, -torch.inf)                           # (B, N, C)
    zero = worst.new_zeros(*worst.shape[:2], 1)
    return torch.logsumexp(torch.cat([zero, worst], dim=-1), dim=-1).mean()


def ibp_certified(network: nn.Sequential, images: torch.Tensor, labels: torch.Tensor,
                  epsilon: float) -> torch.Tensor:
    """Per image (B,): IBP proves every label above every non-label, i.e. all N labels in the
    top-N, over the box (what the robust term trains for)."""
    with torch.no_grad():
        bounds = difference_lower_bounds(network, images, labels, epsilon, live=False)
    own = _is_label(labels, bounds.shape[-1])[:, None, :]
    return bounds.masked_fill(own, torch.inf).amin(dim=(1, 2)) > 0


def _is_label(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """(B, classes): which classes are labels of each image."""
    mask = torch.zeros(len(labels), classes, dtype=torch.bool)
    mask[torch.arange(len(labels))[:, None], labels] = True
    return mask
