"""alpha-CROWN for the margin bound (Xu et al. 2021, "Fast and complete: enabling complete
neural network verification with rapid and massively parallel incomplete verifiers").

The lower slope of every unstable ReLU is a free parameter in [0, 1] (each gives a sound
relaxation), one per neuron and per candidate k-set; so is the weight of each max-pool
window's linear upper bound (``maxpool``), and the convex weights ``lambda`` of each set's
combination (softmax-parametrized). The parameters start at CROWN's choices
(``LayerType.initial_alpha``). A few projected Adam steps (``ascent.maximize``)
raise every set's bound; the best value of each set over the steps is kept.
Intermediate bounds stay the CROWN ones, which keeps a query to a few backward passes
of one batch of rows. The final evaluation reuses the optimized parameters as constants
on the (possibly epsilon-dependent) bounds, so the result stays differentiable in eps.

A search asks many queries on nearby boxes of one problem; their optimal slopes are
close, so the optimized parameters of one query can start the next (``start``). Any
slope in [0, 1] is a sound relaxation, so a start only changes speed, never soundness.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ringcert.verify.bounds.ascent import maximize
from ringcert.verify.bounds.crown import Interval, backward, concretize, rules
from ringcert.verify.bounds.topk import set_rows


@dataclass(frozen=True, eq=False)
class AlphaParams:
    """Optimized parameters: the relaxation parameters per layer index (ReLU lower slopes,
    max-pool upper-bound weights), each (sets, *shape), and the logits of each set's convex
    weights (sets, k)."""

    slopes: dict[int, torch.Tensor]
    weight_logits: torch.Tensor


@dataclass(frozen=True, eq=False)
class AlphaResult:
    lower: torch.Tensor  # (sets,) bound per candidate set
    coef: torch.Tensor  # (sets, *input shape) input coefficients of each set's bound
    params: AlphaParams  # the best parameters found (a start for a nearby query)


def _start_slopes(network: nn.Sequential, fixed: Sequence[Interval], count: int,
                  start: AlphaParams | None) -> dict[int, torch.Tensor]:
    slopes = {}
    for i, layer in enumerate(network):
        initial = rules(layer).initial_alpha(layer, *fixed[i])
        if initial is None:
            continue
        shape = (count, *initial.shape)
        given = None if start is None else start.slopes.get(i)
        if given is not None and tuple(given.shape) == shape:
            slopes[i] = given.to(initial.dtype).clamp(0.0, 1.0).clone()
        else:
            slopes[i] = initial.expand(*shape).clone()
    return slopes


def optimize_sets(network: nn.Sequential, inputs: Sequence[Interval], sets: list[tuple[int, ...]],
                  init_weights: torch.Tensor, *, num_classes: int, target: int, steps: int,
                  lr: float, start: AlphaParams | None = None) -> AlphaResult:
    """Optimize slopes and lambdas for one row per set; ``inputs[i]`` bound layer ``i``'s input.
    ``start``: parameters of an earlier query of the same network and sets (else CROWN's
    slopes and ``init_weights``)."""
    last = len(network) - 1
    fixed = [(low.detach(), up.detach()) for low, up in inputs]
    count = len(sets)
    slopes = _start_slopes(network, fixed, count, start)
    if start is not None and tuple(start.weight_logits.shape) == tuple(init_weights.shape):
        theta = start.weight_logits.detach().to(init_weights.dtype)
    else:
        theta = init_weights.detach().clamp_min(1e-3).log()
    layers = list(slopes)

    def objective(*params: torch.Tensor) -> torch.Tensor:
        rows = set_rows(sets, torch.softmax(params[-1], dim=1), num_classes, target)
        alphas = dict(zip(layers, params[:-1], strict=True))
        coef, bias = backward(network, fixed, rows, last=last, alphas=alphas)
        return concretize(coef, bias, *fixed[0])

    def project(*params: torch.Tensor) -> None:
        for slope in params[:-1]:
            slope.clamp_(0.0, 1.0)

    found = maximize([*slopes.values(), theta], objective, steps=steps, lr=lr, project=project)
    best_alphas = dict(zip(layers, found.params[:-1], strict=True))
    best_theta = found.params[-1]
    rows = set_rows(sets, torch.softmax(best_theta, dim=1), num_classes, target)
    coef, bias = backward(network, inputs, rows.to(inputs[0][0].dtype), last=last,
                          alphas=best_alphas)
    return AlphaResult(lower=concretize(coef, bias, *inputs[0]), coef=coef,
                       params=AlphaParams(slopes=best_alphas, weight_logits=best_theta))
