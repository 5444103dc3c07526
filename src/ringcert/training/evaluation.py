"""Clean, PGD-robust and CROWN-certified top-k accuracy on DOUBLE-MNIST and its N-object form.

An image of N objects counts as correct when all N digits are in the top-N (top-2 for
DOUBLE-MNIST). The robust accuracy attacks the whole image with L-infinity PGD that minimizes
the smallest of the digits' top-k margins, i.e. tries to push any digit out of the top-k. The
certified accuracy counts the images on which CROWN proves every digit in the top-k over the whole
image's L-infinity ball, with the joint top-k margin bound the verifiers use (issue 16: a
certified-accuracy column for every model); it is a lower bound on the true robust accuracy,
as the PGD one is an upper bound.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ringcert.errors import RingcertError
from ringcert.problem import Problem, topk_margin

DEFAULT_EPSILONS = (0.01, 0.03, 0.05, 0.1)
CERTIFIED_COUNT = 200
"""``ringcert evaluate``'s default for the images the certified accuracy is computed on (the
first of the evaluated ones): two CROWN bounds per image and epsilon cost about 0.1 s on the
shipped models."""


@dataclass(frozen=True)
class Evaluation:
    """Accuracies of one model; ``k`` = the number of objects per image (the top-k counted)."""

    k: int
    count: int
    clean_accuracy: float
    robust_accuracy: dict[float, float]
    certified_count: int
    certified_accuracy: dict[float, float]

    def to_json(self) -> dict[str, object]:
        k = self.k
        return {"count": self.count, f"clean_top{k}_accuracy": self.clean_accuracy,
                f"pgd_robust_top{k}_accuracy": {str(e): a for e, a in self.robust_accuracy.items()},
                "certified_count": self.certified_count,
                f"crown_certified_top{k}_accuracy": {str(e): a for e, a in self.certified_accuracy.items()}}


def pair_margin(logits: torch.Tensor, labels: torch.Tensor, k: int | None = None) -> torch.Tensor:
    """The smallest top-k margin of the labelled digits (B,); > 0 iff all are in the top-k.
    ``labels`` (B, N); ``k`` defaults to the number of objects N (top-2 for DOUBLE-MNIST)."""
    k = labels.shape[1] if k is None else k
    margins = [topk_margin(logits, labels[:, column], k) for column in range(labels.shape[1])]
    return torch.stack(margins).amin(dim=0)


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


def certified_images(network: nn.Sequential, images: torch.Tensor, labels: torch.Tensor, *,
                     epsilons: tuple[float, ...], k: int | None = None, progress: bool = False
                     ) -> dict[float, int]:
    """Per epsilon, how many images CROWN certifies: every labelled object in the top-k (k
    defaults to the number of objects) over
    the whole image's L-infinity ball (all rings at ``epsilon``; an object not in the top-k
    of the clean image is never certified)."""
    from tqdm import tqdm

    from ringcert.verify.propagation import Crown

    crown = Crown()
    k = labels.shape[1] if k is None else k
    mask = np.zeros(tuple(images.shape[-2:]), dtype=bool)
    mask[0, 0] = True  # rings only index pixels here: every ring gets the same epsilon
    certified = dict.fromkeys(epsilons, 0)
    for image, objects in tqdm(list(zip(images, labels, strict=True)), desc="certify",
                               disable=not progress, leave=False):
        try:
            problems = [Problem.create(model=network, image=image, target=int(label), mask=mask, k=k)
                        for label in objects]
        except RingcertError:
            continue  # an object outside the clean top-k
        for epsilon in epsilons:
            if all(crown.verify(problem, [epsilon] * problem.num_rings).robust for problem in problems):
                certified[epsilon] += 1
    return certified


def evaluate(network: nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
             epsilons: tuple[float, ...] = DEFAULT_EPSILONS, batch_size: int = 250,
             seed: int = 0, progress: bool = False,
             certified_count: int = 0) -> Evaluation:
    """Clean and PGD-robust top-k accuracy of ``network`` on float images (B, 1, H, W) with
    labels (B, N), k = N, and its CROWN-certified top-k accuracy on the first
    ``certified_count`` of them (none by default; training certifies CERTIFIED_COUNT)."""
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
    checked = min(count, certified_count)
    certified = certified_images(network, images[:checked], labels[:checked], epsilons=epsilons,
                                 progress=progress)
    return Evaluation(k=labels.shape[1], count=count, clean_accuracy=clean / count,
                      robust_accuracy={e: n / count for e, n in robust.items()},
                      certified_count=checked,
                      certified_accuracy={e: n / checked for e, n in certified.items()} if checked else {})
