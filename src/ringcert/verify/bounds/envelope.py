"""Bounds on the second affine layer from each first-layer ReLU's convex hull over the box.

On the seed classifier the margin bound loses most in the pre-activation bounds of the
second convolution (docs/design.md section 2.7b): CROWN relaxes every unstable ReLU of the
first layer by its triangle over ``[l, u]``, while the ReLU's input is an affine function
of the input box itself. The tightest relaxation of one neuron ``ReLU(w . x + b)`` over the
box (Tjandraatmadja et al., NeurIPS 2020, "The convex barrier, revisited"; Anderson et al.,
Math. Programming 2020) is, from below, the ReLU itself (it is convex) and, from above, its
concave envelope over the box. In the box's 0-1 coordinates ``t`` (``t_i = 0`` where
``w_i x_i`` is smallest) that envelope is the Lovász extension of the supermodular set
function ``S -> ReLU(l + sum_{i in S} reach_i)``: with the coordinates in decreasing ``t``,
``U(t) = sum_k t_(k) (G_k - G_(k-1))``, ``G_k = ReLU(l + reach_(1) + ... + reach_(k))``.
Each order of the coordinates gives one linear piece, and every piece lies above the ReLU
on the whole box (the planes of section 2.7b).

A second-layer neuron ``y = c0 + sum_j c_j ReLU(z_j(x))`` is then bounded below by the
convex function ``f(x) = c0 + sum_{c_j > 0} c_j ReLU(z_j) + sum_{c_j < 0} c_j U_j(x)``, whose
minimum over the box is the hull LP's optimum (as tight as the exact first layer there,
section 2.7b). Rather than solving that LP, ``envelope_bounds`` runs projected Adam steps on
``x`` per neuron (the "primal" choice of the hull's facets that section 2.7b calls for) and,
at every iterate, takes the linearization of ``f`` there: each ReLU with ``c_j > 0`` by the
line ``z_j`` or ``0`` (whichever it equals at the iterate), each ``U_j`` by the piece of the
iterate's order. That linear function lies below ``y`` on the whole box whatever the iterate
is, so its minimum over the box is a sound bound at every step; so is the running average of
the linearizations (a convex combination of lower bounds), which is what converges to the
LP's optimum. The best is kept. Upper bounds are lower bounds of ``-y``. Everything is
float64; ``tightened_bounds`` moves the results out by CROWN's float slack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ringcert.layers.registry import layer_type
from ringcert.verify.bounds.crown import FLOAT_SLACK, backward, crown_layer_bounds, select_refined
from ringcert.verify.bounds.network import NetworkBounds

Interval = tuple[torch.Tensor, torch.Tensor]

ENVELOPE_STEPS = 20
"""Projected Adam steps per neuron (each gives a sound bound; the best is kept)."""

ENVELOPE_LR = 0.1
"""Adam's step in the box's 0-1 coordinates."""

CHUNK_ENTRIES = 1 << 22
"""Rows per batch: their gathered (row, feeding neuron, pixel) tensors hold at most this many
numbers."""


@dataclass(frozen=True, eq=False)
class FirstBlock:
    """A network's first ``affine -> ReLU -> affine`` block, as the envelope bound needs it.

    ``relu``: the first ReLU layer's index. ``end``: the layer whose output the block
    bounds (the last affine layer before the second nonlinearity). ``pixels`` and
    ``weights`` (H1, K): per first-layer neuron, the input elements it reads and their
    weights (padded with weight 0); ``first_bias`` (H1,). ``second`` (H2, H1, scipy CSR) and
    ``second_bias`` (H2,): the affine map from the first ReLU layer's output to layer
    ``end``'s output. It depends on the weights only: built once per network (``of``)."""

    relu: int
    end: int
    pixels: torch.Tensor
    weights: torch.Tensor
    first_bias: torch.Tensor
    second: object
    second_bias: np.ndarray

    @classmethod
    def of(cls, network: nn.Sequential, input_shape: tuple[int, ...]) -> FirstBlock | None:
        """The block of ``network`` on inputs of ``input_shape``; None when the network does
        not start ``affine layers -> ReLU -> affine layers -> ReLU or MaxPool``."""
        ops = [layer_type(layer, "bound propagation") for layer in network]
        relu = next((i for i, layer in enumerate(network) if isinstance(layer, nn.ReLU)), None)
        if relu is None or relu == 0 or not all(op.affine for op in ops[:relu]):
            return None
        after = next((i for i in range(relu + 1, len(network)) if not ops[i].affine), None)
        if after is None or after == relu + 1:
            return None
        first, first_bias, shape = _compose(network, range(relu), input_shape)
        second, second_bias, _ = _compose(network, range(relu + 1, after), shape)
        first = first.tocsr()
        rows = np.repeat(np.arange(first.shape[0]), np.diff(first.indptr))
        pixels, weights = _padded(rows, first.indices, first.data, first.shape[0])
        return cls(relu=relu, end=after - 1, pixels=pixels, weights=weights,
                   first_bias=torch.from_numpy(np.asarray(first_bias, dtype=np.float64)),
                   second=second.tocsr(), second_bias=np.asarray(second_bias, dtype=np.float64))


def _compose(network: nn.Sequential, indices: range, shape: tuple[int, ...]):
    """The affine layers ``indices`` as one sparse matrix and bias (float64), and the output
    shape."""
    import scipy.sparse as sp

    size = int(np.prod(shape))
    matrix, bias = sp.identity(size, format="csr"), np.zeros(size)
    for i in indices:
        step, step_bias, shape = layer_type(network[i], "bound propagation").affine_map(network[i], shape)
        matrix, bias = step @ matrix, step @ bias + step_bias
    return matrix, bias, shape


@dataclass(frozen=True, eq=False)
class _Rows:
    """Padded per-row terms of ``sum_j coef_j ReLU(z_j)``: ``fixed`` terms are on active
    neurons (exactly ``coef_j z_j``), ``near`` terms on unstable neurons with ``coef_j > 0``
    (the ReLU is convex: its lines), ``far`` terms on unstable neurons with ``coef_j < 0``
    (the concave envelope's pieces); ``*_neuron`` index the first layer (coefficient 0 pads).
    Inactive neurons contribute nothing."""

    fixed_neuron: torch.Tensor
    fixed_coef: torch.Tensor
    near_neuron: torch.Tensor
    near_coef: torch.Tensor
    far_neuron: torch.Tensor
    far_coef: torch.Tensor
    bias: torch.Tensor

    def terms(self) -> torch.Tensor:
        """Per row, how many near and far terms it has (its padded columns hold coefficient 0)."""
        return (self.near_coef != 0).sum(1) + (self.far_coef != 0).sum(1)

    def take(self, index: torch.Tensor) -> _Rows:
        """The rows ``index``, each kind's padding trimmed to the widest of them."""

        def trimmed(neuron: torch.Tensor, coef: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            coef = coef[index]
            width = max(1, int((coef != 0).sum(1).max()))  # index is never empty
            return neuron[index, :width], coef[:, :width]

        fixed, near, far = (trimmed(self.fixed_neuron, self.fixed_coef),
                            trimmed(self.near_neuron, self.near_coef),
                            trimmed(self.far_neuron, self.far_coef))
        return _Rows(fixed_neuron=fixed[0], fixed_coef=fixed[1], near_neuron=near[0],
                     near_coef=near[1], far_neuron=far[0], far_coef=far[1], bias=self.bias[index])


def _padded(rows: np.ndarray, columns: np.ndarray, values: np.ndarray, count: int
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Entries (row, column, value), sorted by row, as padded (count, width) tensors."""
    per_row = np.bincount(rows, minlength=count)
    width = max(1, int(per_row.max(initial=0)))
    starts = np.concatenate([[0], np.cumsum(per_row)[:-1]])
    slots = np.arange(rows.shape[0]) - starts[rows]
    neuron = np.zeros((count, width), dtype=np.int64)
    coef = np.zeros((count, width))
    neuron[rows, slots], coef[rows, slots] = columns, values
    return torch.from_numpy(neuron), torch.from_numpy(coef)


def _rows(coef, bias: np.ndarray, lower1: np.ndarray, upper1: np.ndarray) -> _Rows:
    """The rows ``coef . ReLU(z) + bias`` (``coef`` a scipy sparse (R, H1) matrix), as terms.
    Explicit zeros are dropped: a term's coefficient 0 means padding (``_Rows.take`` trims each
    row to its nonzero terms, so a stored zero would push a real term past the cut)."""
    part = coef.tocoo()
    keep = part.data != 0
    rows, columns, values = part.row[keep], part.col[keep], part.data[keep]
    order = np.argsort(rows, kind="stable")
    rows, columns, values = rows[order], columns[order], values[order]
    active = lower1[columns] >= 0
    unstable = ~active & (upper1[columns] > 0)
    count = coef.shape[0]
    kinds = {name: _padded(rows[where], columns[where], values[where], count)
             for name, where in (("fixed", active), ("near", unstable & (values > 0)),
                                 ("far", unstable & (values < 0)))}
    return _Rows(fixed_neuron=kinds["fixed"][0], fixed_coef=kinds["fixed"][1],
                 near_neuron=kinds["near"][0], near_coef=kinds["near"][1],
                 far_neuron=kinds["far"][0], far_coef=kinds["far"][1],
                 bias=torch.from_numpy(np.asarray(bias, dtype=np.float64)))


@dataclass(frozen=True, eq=False)
class _Box:
    """The input box, flat (float64), and per first-layer neuron its pixels' orientation:
    ``base`` (the end that makes ``w_i x_i`` smallest), ``delta`` (signed: ``x = base + t
    delta``), ``reach = |w| (hi - lo)``, and its exact pre-activation bounds."""

    lo: torch.Tensor
    hi: torch.Tensor
    base: torch.Tensor
    delta: torch.Tensor
    reach: torch.Tensor
    lower1: torch.Tensor
    upper1: torch.Tensor

    @classmethod
    def of(cls, block: FirstBlock, lo: torch.Tensor, hi: torch.Tensor) -> _Box:
        lo, hi = lo.detach().double().flatten(), hi.detach().double().flatten()
        w = block.weights
        plo, phi = lo[block.pixels], hi[block.pixels]
        positive = w >= 0
        base = torch.where(positive, plo, phi)
        delta = torch.where(positive, phi - plo, plo - phi)
        reach = w.abs() * (phi - plo)
        lower1 = block.first_bias + (w * base).sum(1)
        return cls(lo=lo, hi=hi, base=base, delta=delta, reach=reach, lower1=lower1,
                   upper1=lower1 + reach.sum(1))


@dataclass(frozen=True, eq=False)
class _Terms:
    """A batch of rows' terms with everything the steps read computed once, in each row's own
    coordinates: ``pixels`` (R, Q) are the input elements the row reads (a row of the second
    convolution reads its receptive field, 576 of 4,096 pixels on the seed classifier; padded
    slots say 0 and have width 0), ``lo``, ``hi`` the box on them, and every ``*_pixels``
    indexes those slots. Then the fixed terms' linear function (``fixed_g``, ``fixed_h``); per
    near term its pixels, weights, bias and coefficient; per far term its pixels, their
    orientation (``base``; ``inv_delta``, 0 on a fixed pixel, so that ``t = (x - base)
    inv_delta``), ``reach``, the neuron's lower bound, and the coefficient over ``delta``
    (``scale``, 0 on a fixed pixel)."""

    pixels: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor
    fixed_g: torch.Tensor
    fixed_h: torch.Tensor
    near_pixels: torch.Tensor
    near_weights: torch.Tensor
    near_bias: torch.Tensor
    near_coef: torch.Tensor
    far_pixels: torch.Tensor
    far_base: torch.Tensor
    far_inv_delta: torch.Tensor
    far_reach: torch.Tensor
    far_floor: torch.Tensor
    far_scale: torch.Tensor

    @classmethod
    def of(cls, block: FirstBlock, box: _Box, rows: _Rows) -> _Terms:
        fixed, near, far = rows.fixed_neuron, rows.near_neuron, rows.far_neuron
        slot, pixels, lo, hi = _local(block, box, ((fixed, rows.fixed_coef), (near, rows.near_coef),
                                           (far, rows.far_coef)))

        def local(neuron: torch.Tensor) -> torch.Tensor:
            return slot.gather(1, block.pixels[neuron].flatten(1))

        coef = rows.fixed_coef
        fixed_g = torch.zeros_like(lo).scatter_add_(1, local(fixed),
                                                    (coef[..., None] * block.weights[fixed]).flatten(1))
        delta = box.delta[far]
        moving = delta != 0
        inv_delta = torch.where(moving, 1.0 / torch.where(moving, delta, 1.0), 0.0)
        return cls(pixels=pixels, lo=lo, hi=hi, fixed_g=fixed_g,
                   fixed_h=rows.bias + (coef * block.first_bias[fixed]).sum(1),
                   near_pixels=local(near), near_weights=block.weights[near],
                   near_bias=block.first_bias[near], near_coef=rows.near_coef,
                   far_pixels=local(far), far_base=box.base[far],
                   far_inv_delta=inv_delta, far_reach=box.reach[far],
                   far_floor=box.lower1[far][..., None],
                   far_scale=rows.far_coef[..., None] * inv_delta)


def _local(block: FirstBlock, box: _Box, terms: Sequence[tuple[torch.Tensor, torch.Tensor]]
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row, the pixels its terms (pairs of neurons and coefficients, padded with
    coefficient 0) read: ``slot`` (R, P), each pixel's position among them (arbitrary for a
    pixel the row does not read: only padding reads it, with coefficient 0); ``pixels`` (R,
    Q), the pixel in each position; the box ``lo``, ``hi`` (R, Q) on them."""
    size, count = terms[0][0].shape[0], box.lo.shape[0]
    read = torch.zeros((size, count + 1), dtype=torch.bool)
    for neuron, coef in terms:
        pixels = torch.where((coef != 0)[..., None], block.pixels[neuron], count)
        read.scatter_(1, pixels.flatten(1), True)
    read = read[:, :count]
    slot = (read.cumsum(1) - 1).clamp(min=0)
    width = max(1, int(read.sum(1).max()))
    row, pixel = read.nonzero(as_tuple=True)
    where = (row, slot[row, pixel])
    pixels = torch.zeros((size, width), dtype=torch.long)
    lo, hi = torch.zeros((size, width), dtype=torch.float64), torch.zeros((size, width), dtype=torch.float64)
    pixels[where], lo[where], hi[where] = pixel, box.lo[pixel], box.hi[pixel]
    return slot, pixels, lo, hi


def _linearize(terms: _Terms, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the linear function ``g . x' + h`` below the row's value on the whole box that
    the linearization at ``x`` (R, Q, the rows' own coordinates) gives; returns ``(g, h)``."""
    g = terms.fixed_g.clone()
    # near terms: coef * z (slope 1) or 0, whichever ReLU(z) equals at x (either is a lower line)
    w = terms.near_weights
    z = (w * torch.gather(x, 1, terms.near_pixels).view(w.shape)).sum(2) + terms.near_bias
    slope = (z > 0).to(x.dtype) * terms.near_coef  # (R, M)
    g.scatter_add_(1, terms.near_pixels, (slope[..., None] * w).flatten(1))
    h = terms.fixed_h + (slope * terms.near_bias).sum(1)
    # far terms: coef * (the envelope's piece for the order of t at x)
    base = terms.far_base
    t = (torch.gather(x, 1, terms.far_pixels).view(base.shape) - base) * terms.far_inv_delta
    order = torch.argsort(t.float(), dim=2, descending=True)  # any order gives a sound piece
    climbed = (terms.far_floor + torch.gather(terms.far_reach, 2, order).cumsum(2)).clamp(min=0)
    gain = torch.diff(climbed, dim=2, prepend=torch.zeros_like(climbed[..., :1]))
    gain = torch.empty_like(gain).scatter_(2, order, gain)  # back to pixel order
    per_pixel = gain * terms.far_scale
    g.scatter_add_(1, terms.far_pixels, per_pixel.flatten(1))
    return g, h - (per_pixel * base).sum((1, 2))


def _minimum(g: torch.Tensor, h: torch.Tensor, terms: _Terms) -> torch.Tensor:
    return (g.clamp(min=0) * terms.lo + g.clamp(max=0) * terms.hi).sum(1) + h


def envelope_bounds(block: FirstBlock, lo: torch.Tensor, hi: torch.Tensor, chosen: torch.Tensor,
                    *, steps: int = ENVELOPE_STEPS, lr: float = ENVELOPE_LR) -> Interval:
    """Sound lower and upper bounds (float64) of the neurons ``chosen`` (flat indices into
    layer ``block.end``'s output) over the box ``[lo, hi]``; see the module docstring."""
    import scipy.sparse as sp

    picked = block.second[chosen.cpu().numpy()]
    bias = block.second_bias[chosen.cpu().numpy()]
    values = envelope_lower(block, lo, hi, sp.vstack([picked, -picked]), np.concatenate([bias, -bias]),
                            steps=steps, lr=lr)
    half = chosen.numel()
    return values[:half], -values[half:]


def envelope_lower(block: FirstBlock, lo: torch.Tensor, hi: torch.Tensor, coef, bias: np.ndarray,
                   *, steps: int = ENVELOPE_STEPS, lr: float = ENVELOPE_LR) -> torch.Tensor:
    """Sound lower bounds (float64) of ``coef . ReLU(z(x)) + bias`` over the box, one per row
    of ``coef`` (scipy sparse, (R, H1): over the first ReLU layer's output). Rows are batched
    by their number of terms, so that a batch pads little."""
    box = _Box.of(block, lo, hi)
    rows = _rows(coef, bias, box.lower1.numpy(), box.upper1.numpy())
    cost = (block.pixels.shape[1] * rows.terms() + box.lo.shape[0]).numpy()
    order = np.argsort(cost, kind="stable")
    found = torch.zeros(rows.bias.shape[0], dtype=torch.float64)  # no rows: no bounds
    start = 0
    while start < order.shape[0]:  # cost ascends: a batch's widest row is its last
        end = start + 1
        while end < order.shape[0] and (end + 1 - start) * cost[order[end]] <= CHUNK_ENTRIES:
            end += 1
        index = torch.from_numpy(order[start:end])
        found[index] = _chunk_lower(_Terms.of(block, box, rows.take(index)), steps=steps, lr=lr)
        start = end
    return found


def _chunk_lower(terms: _Terms, *, steps: int, lr: float) -> torch.Tensor:
    """One batch of rows: projected Adam on the point (in the box's 0-1 coordinates) and a
    linearization at every iterate; the bound is the best of each linearization's and of
    their running average's (any convex combination of lower bounds is one: the average
    of subgradients is what certifies a subgradient method's progress, and here it beats
    the single linearizations by far). Weighting later iterates more, or optimizing the
    combination's weights, measured no better per second."""
    width = terms.hi - terms.lo
    size = terms.fixed_h.shape[0]
    u = torch.full_like(width, 0.5)
    moment, second = torch.zeros_like(u), torch.zeros_like(u)
    g_sum, h_sum = torch.zeros_like(u), torch.zeros(size, dtype=torch.float64)
    best = torch.full((size,), -torch.inf, dtype=torch.float64)
    for step in range(steps + 1):
        g, h = _linearize(terms, terms.lo + u * width)
        g_sum, h_sum = g_sum + g, h_sum + h
        best = torch.maximum(best, torch.maximum(
            _minimum(g, h, terms), _minimum(g_sum / (step + 1), h_sum / (step + 1), terms)))
        if step == steps:
            break
        grad = g * width  # f's subgradient in u
        moment.mul_(0.9).add_(grad, alpha=0.1)
        second.mul_(0.999).addcmul_(grad, grad, value=0.001)
        corrected = (moment / (1 - 0.9 ** (step + 1))) / (
            (second / (1 - 0.999 ** (step + 1))).sqrt() + 1e-12)
        u = (u - lr * corrected).clamp(0.0, 1.0)
    return best


def _outward(value: torch.Tensor, *, sign: float) -> torch.Tensor:
    """A float64 bound moved outward (``sign`` -1 for lower bounds) by CROWN's float slack,
    as float32 (the slack is far larger than the cast's rounding)."""
    return (value + sign * FLOAT_SLACK * (1 + value.abs())).float()


def tightened_bounds(network: nn.Sequential, block: FirstBlock, bounds: NetworkBounds, *,
                     steps: int = ENVELOPE_STEPS, select: torch.Tensor | None = None) -> NetworkBounds:
    """``bounds`` (CROWN's) with the envelope bound on the neurons ``select`` (a mask over
    layer ``block.end``'s output; default: those CROWN refines there, the unstable ones
    before a ReLU and, where that ReLU feeds a max-pool, the active ones too), each kept
    only where it is tighter, and every later layer's CROWN bounds recomputed on them."""
    lo, hi = bounds.input
    lower, upper = bounds.layers[block.end]
    if select is None:
        select = select_refined(network, block.end, (lower, upper))
    chosen = torch.zeros(0, dtype=torch.long) if select is None else select.flatten().nonzero()[:, 0]
    if chosen.numel() == 0:
        return bounds
    low, up = envelope_bounds(block, lo, hi, chosen, steps=steps)
    flat_l, flat_u = lower.flatten().clone(), upper.flatten().clone()
    flat_l[chosen] = torch.maximum(flat_l[chosen], _outward(low, sign=-1.0).to(lower.dtype))
    flat_u[chosen] = torch.minimum(flat_u[chosen], _outward(up, sign=1.0).to(upper.dtype))
    given = {block.end: (flat_l.reshape(lower.shape), flat_u.reshape(upper.shape))}
    return NetworkBounds(input=(lo, hi), layers=crown_layer_bounds(network, lo, hi, given=given))


def envelope_rows(network: nn.Sequential, block: FirstBlock, bounds: NetworkBounds,
                  rows: torch.Tensor, alphas: dict[int, torch.Tensor] | None, *,
                  steps: int = ENVELOPE_STEPS) -> torch.Tensor:
    """Sound lower bounds (float64, one per row) of ``rows . F(x)`` (rows over the logits)
    over the box: CROWN's backward pass (with ``alphas``' slopes) down to the first ReLU
    layer's output, then the envelope bound instead of the triangle below it."""
    import scipy.sparse as sp

    inputs = bounds.inputs
    coef, bias = backward(network, inputs, rows, last=len(network) - 1, first=block.relu + 1,
                          alphas=alphas)
    matrix = sp.csr_matrix(coef.detach().flatten(1).double().numpy())
    return envelope_lower(block, *bounds.input, matrix, bias.detach().double().numpy(), steps=steps)
