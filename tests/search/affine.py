"""A network whose margin is affine in the input, with an exact verifier (test code only).

``F(z) = W flatten(z) + b`` with two classes, target 0, ``k = 1``: the margin is
``m(z) = a . z + c``. With the image at 0.5 everywhere and every ring's single-ring
limit below 0.5 (no clipping), ``min_box m = m0 - sum_d A_d eps_d`` with
``A_d = sum_{p in ring d} |a_p|``: the exact robust set is the simplex
``{eps >= 0 : A . eps < m0}`` (rings with ``A_d = 0`` are free).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ringcert.problem import Problem
from ringcert.verify.verdict import Verdict, Verifier
from ringcert.vocabulary import Status, VerifierKind

SIDE = 12
PAD = 1e-5


@dataclass(frozen=True)
class AffineCase:
    problem: Problem
    a: np.ndarray  # (H*W,) float64 margin weights
    ring_weight: np.ndarray  # A_d
    m0: float

    def exact_min_margin(self, eps: np.ndarray) -> float:
        lo, hi = self.problem.box(eps)
        lo, hi = lo.double().numpy().ravel(), hi.double().numpy().ravel()
        x = self.problem.image.double().numpy().ravel()
        return self.m0 + float(np.minimum(self.a * (lo - x), self.a * (hi - x)).sum())

    def inside(self, eps: np.ndarray) -> bool:
        return self.exact_min_margin(np.asarray(eps)) > 0


def affine_case(seed: int, *, free_ring: int | None = 3, weights: object = "uniform"
                ) -> AffineCase:
    generator = torch.Generator().manual_seed(seed)
    mask = np.zeros((SIDE, SIDE), dtype=bool)
    mask[1:3, 1:4] = True
    image = torch.full((1, SIDE, SIDE), 0.5)
    linear = nn.Linear(SIDE * SIDE, 2)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(2, SIDE * SIDE, generator=generator) * 0.1)
        model = nn.Sequential(nn.Flatten(), linear)
        from ringcert.problem import ring_map

        rings = ring_map(mask)
        if free_ring is not None:  # this ring cannot move the margin
            linear.weight[1].view(SIDE, SIDE)[torch.as_tensor(rings == free_ring)] = \
                linear.weight[0].view(SIDE, SIDE)[torch.as_tensor(rings == free_ring)]
        a = (linear.weight[0] - linear.weight[1]).double().numpy()
        ring_weight = np.bincount(rings.ravel(), weights=np.abs(a), minlength=rings.max() + 1)
        positive = ring_weight[ring_weight > 0]
        m0 = 0.4 * 0.5 * float(positive.min())  # every single-ring limit stays below 0.4
        x_dot = float(a @ image.double().numpy().ravel())
        linear.bias.copy_(torch.tensor([m0 - x_dot, 0.0]))
    problem = Problem.create(model=model, image=image, target=0, mask=mask, k=1, weights=weights)
    # m0 as the float32 model sees it
    m0 = float(problem.margin(image[None]).detach().double()[0])
    return AffineCase(problem=problem, a=a, ring_weight=ring_weight, m0=m0)


class ExactAffineVerifier(Verifier):
    """Complete for the affine case: the minimizing corner is the weakest point."""

    kind = VerifierKind.MILP

    def __init__(self, case: AffineCase) -> None:
        self.case = case
        self.calls = 0
        self.limits: list[float | None] = []  # the time limit each call was given

    def _run(self, problem: Problem, eps: torch.Tensor, *, hint: Verdict | None,
             warm_start: Verdict | None, time_limit: float | None) -> Verdict:
        self.calls += 1
        self.limits.append(time_limit)
        lo, hi = problem.box(eps)
        a = torch.as_tensor(self.case.a, dtype=torch.float32).reshape(problem.image.shape)
        corner = torch.where(a > 0, lo, hi)
        value = self.case.exact_min_margin(eps.numpy())
        if value > PAD:
            status = Status.ROBUST
        elif value <= 0:
            status = Status.NOT_ROBUST
        else:
            status = Status.UNKNOWN
        return Verdict(status=status, verifier=self.kind,
                       bound=value - PAD if status is Status.ROBUST else None,
                       counterexample=corner if status is Status.NOT_ROBUST else None,
                       weakest_points=corner[None], weakest_margins=torch.tensor([value]))


class FlakyVerifier(Verifier):
    """The exact verifier that answers UNKNOWN at random (an incomplete verifier)."""

    kind = VerifierKind.CROWN

    def __init__(self, exact: ExactAffineVerifier, *, rate: float, seed: int) -> None:
        self.exact = exact
        self.rate = rate
        self.rng = np.random.default_rng(seed)

    def _run(self, problem: Problem, eps: torch.Tensor, *, hint: Verdict | None,
             warm_start: Verdict | None, time_limit: float | None) -> Verdict:
        verdict = self.exact._run(problem, eps, hint=hint, warm_start=warm_start, time_limit=time_limit)
        if self.rng.random() < self.rate:
            return Verdict(status=Status.UNKNOWN, verifier=self.kind,
                           weakest_points=verdict.weakest_points,
                           weakest_margins=verdict.weakest_margins)
        return verdict
