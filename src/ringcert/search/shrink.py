"""Cutting weights of the CEGIS shrink step (Mour & Drachsler-Cohen 2023, section 3).

After a failed expansion ``eps_c`` the guided search tries
``eps' = eps_c * cw + eps_v * (1 - cw)`` toward the last verified ``eps_v``: ``cw_d = 1``
keeps ring ``d``'s expansion, ``cw_d = 0`` reverts it.

- fixed: ``cw_d = (r - d) / (r + 1)``: keep more near the perturbed object, revert the
  far rings.
- sensitivity: vanilla-gradient saliency (Simonyan et al., ICLR 2014 workshop) of the
  margin at the image, averaged per ring; more sensitive rings get smaller weights
  (shrink more), normalized to [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch

from ringcert.problem import Problem
from ringcert.vocabulary import Shrink


def fixed_weights(num_rings: int) -> np.ndarray:
    r = num_rings - 1
    return (r - np.arange(num_rings)) / (r + 1)


def ring_saliency(problem: Problem) -> np.ndarray:
    """Mean |d margin / d x_p| over the pixels (and channels) of each ring, at the image."""
    z = problem.image[None].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(problem.margin(z).sum(), z)
    per_pixel = grad[0].abs().sum(dim=0).double().numpy().ravel()
    rings = problem.rings.ravel()
    totals = np.bincount(rings, weights=per_pixel, minlength=problem.num_rings)
    return totals / np.maximum(problem.ring_sizes, 1)


def sensitivity_weights(problem: Problem) -> np.ndarray:
    saliency = ring_saliency(problem)
    spread = saliency.max() - saliency.min()
    if spread <= 0:
        return np.full(problem.num_rings, 0.5)
    return 1.0 - (saliency - saliency.min()) / spread


def cutting_weights(problem: Problem, shrink: Shrink) -> np.ndarray:
    if shrink is Shrink.FIXED:
        return fixed_weights(problem.num_rings)
    return sensitivity_weights(problem)
