"""Training-time defenses: L0 occlusion augmentation and Madry PGD adversarial examples.

``occlude``: random black rectangles (the seed's L0 defense, after Rao, Stutz & Schiele,
"Adversarial training against location-optimized adversarial patches", ECCV 2020, here
with random rather than optimized placement). ``pgd_examples``: L-infinity PGD with a
random start on the multi-label BCE loss (Madry et al., "Towards deep learning models
resistant to adversarial attacks", ICLR 2018).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.functional import binary_cross_entropy_with_logits


@dataclass(frozen=True, kw_only=True)
class OcclusionSettings:
    probability: float = 0.5
    min_size: int = 4
    max_size: int = 16


@dataclass(frozen=True, kw_only=True)
class PgdSettings:
    epsilon: float = 0.1
    steps: int = 7
    step_size: float = 0.035
    warmup_fraction: float = 0.3  # epsilon ramps up linearly over this share of training


def occlude(images: torch.Tensor, settings: OcclusionSettings,
            generator: torch.Generator) -> torch.Tensor:
    """Copy of ``images`` (B, C, H, W) with a black rectangle in a random subset of them."""
    out = images.clone()
    batch, _, height, width = images.shape
    chosen = torch.rand(batch, generator=generator) < settings.probability
    sizes = torch.randint(settings.min_size, settings.max_size + 1, (batch, 2), generator=generator)
    for i in torch.nonzero(chosen).flatten().tolist():
        h, w = int(sizes[i, 0]), int(sizes[i, 1])
        top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
        left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
        out[i, :, top : top + h, left : left + w] = 0.0
    return out


def pgd_examples(network: nn.Module, images: torch.Tensor, targets: torch.Tensor, *,
                 epsilon: float, steps: int, step_size: float,
                 generator: torch.Generator) -> torch.Tensor:
    """L-infinity PGD maximizing the multi-label BCE loss, kept inside [0, 1]."""
    if epsilon <= 0:
        return images
    noise = (torch.rand(images.shape, generator=generator) * 2 - 1) * epsilon
    adversarial = (images + noise).clamp(0, 1)
    for _ in range(steps):
        adversarial.requires_grad_(True)
        loss = binary_cross_entropy_with_logits(network(adversarial), targets)
        (grad,) = torch.autograd.grad(loss, adversarial)
        with torch.no_grad():
            adversarial = adversarial + step_size * grad.sign()
            adversarial = torch.min(torch.max(adversarial, images - epsilon), images + epsilon)
            adversarial = adversarial.clamp(0, 1)
    return adversarial.detach()
