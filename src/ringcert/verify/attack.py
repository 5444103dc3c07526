"""PGD falsifier on the top-k margin inside the epsilon box (NOT_ROBUST or UNKNOWN only).

Projected gradient descent with random restarts (Madry et al., ICLR 2018), run on the
margin ``m(z) = F_t(z) - kth max_{c != t} F_c(z)`` with all restarts batched; the first
restart starts at the image itself, the others uniformly in the box. Step sizes are per
pixel (a fraction of the box width) so that rings with different epsilons move at the
same relative speed. Its lowest-margin points are the weakest points.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ringcert.problem import Problem
from ringcert.verify.verdict import Status, Verdict, Verifier, VerifierKind


@dataclass(frozen=True, kw_only=True)
class AttackResult:
    points: torch.Tensor  # (N, C, H, W), best point of each restart
    margins: torch.Tensor  # (N,)


def pgd_attack(problem: Problem, eps: torch.Tensor, *, restarts: int, steps: int,
               step_fraction: float, seed: int, start: torch.Tensor | None = None) -> AttackResult:
    """Minimize the margin over the box; best point per restart (sorted by margin)."""
    lo, hi = problem.box(eps)
    width = hi - lo
    generator = torch.Generator().manual_seed(seed)
    shape = (restarts, *problem.image.shape)
    z = lo + torch.rand(shape, generator=generator) * width
    z[0] = problem.image if start is None else start.reshape(problem.image.shape)
    z = torch.max(torch.min(z, hi), lo)
    best_z = z.clone()
    best_m = torch.full((restarts,), torch.inf)
    step = step_fraction * width
    for index in range(steps + 1):
        z.requires_grad_(True)
        margin = problem.margin(z)
        better = margin.detach() < best_m
        best_m = torch.where(better, margin.detach(), best_m)
        best_z[better] = z.detach()[better]
        if index == steps or bool((best_m <= 0).any()):
            break
        (grad,) = torch.autograd.grad(margin.sum(), z)
        decay = 1.0 if index < steps // 2 else 0.5  # halve the step for the last half
        with torch.no_grad():
            z = torch.max(torch.min(z - decay * step * grad.sign(), hi), lo)
    order = torch.argsort(best_m)
    return AttackResult(points=best_z[order], margins=best_m[order])


class Attack(Verifier):
    """PGD falsifier. Settings: restarts, steps, relative step size, seed."""

    kind = VerifierKind.ATTACK

    def __init__(self, *, restarts: int = 8, steps: int = 40, step_fraction: float = 0.1,
                 seed: int = 0, keep: int = 8) -> None:
        self.restarts = restarts
        self.steps = steps
        self.step_fraction = step_fraction
        self.seed = seed
        self.keep = keep

    def _run(self, problem: Problem, eps: torch.Tensor, hint: Verdict | None) -> Verdict:
        start = None
        if hint is not None and hint.weakest_points is not None and len(hint.weakest_points):
            start = hint.weakest_points[0]
        result = pgd_attack(problem, eps, restarts=self.restarts, steps=self.steps,
                            step_fraction=self.step_fraction, seed=self.seed, start=start)
        points, margins = result.points[: self.keep], result.margins[: self.keep]
        found = bool(margins[0] <= 0)
        return Verdict(status=Status.NOT_ROBUST if found else Status.UNKNOWN,
                       verifier=self.kind, counterexample=points[0] if found else None,
                       weakest_points=points, weakest_margins=margins,
                       stats={"restarts": self.restarts, "best_margin": float(margins[0])})
