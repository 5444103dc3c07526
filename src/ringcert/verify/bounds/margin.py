"""A sound lower bound on the top-k margin over an epsilon box (docs/design.md section 2.5).

IBP bounds the margin rows with the trailing affine layers done exactly on the interval
bounds of their input (the "elision of the last layer" of Gowal et al. 2018). CROWN
pushes the rows of the top-k specification (``topk.py``) backward to the input through
the relaxations built on the CROWN intermediate bounds, and keeps the better of the two
per row; alpha-CROWN (``alpha.py``) then optimizes one row per set and keeps the better
per set, so lower bounds only rise from IBP to CROWN to alpha-CROWN.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ringcert.problem import Problem
from ringcert.verify.bounds.alpha import AlphaParams, optimize_sets
from ringcert.verify.bounds.crown import backward, concretize, minimizer, rules
from ringcert.verify.bounds.network import BoundMethod, NetworkBounds
from ringcert.verify.bounds.network import network_bounds as compute_network_bounds
from ringcert.verify.bounds.topk import topk_spec


@dataclass(frozen=True, eq=False)
class MarginBound:
    """``lower``: scalar sound lower bound on ``min_box m`` (differentiable in eps when eps
    requires grad); ``minimizer`` (C, H, W): the box point minimizing the final linear
    bound of the weakest set; ``per_set``: bound per candidate k-set, in the order of
    ``topk.candidate_sets``; ``alpha_params``: alpha-CROWN's optimized parameters (None for
    IBP and CROWN); ``set_rows`` (sets, n): per candidate set, the specification row
    (coefficients on the logits) with the best IBP / CROWN bound for it (branch and bound
    scores splits with the weakest set's and optimizes split multipliers on them; rows of
    skipped sets are arbitrary).
    """

    lower: torch.Tensor
    minimizer: torch.Tensor
    per_set: torch.Tensor
    set_rows: torch.Tensor
    alpha_params: AlphaParams | None = None


def margin_bound(problem: Problem, eps: torch.Tensor, *, method: BoundMethod, joint: bool = True,
                 network_bounds: NetworkBounds | None = None, grid: int = 4, alpha_steps: int = 20,
                 alpha_lr: float = 0.1, alpha_start: AlphaParams | None = None,
                 box: tuple[torch.Tensor, torch.Tensor] | None = None,
                 skip_sets: torch.Tensor | None = None) -> MarginBound:
    """Lower bound on the top-k margin over ``problem.box(eps)``.

    ``joint``: bound the candidate k-sets jointly (convex combinations on a simplex grid of
    resolution ``grid``, optimized by alpha-CROWN) rather than each class alone.
    ``network_bounds``: precomputed layer bounds on the same box (else computed here with
    IBP for IBP, CROWN otherwise). ``alpha_steps`` / ``alpha_lr``: alpha-CROWN's Adam;
    ``alpha_start``: its starting parameters (an earlier query's ``alpha_params``).
    ``box``: bound over this sub-box of ``problem.box(eps)`` instead (a branch of branch and
    bound, with ``network_bounds`` computed on it). ``skip_sets``: bool mask over the
    candidate sets whose bound the caller has already (a branch's parent proved them): rows
    that serve only those sets are not propagated, and their ``per_set`` entries are +inf.
    """
    network = problem.model
    lo, hi = problem.box(eps) if box is None else box
    with torch.set_grad_enabled(torch.is_grad_enabled() and lo.requires_grad):
        if network_bounds is None:
            layer_method = BoundMethod.IBP if method is BoundMethod.IBP else BoundMethod.CROWN
            network_bounds = compute_network_bounds(network, lo, hi, method=layer_method)
        inputs = [(lo, hi), *network_bounds.layers[:-1]]
        num_classes = network_bounds.layers[-1][0].shape[-1]
        spec = topk_spec(num_classes, problem.target, problem.k, joint=joint, grid=grid,
                         dtype=lo.dtype)
        if skip_sets is not None:
            spec = spec.restricted(~skip_sets)
        last = len(network) - 1
        tail = 1 + max((i for i, layer in enumerate(network) if not rules(layer).affine),
                       default=-1)
        tail_coef, tail_bias = backward(network, inputs, spec.rows, last=last, first=tail)
        row_lower = concretize(tail_coef, tail_bias, *inputs[tail])
        coef = None
        if method is not BoundMethod.IBP:
            coef, bias = backward(network, inputs, spec.rows, last=last)
            row_lower = torch.maximum(row_lower, concretize(coef, bias, lo, hi))
        per_set = spec.per_set(row_lower)
        best_rows = torch.where(spec.member, row_lower.detach()[:, None], -torch.inf).argmax(0)
        found = None
        if method is BoundMethod.ALPHA_CROWN:
            init = -spec.rows[best_rows].gather(1, torch.tensor(spec.sets, dtype=torch.long))
            found = optimize_sets(network, inputs, spec.sets, init, num_classes=num_classes,
                                  target=problem.target, steps=alpha_steps, lr=alpha_lr,
                                  start=alpha_start)
            crown_per_set, per_set = per_set, torch.maximum(per_set, found.lower)
        if skip_sets is not None:
            per_set = torch.where(skip_sets, torch.inf, per_set)
        weakest = int(per_set.detach().argmin())
        best_row = int(best_rows[weakest])
        weakest_coef = None if coef is None else coef[best_row]
        if found is not None and bool(found.lower[weakest] >= crown_per_set[weakest]):
            weakest_coef = found.coef[weakest]
        if weakest_coef is None:
            weakest_coef = _linearization(problem, spec.rows[best_row], lo, hi)
        point = minimizer(weakest_coef.detach(), lo.detach(), hi.detach())
        return MarginBound(lower=per_set.min(), minimizer=point, per_set=per_set,
                           alpha_params=None if found is None else found.params,
                           set_rows=spec.rows[best_rows])


def _linearization(problem: Problem, row: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
                   ) -> torch.Tensor:
    """Input gradient of ``row . F`` at the box centre (IBP has no input-linear bound)."""
    centre = ((lo + hi) / 2).detach().requires_grad_()
    with torch.enable_grad():
        value = problem.model(centre[None])[0] @ row
        (grad,) = torch.autograd.grad(value, centre)
    return grad
