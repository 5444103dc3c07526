"""Clean and PGD-robust top-2 accuracy on DOUBLE-MNIST.

An image counts as correct when both of its digits are in the top-2. The robust
accuracy attacks the whole image with L-infinity PGD that minimizes the smaller of the
two digits' top-k margins, i.e. tries to push either digit out of the top-2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ringcert.problem import topk_margin

DEFAULT_EPSILONS = (0.01, 0.03, 0.05, 0.1)


@dataclass(frozen=True)
class Evaluation:
    count: int
    clean_accuracy: float
    robust_accuracy: dict[float, float]

    def to_json(self) -> dict[str, object]:
        return {"count": self.count, "clean_top2_accuracy": self.clean_accuracy,
                "pgd_robust_top2_accuracy": {str(e): a for e, a in self.robust_accuracy.items()}}


def pair_margin(logits: torch.Tensor, labels: torch.Tensor, k: int = 2) -> torch.Tensor:
    """The smaller top-k margin of the two labelled digits (B,); > 0 iff both in top-k."""
    left = topk_margin(logits, labels[:, 0], k)
    right = topk_margin(logits, labels[:, 1], k)
    return torch.minimum(left, right)


def pgd_min_margin(network: nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
                   epsilon: float, steps: int = 20, generator: torch.Generator) -> torch.Tensor:
    """Per-image margin after an L-infinity PGD attack on ``pair_margin``."""
    step = 2.5 * epsilon / steps
    best = pair_margin(network(images), labels).detach()
    z = (images + (torch.rand(images.shape, generator=generator) * 2 - 1) * epsilon).clamp(0, 1)
    for _ in range(steps):
        z.requires_grad_(True)
        margin = pair_margin(network(z), labels)
        (grad,) = torch.autograd.grad(margin.sum(), z)
        with torch.no_grad():
            best = torch.minimum(best, margin.detach())
            z = z - step * grad.sign()
            z = torch.min(torch.max(z, images - epsilon), images + epsilon).clamp(0, 1)
    with torch.no_grad():
        return torch.minimum(best, pair_margin(network(z), labels))


def evaluate(network: nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
             epsilons: tuple[float, ...] = DEFAULT_EPSILONS, batch_size: int = 250,
             seed: int = 0, progress: bool = False) -> Evaluation:
    """Clean and PGD-robust top-2 accuracy of ``network`` on float images (N, 1, H, W)."""
    from tqdm import tqdm

    network.eval()
    generator = torch.Generator().manual_seed(seed)
    clean = 0
    robust = dict.fromkeys(epsilons, 0)
    starts = range(0, len(images), batch_size)
    for start in tqdm(starts, desc="evaluate", disable=not progress, leave=False):
        batch = images[start : start + batch_size]
        batch_labels = labels[start : start + batch_size]
        with torch.no_grad():
            clean += int((pair_margin(network(batch), batch_labels) > 0).sum())
        for epsilon in epsilons:
            margins = pgd_min_margin(network, batch, batch_labels, epsilon=epsilon,
                                     generator=generator)
            robust[epsilon] += int((margins > 0).sum())
    count = len(images)
    return Evaluation(count=count, clean_accuracy=clean / count,
                      robust_accuracy={e: n / count for e, n in robust.items()})
