"""Cutting weights of the CEGIS shrink step (Mour & Drachsler-Cohen 2023, section 3).

After a failed expansion ``eps_c`` the guided search tries
``eps' = eps_c * cw + eps_v * (1 - cw)`` toward the last verified ``eps_v``: ``cw_d = 1``
keeps ring ``d``'s expansion, ``cw_d = 0`` reverts it.

- fixed: ``cw_d = (r - d) / (r + 1)``: keep more near the perturbed object, revert the
  far rings.
- sensitivity: vanilla-gradient saliency (Simonyan et al., ICLR 2014 workshop) of the
  margin at the image, averaged per ring; more sensitive rings get smaller weights
  (shrink more), normalized to [0, 1].
- adaptive (the seed's future-work item: weights updated during the search): the same rule,
  with the saliency taken at the current weakest point instead of the image, recomputed at
  every CEGIS step, so the rings that matter near the boundary the search has reached shrink
  most.
"""

from __future__ import annotations

import numpy as np
import torch

from ringcert.problem import Problem
from ringcert.vocabulary import Shrink


def fixed_weights(num_rings: int) -> np.ndarray:
    r = num_rings - 1
    return (r - np.arange(num_rings)) / (r + 1)


def ring_saliency(problem: Problem, at: torch.Tensor | None = None) -> np.ndarray:
    """Mean |d margin / d x_p| over the pixels (and channels) of each ring, at the point
    ``at`` (C, H, W; default: the image)."""
    point = problem.image if at is None else at.detach().float().reshape(problem.image.shape)
    z = point[None].clone().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(problem.margin(z).sum(), z)
    per_pixel = grad[0].abs().sum(dim=0).double().numpy().ravel()
    rings = problem.rings.ravel()
    totals = np.bincount(rings, weights=per_pixel, minlength=problem.num_rings)
    return totals / np.maximum(problem.ring_sizes, 1)


def sensitivity_weights(problem: Problem, at: torch.Tensor | None = None) -> np.ndarray:
    saliency = ring_saliency(problem, at)
    spread = saliency.max() - saliency.min()
    if spread <= 0:
        return np.full(problem.num_rings, 0.5)
    return 1.0 - (saliency - saliency.min()) / spread


def cutting_weights(problem: Problem, shrink: Shrink, at: torch.Tensor | None = None) -> np.ndarray:
    """The rule's weights; ``at``: the current weakest point (read by ``adaptive`` only, which
    is the sensitivity rule at the image until the search has one)."""
    if shrink is Shrink.FIXED:
        return fixed_weights(problem.num_rings)
    return sensitivity_weights(problem, at if shrink is Shrink.ADAPTIVE else None)
