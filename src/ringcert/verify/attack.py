"""PGD falsifier on the top-k margin inside the epsilon box (NOT_ROBUST or UNKNOWN only).

Projected gradient descent with random restarts (Madry et al., ICLR 2018), run on the
margin ``m(z) = F_t(z) - kth max_{c != t} F_c(z)`` with all restarts batched; the first
restart starts at the image itself, the others uniformly in the box. Step sizes are per
pixel (a fraction of the box width) so that rings with different epsilons move at the
same relative speed. Its lowest-margin points are the weakest points.

The margin's gradient only follows the class currently k-th, so a restart can chase one
set of classes and stall short of another that would overtake the target together.
``targeted`` restarts each aim at one k-set ``S`` of other classes, minimizing
``F_t - min_{c in S} F_c`` (the margin if exactly ``S`` is to beat the target; the
per-target loss of Carlini & Wagner 2017 applied to sets); the sets are the ones whose
clean logits are highest. Every restart's best point is still judged by the true margin.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import torch

from ringcert.problem import Problem
from ringcert.verify.verdict import Verdict, Verifier, start_point
from ringcert.vocabulary import Status, VerifierKind


@dataclass(frozen=True, kw_only=True)
class AttackResult:
    points: torch.Tensor  # (N, C, H, W), best point of each restart
    margins: torch.Tensor  # (N,)


def likely_sets(problem: Problem, count: int) -> torch.Tensor:
    """``count`` k-sets of other classes (count, k), by decreasing sum of clean logits (the
    sets closest to overtaking the target together), cycling if there are fewer; of several
    targets, the weakest one's."""
    logits = problem.logits()[0]
    target = problem.weakest_target()
    others = [c for c in torch.argsort(logits, descending=True).tolist() if c != target]
    pool = others[: problem.k + 3]
    ranked = sorted(combinations(pool, problem.k), key=lambda s: -float(logits[list(s)].sum()))
    return torch.tensor([ranked[i % len(ranked)] for i in range(count)], dtype=torch.long)


def pgd_attack(problem: Problem, eps: torch.Tensor, *, restarts: int, steps: int,
               step_fraction: float, seed: int, start: torch.Tensor | None = None,
               targeted: int = 0) -> AttackResult:
    """Minimize the margin over the box; best point per restart (sorted by margin). The
    last ``targeted`` of the ``restarts`` each aim at one of ``likely_sets``."""
    lo, hi = problem.box(eps)
    points, margins = _descend(problem, lo[None], hi[None], restarts=restarts, steps=steps,
                               step_fraction=step_fraction, seed=seed, start=start,
                               targeted=targeted)
    order = torch.argsort(margins)
    return AttackResult(points=points[order], margins=margins[order])


def pgd_boxes(problem: Problem, lo: torch.Tensor, hi: torch.Tensor, *, restarts: int, steps: int,
              step_fraction: float, seed: int, targeted: int = 0) -> AttackResult:
    """``pgd_attack`` on many boxes at once (``lo``, ``hi``: (B, C, H, W)), one batch for all
    of them (the frontier's bisection rounds): the best point and margin of each box."""
    points, margins = _descend(problem, lo, hi, restarts=restarts, steps=steps,
                               step_fraction=step_fraction, seed=seed, start=None, targeted=targeted)
    per_box = margins.view(len(lo), restarts)
    best = per_box.argmin(dim=1)
    rows = torch.arange(len(lo)) * restarts + best
    return AttackResult(points=points[rows], margins=margins[rows])


def _descend(problem: Problem, lo: torch.Tensor, hi: torch.Tensor, *, restarts: int, steps: int,
             step_fraction: float, seed: int, start: torch.Tensor | None, targeted: int
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Best point and margin of every restart of every box (box-major rows). A box's
    restarts stop as soon as one of them breaks it (its point has margin <= 0): the steps
    after that are spent on the boxes still open only, which is what makes a frontier
    bisection round cheap (the boxes above the frontier break within a few steps)."""
    if not 0 <= targeted <= restarts:
        raise ValueError("targeted must be between 0 and restarts")
    boxes = len(lo)
    lo, hi = lo.repeat_interleave(restarts, dim=0), hi.repeat_interleave(restarts, dim=0)
    width = hi - lo
    generator = torch.Generator().manual_seed(seed)
    z = lo + torch.rand(lo.shape, generator=generator) * width
    first = problem.image if start is None else start.reshape(problem.image.shape)
    z[::restarts] = first
    z = torch.max(torch.min(z, hi), lo)
    aimed_rows = (torch.arange(boxes * restarts) % restarts) >= restarts - targeted
    sets = None  # per row: the k-set an aimed row attacks (unused on the other rows)
    aim = problem.targets[0]  # the target the aimed rows keep out of the top-k
    if targeted:
        sets = torch.zeros((boxes * restarts, problem.k), dtype=torch.long)
        sets[aimed_rows] = likely_sets(problem, targeted).repeat(boxes, 1)
        aim = problem.weakest_target()
    best_z = z.clone()
    best_m = torch.full((boxes * restarts,), torch.inf)
    step = step_fraction * width
    active = torch.arange(boxes * restarts)  # rows of the boxes not yet broken
    with torch.enable_grad():  # callers may be inside no_grad (the bound verifiers are)
        for index in range(steps + 1):
            z_active = z[active].requires_grad_(True)
            logits = problem.model(z_active)
            margin = problem.margin_of(logits)
            loss = margin
            if sets is not None:
                aimed_here = aimed_rows[active]
                aimed = logits[aimed_here]
                aimed = aimed[:, aim] - aimed.gather(1, sets[active][aimed_here]).min(dim=1).values
                loss = margin.masked_scatter(aimed_here, aimed)
            better = margin.detach() < best_m[active]
            rows = active[better]
            best_m[rows] = margin.detach()[better]
            best_z[rows] = z_active.detach()[better]
            open_boxes = ~(best_m.view(boxes, restarts) <= 0).any(dim=1)
            keep = open_boxes[active // restarts]
            if index == steps or not bool(keep.any()):
                break
            (grad,) = torch.autograd.grad(loss.sum(), z_active)
            decay = 1.0 if index < steps // 2 else 0.5  # halve the step for the last half
            with torch.no_grad():
                moved = torch.max(torch.min(z_active - decay * step[active] * grad.sign(), hi[active]),
                                  lo[active])
                z[active[keep]] = moved[keep]
            active = active[keep]
    return best_z, best_m


def falsify(problem: Problem, eps: torch.Tensor, start: torch.Tensor | None, *, restarts: int,
            steps: int, seed: int) -> AttackResult:
    """The complete verifiers' stronger PGD phase before they search: from ``start`` (the
    best point the hint or warm start offers), half the restarts targeted at ``likely_sets``
    (near the boundary, half-targeted restarts refute more queries than untargeted ones at
    the same cost: benchmarks/README.md, complete stage)."""
    return pgd_attack(problem, eps, restarts=restarts, steps=steps, step_fraction=0.1, seed=seed,
                      start=start, targeted=restarts // 2)


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

    def _run(self, problem: Problem, eps: torch.Tensor, *, hint: Verdict | None,
             warm_start: Verdict | None, time_limit: float | None) -> Verdict:
        result = pgd_attack(problem, eps, restarts=self.restarts, steps=self.steps,
                            step_fraction=self.step_fraction, seed=self.seed,
                            start=start_point(hint, warm_start))
        points, margins = result.points[: self.keep], result.margins[: self.keep]
        found = bool(margins[0] <= 0)
        return Verdict(status=Status.NOT_ROBUST if found else Status.UNKNOWN,
                       verifier=self.kind, counterexample=points[0] if found else None,
                       weakest_points=points, weakest_margins=margins,
                       stats={"restarts": self.restarts, "best_margin": float(margins[0])})
