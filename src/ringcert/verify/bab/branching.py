"""Branches of the branch and bound (``search.py``): bounding one and splitting it.

A branch is a box (the epsilon box, or a part of it) plus a set of split neurons, each
fixed above or below a threshold: ReLU pre-activations at 0 (active or inactive), and
max-pool inputs at a window's second-largest upper bound (below). Its domain is the box
points that satisfy every split. Its bound is the CROWN margin bound (``margin_bound``) on
layer bounds valid on that domain: the parent's, with the split neuron clamped to
``[max(l, t), u]`` or ``[l, min(u, t)]`` and the layers after it recomputed
(``crown.branch_layer_bounds``). The clamped neuron's relaxation becomes exact, and later
bounds tighten. This is the ReLU-split branch and bound of Bunel et al., JMLR 2020, "Branch
and bound for piecewise linear neural network verification", with CROWN as the bounding
method as in alpha-beta-CROWN, and, for the sets CROWN leaves open, beta-CROWN's
multipliers for the split constraints (``beta.py``; Wang et al., NeurIPS 2021), which CROWN
alone ignores.

Which neuron to split: BaBSR-style (Bunel et al. 2020), the unstable neuron maximizing
``|A| * u (-l) / (u - l)``, with ``A`` its coefficient in the weakest set's linear bound
and the second factor the ReLU triangle's intercept; or the widest unstable neuron of the
ReLU layer closest to the output. With BaBSR, max-pool windows compete by the same kind of
score, ``|A| * (u_t - u_(2))`` (``A``: the coefficient of the window's output, ``t``: the
input with the largest upper bound, ``u_(2)``: the second largest), split on ``x_t`` at
``u_(2)``: above it ``x_t`` is the max, exactly, below it the window's upper bound drops to
``u_(2)`` (``maxpool.split_points``). On the seed classifier the max-pool relaxation is most
of the gap (at the minimizer of boundary queries' CROWN bounds, 50-90% of the difference
between the margin and its bound comes from the max-pool, and 5-20 windows hold 90% of
that), which ReLU splits do not touch. Once nothing is left to split, the box is bisected
along its widest pixel (input splitting, as in ReluVal: Wang et al., USENIX Security 2018):
every width shrinks, and with it the relaxations' error, so the search settles every query
whose margin is not within the padding of zero, given the time. (Splitting along the
largest ``|A| * width`` instead can neglect a pixel the bound's row ignores but whose width
keeps a max-pool relaxation loose.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from ringcert.layers.maxpool import split_points
from ringcert.problem import Problem
from ringcert.verify.bab.beta import split_bound
from ringcert.verify.bab.split import Split, SplitRule
from ringcert.verify.bounds import BoundMethod, NetworkBounds, margin_bound
from ringcert.verify.bounds.crown import Interval, backward, branch_layer_bounds


@dataclass(frozen=True, eq=False)
class Branch:
    """A bounded branch: ``lower`` is a sound lower bound on the margin over its domain
    (before padding), the smallest of ``per_set`` (one per candidate k-set); ``minimizer``
    the box point minimizing the linear bound of the weakest set CROWN found, ``row`` the
    weakest set's specification row; ``layers[i]`` bounds on layer ``i``'s output;
    ``betas`` (sets, splits) the split multipliers per set (``beta.py``; zero for sets not
    optimized), None when none were."""

    box: Interval
    layers: list[Interval]
    splits: tuple[Split, ...]
    lower: float
    per_set: torch.Tensor
    minimizer: torch.Tensor
    row: torch.Tensor
    depth: int
    betas: torch.Tensor | None = None

    def satisfies(self, network: nn.Sequential, points: torch.Tensor) -> torch.Tensor:
        """Which points (N, *input shape) lie in the branch's domain (box and splits)."""
        lo, hi = self.box
        inside = ((points >= lo) & (points <= hi)).flatten(1).all(1)
        x = points
        values = []
        for layer in network:
            values.append(x.flatten(1))
            x = layer(x)
        for split in self.splits:
            pre = values[split.layer][:, split.neuron]
            inside &= pre >= split.threshold if split.active else pre <= split.threshold
        return inside


def bound(problem: Problem, eps: torch.Tensor, box: Interval, layers: list[Interval], *,
          splits: tuple[Split, ...] = (), parent: Branch | None = None, grid: int = 4,
          settled: float = math.inf, beta_steps: int = 0, beta_lr: float = 0.2) -> Branch:
    """The branch with these layer bounds (valid on its domain), bounded with CROWN and, for
    the sets still at or below ``settled`` when there are splits, ``beta_steps`` steps of
    beta-CROWN (``beta.split_bound``) started from the parent's multipliers.

    The parent's bound per candidate set holds on the child's domain too, and CROWN's
    adaptive slopes make its bound non-monotone in the intermediate bounds (a tighter
    pre-activation interval can flip a lower slope and loosen the result), so each set
    keeps the better of the two: a child is never worse than its parent. Sets whose parent
    bound exceeds ``settled`` are not bounded again (most of the rows' backward work: near
    the robustness boundary typically one of the 36 pairs of the seed classifier is open)."""
    skip = None if parent is None else parent.per_set > settled
    result = margin_bound(problem, eps, method=BoundMethod.CROWN, grid=grid, box=box,
                          network_bounds=NetworkBounds(input=box, layers=layers), skip_sets=skip)
    per_set = result.per_set.detach()
    if parent is not None:  # skipped sets (+inf in ``result``) keep the parent's bound
        per_set = torch.where(skip, parent.per_set, torch.maximum(per_set, parent.per_set))
    betas = None
    open_sets = (per_set <= settled).nonzero()[:, 0]
    if beta_steps > 0 and splits and open_sets.numel() > 0:
        betas = torch.zeros(per_set.numel(), len(splits), dtype=box[0].dtype)
        if parent is not None and parent.betas is not None:  # a new split's multiplier is 0
            betas[:, : parent.betas.shape[1]] = parent.betas
        found = split_bound(problem.model, box, layers, result.set_rows[open_sets], splits,
                            steps=beta_steps, lr=beta_lr, start=betas[open_sets])
        per_set = per_set.index_put((open_sets,), torch.maximum(per_set[open_sets], found.lower))
        betas[open_sets] = found.betas
    return Branch(box=box, layers=layers, splits=splits, lower=float(per_set.min()),
                  per_set=per_set, minimizer=result.minimizer,
                  row=result.set_rows[int(per_set.argmin())],
                  depth=0 if parent is None else parent.depth + 1, betas=betas)


class _Half(NamedTuple):
    """A child before bounding: its box, its parent's layer bounds clamped to it, the first
    layer to recompute, the mask of changed elements on that layer's input, its splits."""

    box: Interval
    given: list[Interval]
    start: int
    changed: torch.Tensor
    splits: tuple[Split, ...]


def children(problem: Problem, eps: torch.Tensor, branch: Branch, *, rule: SplitRule,
             grid: int = 4, settled: float = math.inf, beta_steps: int = 0,
             beta_lr: float = 0.2) -> tuple[list[Branch], int] | None:
    """The two halves of ``branch``, bounded (``bound``, with these settings), without the
    empty ones, and how many were empty; None when nothing is left to split (no unstable
    ReLU, a zero-width box)."""
    network = problem.model
    choice = _neuron_choice(network, branch, rule)
    halves = _neuron_halves(branch, *choice) if choice is not None else _input_halves(branch)
    if not halves:
        return None
    found, empty = [], 0
    for half in halves:
        layers = branch_layer_bounds(network, *half.box, half.given, start=half.start,
                                     changed=half.changed)
        if layers is None:
            empty += 1
            continue
        found.append(bound(problem, eps, half.box, layers, splits=half.splits, parent=branch,
                           grid=grid, settled=settled, beta_steps=beta_steps, beta_lr=beta_lr))
    return found, empty


def _neuron_halves(branch: Branch, layer: int, neuron: int, threshold: float) -> list[_Half]:
    """Split element ``neuron`` of layer ``layer``'s input (bounds ``branch.layers[layer - 1]``)
    at ``threshold``."""
    lower, upper = branch.layers[layer - 1]
    changed = torch.zeros(lower.numel(), dtype=lower.dtype)
    changed[neuron] = 1.0
    halves = []
    for active in (True, False):
        low, up = lower.flatten().clone(), upper.flatten().clone()
        if active:
            low[neuron] = low[neuron].clamp(min=threshold)
        else:
            up[neuron] = up[neuron].clamp(max=threshold)
        given = list(branch.layers)
        given[layer - 1] = (low.reshape(lower.shape), up.reshape(upper.shape))
        halves.append(_Half(branch.box, given, layer, changed.reshape(lower.shape),
                            (*branch.splits, Split(layer, neuron, active, threshold))))
    return halves


def _input_halves(branch: Branch) -> list[_Half]:
    """Bisect the box along its widest pixel; no halves for a zero-width box."""
    lo, hi = branch.box
    width = (hi - lo).flatten()
    if float(width.max()) <= 0:
        return []
    pixel = int(width.argmax())
    mid = (lo.flatten()[pixel] + hi.flatten()[pixel]) / 2
    changed = torch.zeros(lo.numel(), dtype=lo.dtype)
    changed[pixel] = 1.0
    below, above = hi.flatten().clone(), lo.flatten().clone()
    below[pixel], above[pixel] = mid, mid
    changed = changed.reshape(lo.shape)
    return [_Half((lo, below.reshape(hi.shape)), branch.layers, 0, changed, branch.splits),
            _Half((above.reshape(lo.shape), hi), branch.layers, 0, changed, branch.splits)]


def _coefficients(network: nn.Sequential, branch: Branch) -> dict[int, torch.Tensor]:
    """The coefficients of the branch's weakest row in its CROWN bound on the output of
    every ReLU and MaxPool layer (keyed by layer index), by ``crown.backward`` in segments
    between them."""
    inputs = [branch.box, *branch.layers[:-1]]
    relaxed = [i for i, layer in enumerate(network) if isinstance(layer, nn.ReLU | nn.MaxPool2d)]
    coef, end, found = branch.row[None].to(branch.box[0].dtype), len(network) - 1, {}
    for index in reversed(relaxed):
        coef, _ = backward(network, inputs, coef, last=end, first=index + 1)
        found[index] = coef[0]
        end = index
    return found


def _neuron_choice(network: nn.Sequential, branch: Branch, rule: SplitRule
                   ) -> tuple[int, int, float] | None:
    """(layer index, neuron of its input, threshold) to split, or None when the rule finds
    no candidate (no unstable ReLU and, for BaBSR, no max-pool split)."""
    coefs = _coefficients(network, branch) if rule is SplitRule.BABSR else {}
    best: tuple[float, int, int, float] | None = None
    widest: tuple[int, int, float] | None = None
    for index, layer in enumerate(network):
        if index == 0:
            continue
        lower, upper = (t.flatten() for t in branch.layers[index - 1])
        if isinstance(layer, nn.MaxPool2d) and rule is SplitRule.BABSR:
            found = _pool_choice(network, branch, index, coefs[index])
            if found is not None and (best is None or found[0] > best[0]):
                best = found
        if not isinstance(layer, nn.ReLU):
            continue
        open_ = (lower < 0) & (upper > 0)
        if not bool(open_.any()):
            continue
        width = torch.where(open_, upper - lower, torch.zeros_like(lower))
        widest = (index, int(width.argmax()), 0.0)  # the last such layer wins: closest to the output
        if rule is SplitRule.BABSR:
            safe = torch.where(open_, upper - lower, torch.ones_like(lower))
            intercept = torch.where(open_, upper * (-lower) / safe, torch.zeros_like(lower))
            score = coefs[index].flatten().abs() * intercept
            top = float(score.max())
            if top > 0 and (best is None or top > best[0]):
                best = (top, index, int(score.argmax()), 0.0)
    if best is not None:
        return best[1], best[2], best[3]
    return widest


def _pool_choice(network: nn.Sequential, branch: Branch, index: int, coef: torch.Tensor
                 ) -> tuple[float, int, int, float] | None:
    """(score, layer, neuron, threshold) of the best max-pool split of layer ``index``: the
    window maximizing ``|A| * width cut off`` (``maxpool.split_points``), split on its top
    input, through the pre-activation of the ReLU that feeds the pool when there is one
    (``relu(z) >= t`` iff ``z >= t`` for ``t > 0``), else on the pool's input."""
    layer = network[index]
    lower, upper = branch.layers[index - 1]
    neuron, threshold, gain = split_points(layer, lower, upper)
    score = coef.reshape(gain.shape).abs() * gain
    window = int(score.argmax())
    top = float(score.flatten()[window])
    if top <= 0:
        return None
    channel = window // gain.shape[1]
    flat = channel * lower[0].numel() + int(neuron.flatten()[window])
    cut = float(threshold.flatten()[window])
    fed_by_relu = isinstance(network[index - 1], nn.ReLU) and index - 1 > 0 and cut > 0
    return top, index - 1 if fed_by_relu else index, flat, cut
