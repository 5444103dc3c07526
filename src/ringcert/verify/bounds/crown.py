"""CROWN backward bound propagation (Zhang et al. 2018; DeepPoly, Singh et al. 2019).

A linear function ``A . y_j`` of the output of layer ``j`` is pushed backward through the
layers, each step replacing it with a linear lower bound in the layer's input (exact for
affine layers, a relaxation for ReLU and MaxPool, which use the bounds already known on
their inputs), until it is a linear function of the network input; its minimum over the
box is then closed-form. Many rows ``A`` (neurons, specification rows) go back together
as one batch.

Intermediate bounds (:func:`crown_layer_bounds`) run layer by layer: IBP first, then CROWN
on the inputs of ReLU / MaxPool layers, only for the neurons IBP leaves unstable (a stable
ReLU neuron needs nothing), in chunks so that the batched backward pass stays small.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from ringcert.layers.base import LayerType
from ringcert.layers.registry import layer_type
from ringcert.verify.bounds import patches

Interval = tuple[torch.Tensor, torch.Tensor]

CHUNK_ROWS = 1024
"""Rows per backward batch for intermediate bounds (bounds memory: rows x layer size)."""

FLOAT_SLACK = 1e-5
"""Relative widening of CROWN intermediate bounds against float32 rounding."""


def rules(layer: nn.Module) -> LayerType:
    """The bound propagation rules of ``layer`` (its layer type); a one-line
    ``RingcertError`` for an unsupported layer."""
    return layer_type(layer, "bound propagation")


def concretize(coef: torch.Tensor, bias: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor
               ) -> torch.Tensor:
    """Minimum of ``coef . x + bias`` over ``x`` in ``[lower, upper]``, one per row."""
    low = coef.clamp(min=0) * lower + coef.clamp(max=0) * upper
    return low.flatten(1).sum(1) + bias


def minimizer(coef: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """The box corner minimizing ``coef . x`` (one per row)."""
    return torch.where(coef > 0, lower, upper)


def backward(network: nn.Sequential, inputs: Sequence[Interval], coef: torch.Tensor, *,
             last: int, first: int = 0, alphas: Mapping[int, torch.Tensor] | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Push ``coef`` (S, *shape of layer ``last``'s output) back to the input of ``first``.

    ``inputs[i]`` are bounds on the input of layer ``i``. Returns ``(A, bias)`` with
    ``coef . y_last >= A . x_first + bias`` on those bounds.
    """
    bias = coef.new_zeros(coef.shape[0])
    for index in range(last, first - 1, -1):
        layer = network[index]
        alpha = None if alphas is None else alphas.get(index)
        coef, step_bias = rules(layer).backward(layer, coef, *inputs[index], alpha=alpha)
        bias = bias + step_bias
    return coef, bias


def _needs_crown(ops: Sequence[LayerType], index: int) -> bool:
    """IBP is exact up to layer ``index`` when no relaxation and at most one mixing affine
    layer come before; CROWN can only help otherwise."""
    if not ops[index].affine:
        return False
    if any(not op.affine for op in ops[:index]):
        return True
    return sum(not op.elementwise for op in ops[: index + 1]) > 1


def _full_size_bounds(network: nn.Sequential, inputs: Sequence[Interval], index: int,
                      chosen: torch.Tensor, shape: torch.Size) -> Interval:
    """CROWN lower and upper bounds of the neurons ``chosen`` (flat indices into layer
    ``index``'s output), one-hot rows pushed back at full size (any layer types)."""
    size = shape.numel()
    lowers, uppers = [], []
    for start in range(0, chosen.numel(), CHUNK_ROWS // 2):
        part = chosen[start:start + CHUNK_ROWS // 2]
        count = part.numel()
        coef = inputs[0][0].new_zeros(2 * count, size)
        rows = torch.arange(count)
        coef[rows, part] = 1.0
        coef[rows + count, part] = -1.0
        a_in, bias = backward(network, inputs, coef.reshape(2 * count, *shape), last=index)
        found = concretize(a_in, bias, *inputs[0])
        lowers.append(found[:count])
        uppers.append(-found[count:])
    return torch.cat(lowers), torch.cat(uppers)


def _refine(network: nn.Sequential, inputs: Sequence[Interval], index: int,
            bounds: Interval, select: torch.Tensor, *, use_patches: bool = True) -> Interval:
    """Tighten ``bounds`` on the output of layer ``index`` with CROWN for ``select``
    (on receptive-field patches where ``patches.applies``, else at full size)."""
    lower, upper = bounds
    chosen = select.flatten().nonzero()[:, 0]
    if chosen.numel() == 0:
        return bounds
    flat_l, flat_u = lower.flatten(), upper.flatten()
    compute = (patches.patch_bounds if use_patches and patches.applies(network, inputs, index)
               else _full_size_bounds)
    new_l, new_u = compute(network, inputs, index, chosen, lower.shape)
    slack_l = FLOAT_SLACK * (1 + new_l.detach().abs())
    slack_u = FLOAT_SLACK * (1 + new_u.detach().abs())
    flat_l = flat_l.index_put((chosen,), torch.maximum(flat_l[chosen], new_l - slack_l))
    flat_u = flat_u.index_put((chosen,), torch.minimum(flat_u[chosen], new_u + slack_u))
    return flat_l.reshape(lower.shape), flat_u.reshape(upper.shape)


def ibp_layer_bounds(network: nn.Sequential, lo: torch.Tensor, hi: torch.Tensor) -> list[Interval]:
    """Interval bounds on every layer output (Gowal et al. 2018)."""
    bounds: list[Interval] = []
    current = (lo, hi)
    for layer in network:
        current = rules(layer).ibp(layer, *current)
        bounds.append(current)
    return bounds


def crown_layer_bounds(network: nn.Sequential, lo: torch.Tensor, hi: torch.Tensor, *,
                       use_patches: bool = True, given: Mapping[int, Interval] | None = None
                       ) -> list[Interval]:
    """CROWN bounds on the inputs of every ReLU / MaxPool layer and on the final output,
    IBP from those elsewhere; every bound lies inside the IBP bound of the same layer.

    ``use_patches=False`` forces the full-size backward pass everywhere (the reference the
    receptive-field patch pass is tested against). ``given[i]``: sound bounds on layer
    ``i``'s output from elsewhere (``envelope``); they replace that layer's and the later
    layers are bounded on them."""
    ops = [rules(layer) for layer in network]
    plain = ibp_layer_bounds(network, lo, hi)
    inputs: list[Interval] = [(lo, hi)]
    bounds: list[Interval] = []
    for index, layer in enumerate(network):
        current = ops[index].ibp(layer, *inputs[index])
        current = (torch.maximum(current[0], plain[index][0]), torch.minimum(current[1], plain[index][1]))
        if given is not None and index in given:
            current = given[index]
        else:
            select = _crown_select(network, ops, index, current)
            if select is not None:
                current = _refine(network, inputs, index, current, select, use_patches=use_patches)
        bounds.append(current)
        inputs.append(current)
    return bounds


def _crown_select(network: nn.Sequential, ops: Sequence[LayerType], index: int,
                  current: Interval) -> torch.Tensor | None:
    """The neurons of layer ``index``'s output worth a CROWN bound (None: none are): on the
    inputs of ReLU / MaxPool layers and on the output, where IBP is not exact already."""
    last = index == len(network) - 1
    feeds_relaxation = not last and not ops[index + 1].affine
    if not (last or feeds_relaxation) or not _needs_crown(ops, index):
        return None
    lower, upper = current
    select = upper > lower
    if not last and isinstance(network[index + 1], nn.ReLU):
        # stable neurons need nothing, unless the ReLU feeds a max-pool, whose
        # relaxation uses the width of active neurons too
        feeds_pool = index + 2 < len(network) and not ops[index + 2].affine
        select = (lower < 0) & (upper > 0) | (feeds_pool & select & (lower >= 0))
    return select


def select_refined(network: nn.Sequential, index: int, current: Interval) -> torch.Tensor | None:
    """The neurons of layer ``index`` that ``crown_layer_bounds`` refines (None: none)."""
    return _crown_select(network, [rules(layer) for layer in network], index, current)


def _reach(op: LayerType, layer: nn.Module, mask: torch.Tensor) -> torch.Tensor:
    """Outputs of ``layer`` that depend on an input where ``mask`` (0/1 floats) is set: the
    interval ``[-mask, mask]`` pushed through the layer is wide exactly there."""
    lower, upper = op.ibp(layer, -mask, mask)
    return (upper > lower).to(mask.dtype)


def branch_layer_bounds(network: nn.Sequential, lo: torch.Tensor, hi: torch.Tensor,
                        given: Sequence[Interval], *, start: int, changed: torch.Tensor
                        ) -> list[Interval] | None:
    """Layer bounds on a sub-domain of a branch and bound branch (``verify/bab/branching.py``).

    ``given[i]`` already bounds layer ``i``'s output on the sub-domain: the parent's bounds,
    with split neurons clamped to ``[max(l, 0), u]`` or ``[l, min(u, 0)]``. Layers before
    ``start`` keep them; from ``start`` on, each layer gets IBP from its new input bounds
    intersected with ``given`` (so never looser than the parent), then CROWN on the inputs
    of ReLU / MaxPool layers, for the neurons that depend on an element of ``changed`` (a
    mask on layer ``start``'s input: the clamped neuron or the split pixel; the CROWN bound
    of any other neuron is the parent's). The output layer keeps IBP (the margin bound does
    not use it). After Bunel et al., JMLR 2020, "Branch and bound for piecewise linear
    neural network verification". Returns None when a lower bound exceeds its upper bound
    beyond float slack: the sub-domain is empty.
    """
    ops = [rules(layer) for layer in network]
    bounds = list(given)
    reach = changed.to(lo.dtype)
    for index in range(start, len(network)):
        layer = network[index]
        inputs = [(lo, hi), *bounds[:index]]
        reach = _reach(ops[index], layer, reach)
        low, up = ops[index].ibp(layer, *inputs[index])
        current = (torch.maximum(low, given[index][0]), torch.minimum(up, given[index][1]))
        select = None if index == len(network) - 1 else _crown_select(network, ops, index, current)
        if select is not None:
            current = _refine(network, inputs, index, current, select & (reach > 0))
        gap = current[0] - current[1]
        if bool((gap > FLOAT_SLACK * (1 + current[0].abs() + current[1].abs())).any()):
            return None
        bounds[index] = current
    return bounds
