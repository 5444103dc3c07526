"""Projected Adam ascent on a bound, keeping each row's best value (the optimizer of
alpha-CROWN, beta-CROWN and the MILP's second-conv tightening).

alpha-CROWN (Xu et al. 2021) and beta-CROWN (Wang et al. 2021) both maximize a batch of
bounds, one per row, over relaxation parameters whose every feasible value gives a sound
bound; gradient steps may overshoot, so each row keeps the best value seen and the
parameters that gave it. Adam (Kingma & Ba, ICLR 2015) is written out here rather than taken
from ``torch.optim``: the same update, without the optimizer object's construction cost
(branch and bound builds one per branch) and its first-use import of torch's compiler
stack (seconds).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

BETAS = (0.9, 0.999)
EPS = 1e-8


@dataclass(frozen=True, eq=False)
class Ascent:
    """``best`` (rows,): the highest value per row over the evaluated points; ``params``: the
    parameters at which each row reached it (row-wise, same shapes as the start)."""

    best: torch.Tensor
    params: list[torch.Tensor]


def maximize(start: Sequence[torch.Tensor], objective: Callable[..., torch.Tensor], *,
             steps: int, lr: float, project: Callable[..., None]) -> Ascent:
    """``steps`` Adam steps raising ``objective(*params)`` (one value per row; every
    parameter has the rows on its first dimension), ``project(*params)`` after each step
    (in place, e.g. a clamp onto the feasible set). The start and every step are evaluated:
    ``steps + 1`` objective calls, and the result is never below the start's value."""
    params = [p.detach().clone() for p in start]
    first = [torch.zeros_like(p) for p in params]
    second = [torch.zeros_like(p) for p in params]
    best: torch.Tensor | None = None
    best_params = [p.clone() for p in params]
    for step in range(steps + 1):
        last = step == steps
        with torch.set_grad_enabled(not last):  # the last evaluation needs no graph
            live = [p.requires_grad_(not last) for p in params]
            value = objective(*live)
            grads = None if last else torch.autograd.grad(value.sum(), live, allow_unused=True)
        value = value.detach()
        better = torch.ones_like(value, dtype=torch.bool) if best is None else value > best
        best = value if best is None else torch.where(better, value, best)
        for kept, p in zip(best_params, params, strict=True):
            kept[better] = p.detach()[better]
        if grads is None:  # the last step
            break
        params = [p.detach() for p in params]
        correction1, correction2 = 1 - BETAS[0] ** (step + 1), 1 - BETAS[1] ** (step + 1)
        for p, grad, m, v in zip(params, grads, first, second, strict=True):
            if grad is None:
                continue
            m.mul_(BETAS[0]).add_(grad, alpha=1 - BETAS[0])
            v.mul_(BETAS[1]).addcmul_(grad, grad, value=1 - BETAS[1])
            denom = (v.sqrt() / correction2 ** 0.5).add_(EPS)
            p.addcdiv_(m, denom, value=lr / correction1)  # ascent: along the gradient
        with torch.no_grad():
            project(*params)
    assert best is not None
    return Ascent(best=best, params=best_params)
