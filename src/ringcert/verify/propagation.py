"""Incomplete verifiers from bound propagation: IBP, CROWN and alpha-CROWN (DESIGN.md 2).

Each computes a sound lower bound on the top-k margin over the epsilon box
(``bounds.margin_bound``) and answers ROBUST when the bound, minus a float32 padding,
is positive; otherwise UNKNOWN (never NOT_ROBUST: a negative bound is no counterexample).
The weakest point is the box point minimizing the final linear bound.
"""

from __future__ import annotations

import torch

from ringcert.problem import Problem
from ringcert.verify.bounds import BoundMethod, margin_bound, network_bounds
from ringcert.verify.verdict import Status, Verdict, Verifier, VerifierKind


class _BoundVerifier(Verifier):
    method: BoundMethod

    def __init__(self, *, joint: bool = True, grid: int = 4, abs_padding: float = 1e-4,
                 rel_padding: float = 1e-5) -> None:
        self.joint = joint
        self.grid = grid
        self.abs_padding = abs_padding
        self.rel_padding = rel_padding

    def _extra(self) -> dict[str, float | int]:
        return {}

    def _run(self, problem: Problem, eps: torch.Tensor, hint: Verdict | None) -> Verdict:
        with torch.no_grad():
            lo, hi = problem.box(eps)
            layer_method = BoundMethod.IBP if self.method is BoundMethod.IBP else BoundMethod.CROWN
            bounds = network_bounds(problem.model, lo, hi, method=layer_method)
            result = margin_bound(problem, eps, method=self.method, joint=self.joint,
                                  network_bounds=bounds, grid=self.grid, **self._extra())
            logits = problem.logits()
            padding = self.abs_padding + self.rel_padding * float(logits.abs().max())
            bound = float(result.lower) - padding
            point = result.minimizer[None]
            margin = problem.margin(point)
        return Verdict(status=Status.ROBUST if bound > 0 else Status.UNKNOWN, verifier=self.kind,
                       bound=bound, weakest_points=point, weakest_margins=margin,
                       stats={"unstable": bounds.unstable(problem.model),
                              "raw_bound": float(result.lower), "padding": padding})


class Ibp(_BoundVerifier):
    """Interval bound propagation (Gowal et al. 2018), last affine layers exact."""

    kind = VerifierKind.IBP
    method = BoundMethod.IBP


class Crown(_BoundVerifier):
    """CROWN / DeepPoly linear relaxation (Zhang et al. 2018; Singh et al. 2019)."""

    kind = VerifierKind.CROWN
    method = BoundMethod.CROWN


class AlphaCrown(_BoundVerifier):
    """alpha-CROWN (Xu et al. 2021): CROWN with slopes and set weights optimized by Adam."""

    kind = VerifierKind.ALPHA_CROWN
    method = BoundMethod.ALPHA_CROWN

    def __init__(self, *, joint: bool = True, grid: int = 4, steps: int = 20, lr: float = 0.1,
                 abs_padding: float = 1e-4, rel_padding: float = 1e-5) -> None:
        super().__init__(joint=joint, grid=grid, abs_padding=abs_padding, rel_padding=rel_padding)
        self.steps = steps
        self.lr = lr

    def _extra(self) -> dict[str, float | int]:
        return {"alpha_steps": self.steps, "alpha_lr": self.lr}
