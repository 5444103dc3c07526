"""Beta-CROWN: a branch's split constraints in its CROWN bound (Wang et al., NeurIPS 2021,
"Beta-CROWN: efficient bound propagation with per-neuron split constraints").

A branch of branch and bound (``branching.py``) is the box points whose split neurons
``z_j`` (ReLU pre-activations, or max-pool inputs) satisfy ``s_j (z_j - t_j) >= 0`` (``s_j``
= +1 for an active split, -1 for an inactive one; threshold ``t_j``, 0 for a ReLU split).
Plain CROWN uses the splits only to clamp the split neurons' bounds; it minimizes over the
whole box, including points that violate them. For any multipliers ``beta_j >= 0``,
``f(x) >= f(x) - sum_j beta_j s_j (z_j(x) - t_j)`` on the branch, so the CROWN bound of the
right-hand side (``-beta_j s_j`` added to the coefficient of ``z_j`` when the backward pass
reaches the split layer, ``beta_j s_j t_j`` to the constant) is a sound bound on the branch,
and for ``beta = 0`` it is plain CROWN's. The bound is concave in ``beta``: projected Adam
steps (``bounds.ascent.maximize``) raise it, the best value per row is kept. Children start
from their parent's multipliers (a new split's at 0), as beta-CROWN does, so a few steps
per branch suffice.

The layer bounds stay those of the branch (CROWN on the clamped bounds); beta-CROWN's
optional optimization of the intermediate bounds with multipliers is not done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ringcert.verify.bab.split import Split
from ringcert.verify.bounds.ascent import maximize
from ringcert.verify.bounds.crown import Interval, backward, concretize


@dataclass(frozen=True, eq=False)
class BetaBound:
    """``lower`` (rows,): the best bound found per row; ``betas`` (rows, splits): its
    multipliers (a start for the children)."""

    lower: torch.Tensor
    betas: torch.Tensor


@dataclass(frozen=True)
class _Group:
    """The splits on one layer's input: their positions in the split list, neurons, signs
    and thresholds."""

    layer: int
    positions: torch.Tensor
    neurons: torch.Tensor
    signs: torch.Tensor
    thresholds: torch.Tensor


def _groups(splits: Sequence[Split], dtype: torch.dtype) -> list[_Group]:
    """Splits grouped by layer, the layer closest to the output first."""
    groups = []
    for layer in sorted({split.layer for split in splits}, reverse=True):
        at = [i for i, split in enumerate(splits) if split.layer == layer]
        groups.append(_Group(layer=layer, positions=torch.tensor(at, dtype=torch.long),
                             neurons=torch.tensor([splits[i].neuron for i in at], dtype=torch.long),
                             signs=torch.tensor([1.0 if splits[i].active else -1.0 for i in at],
                                                dtype=dtype),
                             thresholds=torch.tensor([splits[i].threshold for i in at], dtype=dtype)))
    return groups


def split_bound(network: nn.Sequential, box: Interval, layers: Sequence[Interval],
                rows: torch.Tensor, splits: Sequence[Split], *, steps: int, lr: float = 0.2,
                start: torch.Tensor | None = None) -> BetaBound:
    """Lower bounds of ``rows . F(x)`` (rows (R, classes)) over the branch with this box,
    these layer bounds (``layers[i]`` bounds layer ``i``'s output on the branch) and these
    splits, with ``steps`` Adam steps on the multipliers from ``start`` (R, len(splits);
    default 0, plain CROWN). Step 0 is evaluated too, so the result is never below the
    start's bound."""
    dtype = box[0].dtype
    inputs = [box, *layers[:-1]]
    rows = rows.to(dtype)
    groups = _groups(splits, dtype)
    if not groups:
        raise ValueError("split_bound needs at least one split")
    with torch.no_grad():  # the segment after the last split layer does not depend on beta
        head_coef, head_bias = backward(network, inputs, rows, last=len(network) - 1,
                                        first=groups[0].layer)
    beta = (torch.zeros(rows.shape[0], len(splits), dtype=dtype) if start is None
            else start.detach().to(dtype).clamp(min=0))
    found = maximize([beta], lambda b: _lagrangian_bound(network, inputs, head_coef, head_bias,
                                                         groups, b),
                     steps=steps, lr=lr, project=lambda b: b.clamp_(min=0.0))
    return BetaBound(lower=found.best, betas=found.params[0])


def _lagrangian_bound(network: nn.Sequential, inputs: Sequence[Interval], coef: torch.Tensor,
                      bias: torch.Tensor, groups: list[_Group], beta: torch.Tensor
                      ) -> torch.Tensor:
    """CROWN bound of ``rows . F - sum_j beta_j s_j (z_j - t_j)`` from the coefficients on the
    deepest split layer's input (``coef``, ``bias``) down to the input box."""
    end = None
    for group in groups:
        if end is not None:
            coef, step_bias = backward(network, inputs, coef, last=end, first=group.layer)
            bias = bias + step_bias
        weighted = beta[:, group.positions] * group.signs
        flat = coef.flatten(1).index_add(1, group.neurons, -weighted)
        coef, end = flat.reshape(coef.shape), group.layer - 1
        bias = bias + weighted @ group.thresholds
    coef, step_bias = backward(network, inputs, coef, last=end, first=0)
    return concretize(coef, bias + step_bias, *inputs[0])
