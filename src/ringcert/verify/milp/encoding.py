"""MIPVerify-style mixed-integer encoding of a ReLU network and the top-k margin.

Tjeng, Xiao & Tedrake, "Evaluating Robustness of Neural Networks with Mixed Integer
Programming", ICLR 2019. The encoding is built in bulk (scipy sparse rows) so that a
12k-ReLU network becomes one HiGHS model in well under a second:

- inputs: one continuous variable per pixel whose box has width > 0; pixels of rings
  with epsilon 0 (or clipped to a point) are constants;
- affine layers (Conv2d, Linear, BatchNorm2d, AvgPool2d, Flatten: each layer type's
  ``affine_map``) are composed into one sparse map per block and never get variables of
  their own; a block's output neuron is materialized as one variable (bounded by its
  pre-activation bounds) with one equality row, or kept as a constant when nothing in its
  cone can move;
- ReLU: stably inactive neurons become the constant 0, stably active ones reuse their
  pre-activation variable, unstable ones get the big-M encoding with one binary
  (``y >= x, y <= x - l(1-a), y <= u a``) or, beyond the partial-MILP budget, the
  triangle relaxation (``y >= x, y <= u (x - l) / (u - l)``), as in ERAN / MaRVeL;
- MaxPool: one binary per candidate that can still be the maximum (``u_i >= max_j l_j``),
  ``y >= x_i``, ``y <= x_i + (1 - a_i)(max_{j != i} u_j - l_i)``, ``sum a_i = 1``;
- top-k: maximize ``s`` subject to ``s <= F_c - F_t + M_c (1 - z_c)`` for ``c != t``,
  ``sum z_c = k``; the optimum is ``-min m`` so the query is robust iff it is < 0.

Every bound is padded before use so that float32 rounding in the bound computation can
never cut off a real behaviour of the network (the model stays feasible).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ringcert.errors import RingcertError
from ringcert.layers.base import pair
from ringcert.layers.registry import layer_type


class VarKind(Enum):
    """How a variable's value follows from a forward pass (used for warm starts)."""

    INPUT = 0  # pixel value
    NEURON = 1  # output of network layer ``layer``, flat index ``index``
    RELU_ON = 2  # 1 if the output of layer ``layer`` (a pre-activation) is > 0
    POOL_ARG = 3  # pool selector (set from ``pool_groups``)
    SCORE = 4  # the objective variable s
    SELECT = 5  # top-k selector of class ``index``


@dataclass(frozen=True, eq=False)
class Encoding:
    """A MILP in bulk form: maximize ``cost @ v`` s.t. ``row_lo <= rows @ v <= row_hi``,
    ``col_lo <= v <= col_hi``, ``v[integer]`` integral.

    ``recipe_*`` say how each variable's value follows from a forward pass;
    ``pool_groups`` lists (selector vars, input flat indices, pool layer) per window.
    """

    rows: sp.csr_matrix
    row_lo: np.ndarray
    row_hi: np.ndarray
    col_lo: np.ndarray
    col_hi: np.ndarray
    cost: np.ndarray
    integer: np.ndarray  # bool per column
    input_vars: np.ndarray  # (C*H*W,) variable of each pixel, -1 for a constant pixel
    input_const: np.ndarray  # (C*H*W,) pixel value where constant
    score_var: int
    recipe_kind: np.ndarray
    recipe_layer: np.ndarray
    recipe_index: np.ndarray
    pool_groups: list[tuple[np.ndarray, np.ndarray, int]] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def num_vars(self) -> int:
        return int(self.col_lo.shape[0])


class _Builder:
    """Accumulates columns and row blocks; all additions are vectorized."""

    def __init__(self) -> None:
        self.col_lo: list[np.ndarray] = []
        self.col_hi: list[np.ndarray] = []
        self.integer: list[np.ndarray] = []
        self.kind: list[np.ndarray] = []
        self.layer: list[np.ndarray] = []
        self.index: list[np.ndarray] = []
        self.count = 0
        self.blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]] = []  # coo parts
        self.row_lo: list[np.ndarray] = []
        self.row_hi: list[np.ndarray] = []
        self.num_rows = 0
        self.pools: list[tuple[np.ndarray, np.ndarray, int]] = []

    def add_vars(self, lo: np.ndarray, hi: np.ndarray, *, kind: VarKind, layer: int = -1,
                 index: np.ndarray | None = None, integer: bool = False) -> np.ndarray:
        n = int(np.asarray(lo).shape[0])
        self.col_lo.append(np.asarray(lo, dtype=np.float64))
        self.col_hi.append(np.asarray(hi, dtype=np.float64))
        self.integer.append(np.full(n, integer))
        self.kind.append(np.full(n, kind.value))
        self.layer.append(np.full(n, layer))
        self.index.append(np.arange(n) if index is None else np.asarray(index))
        ids = np.arange(self.count, self.count + n)
        self.count += n
        return ids

    def add_rows(self, row: np.ndarray, col: np.ndarray, val: np.ndarray, lo: np.ndarray,
                 hi: np.ndarray) -> None:
        """Rows given in local numbering ``row`` (0..len(lo)-1)."""
        n = int(np.asarray(lo).shape[0])
        self.blocks.append((np.asarray(row) + self.num_rows, np.asarray(col), np.asarray(val, float), n))
        self.row_lo.append(np.asarray(lo, dtype=np.float64))
        self.row_hi.append(np.asarray(hi, dtype=np.float64))
        self.num_rows += n

    def matrix(self) -> sp.csr_matrix:
        if not self.blocks:
            return sp.csr_matrix((0, self.count))
        row = np.concatenate([b[0] for b in self.blocks])
        col = np.concatenate([b[1] for b in self.blocks])
        val = np.concatenate([b[2] for b in self.blocks])
        return sp.csr_matrix((val, (row, col)), shape=(self.num_rows, self.count))


def pad_bounds(lower: torch.Tensor, upper: torch.Tensor, *, absolute: float, relative: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """Float64 bounds widened by ``absolute + relative * max(|l|, |u|)`` (float32 slack)."""
    lo = lower.detach().double().numpy().ravel()
    hi = upper.detach().double().numpy().ravel()
    slack = absolute + relative * np.maximum(np.abs(lo), np.abs(hi))
    return lo - slack, hi + slack


@dataclass
class _Values:
    """A layer's output: variable per neuron (-1 for a constant) and the constants."""

    var: np.ndarray
    const: np.ndarray


def _apply(matrix: sp.csr_matrix, bias: np.ndarray, values: _Values
           ) -> tuple[sp.csr_matrix, np.ndarray]:
    """``matrix @ values + bias`` as (sparse coefficients over variables, constants)."""
    moving = values.var >= 0
    b = matrix @ np.where(moving, 0.0, values.const) + bias
    sub = matrix[:, np.flatnonzero(moving)].tocoo()
    cols = values.var[moving][sub.col]
    width = int(cols.max(initial=-1)) + 1
    coeffs = sp.csr_matrix((sub.data, (sub.row, cols)), shape=(matrix.shape[0], width))
    coeffs.eliminate_zeros()
    return coeffs, b


def encode(network: nn.Sequential, lo: torch.Tensor, hi: torch.Tensor,
           layer_bounds: list[tuple[torch.Tensor, torch.Tensor]], *, target: int, k: int,
           binary_budget: int | None = None, pool_budget: int | None = None,
           pad_absolute: float = 1e-5,
           pad_relative: float = 1e-4) -> Encoding:
    """The MILP of ``max_z -m(z)`` over the box ``[lo, hi]``.

    ``layer_bounds[i]``: sound bounds on the output of layer ``i`` (from CROWN or IBP).
    ``binary_budget``: None for the exact MILP; otherwise only that many unstable ReLUs
    (the most uncertain, by ``min(-l, u)``) get binaries and the rest the triangle
    relaxation, which keeps ROBUST sound but makes incumbents mere candidates.
    ``pool_budget``: likewise for max-pool windows (see ``_maxpool``).
    """
    builder = _Builder()
    shape: tuple[int, ...] = tuple(lo.shape)
    lo_np = lo.detach().double().numpy().ravel()
    hi_np = hi.detach().double().numpy().ravel()
    free = hi_np > lo_np
    input_var = np.full(lo_np.shape, -1)
    input_var[free] = builder.add_vars(lo_np[free], hi_np[free], kind=VarKind.INPUT,
                                       index=np.flatnonzero(free))
    values = _Values(var=input_var.copy(), const=np.where(free, 0.0, lo_np))
    layers = list(network)
    padded = [pad_bounds(lb, ub, absolute=pad_absolute, relative=pad_relative)
              for lb, ub in layer_bounds]
    uncertain = _budget_threshold(layers, padded, binary_budget)
    stats = {"unstable": 0, "relu_binaries": 0, "relaxed": 0, "pool_binaries": 0,
             "input_vars": int(free.sum())}
    pending: tuple[sp.csr_matrix, np.ndarray] | None = None
    for position, layer in enumerate(layers):
        if isinstance(layer, nn.ReLU | nn.MaxPool2d):
            if pending is not None:
                values = _materialize(builder, pending, values, padded[position - 1], position - 1)
                pending = None
            if isinstance(layer, nn.ReLU):
                values = _relu(builder, values, padded[position - 1], position - 1, uncertain, stats)
            else:
                values, shape = _maxpool(builder, layer, values, shape, padded[position - 1],
                                         position - 1, stats, pool_budget)
            continue
        matrix, bias, shape = layer_type(layer, "the MILP encoding").affine_map(layer, shape)
        pending = (matrix, bias) if pending is None else (matrix @ pending[0], matrix @ pending[1] + bias)
    if pending is None:
        pending = (sp.identity(values.var.shape[0], format="csr"), np.zeros(values.var.shape[0]))
    logit_lo, logit_hi = padded[-1]
    score = _topk(builder, pending, values, target=target, k=k, logit_bounds=(logit_lo, logit_hi),
                  stats=stats)
    cost = np.zeros(builder.count)
    cost[score] = 1.0
    stats.update(vars=builder.count, rows=builder.num_rows,
                 binaries=int(np.concatenate(builder.integer).sum()))
    return Encoding(rows=builder.matrix(), row_lo=np.concatenate(builder.row_lo),
                    row_hi=np.concatenate(builder.row_hi), col_lo=np.concatenate(builder.col_lo),
                    col_hi=np.concatenate(builder.col_hi), cost=cost,
                    integer=np.concatenate(builder.integer), input_vars=input_var,
                    input_const=np.where(free, 0.0, lo_np), score_var=score,
                    recipe_kind=np.concatenate(builder.kind),
                    recipe_layer=np.concatenate(builder.layer),
                    recipe_index=np.concatenate(builder.index), pool_groups=builder.pools,
                    stats=stats)


def _budget_threshold(layers: list[nn.Module], padded: list[tuple[np.ndarray, np.ndarray]],
                      budget: int | None) -> float:
    """Uncertainty ``min(-l, u)`` at or above which an unstable ReLU gets a binary."""
    if budget is None:
        return -np.inf
    scores = [np.minimum(-padded[i - 1][0], padded[i - 1][1]) for i, layer in enumerate(layers)
              if isinstance(layer, nn.ReLU) and i > 0]
    every = np.concatenate(scores) if scores else np.zeros(0)
    every = every[every > 0]
    if budget <= 0:
        return np.inf
    if every.shape[0] <= budget:
        return -np.inf
    return float(np.sort(every)[::-1][budget - 1])


def _materialize(builder: _Builder, pending: tuple[sp.csr_matrix, np.ndarray], values: _Values,
                 bounds: tuple[np.ndarray, np.ndarray], layer: int) -> _Values:
    """One variable and one equality row per moving neuron of an affine block."""
    coeffs, b = _apply(*pending, values)
    nnz = np.diff(coeffs.indptr)
    moving = np.flatnonzero(nnz > 0)
    var = np.full(b.shape[0], -1)
    lo, hi = bounds
    new = builder.add_vars(lo[moving], hi[moving], kind=VarKind.NEURON, layer=layer, index=moving)
    var[moving] = new
    sub = coeffs[moving].tocoo()
    # x - A v = b
    rows = np.concatenate([np.arange(moving.shape[0]), sub.row])
    cols = np.concatenate([new, sub.col])
    vals = np.concatenate([np.ones(moving.shape[0]), -sub.data])
    builder.add_rows(rows, cols, vals, b[moving], b[moving])
    return _Values(var=var, const=np.where(var >= 0, 0.0, b))


def _relu(builder: _Builder, values: _Values, bounds: tuple[np.ndarray, np.ndarray], pre_layer: int,
          threshold: float, stats: dict[str, int]) -> _Values:
    """Stable neurons are substituted; unstable ones get big-M (or triangle) rows."""
    lo, hi = bounds
    var, const = values.var.copy(), np.maximum(values.const, 0.0)
    moving = var >= 0
    var[moving & (hi <= 0)] = -1
    unstable = np.flatnonzero(moving & (lo < 0) & (hi > 0))
    stats["unstable"] += int(unstable.shape[0])
    if unstable.shape[0] == 0:
        return _Values(var=var, const=const)
    x, low, u = values.var[unstable], lo[unstable], hi[unstable]
    y = builder.add_vars(np.zeros_like(u), u, kind=VarKind.NEURON, layer=pre_layer + 1, index=unstable)
    var[unstable] = y
    exact = np.minimum(-low, u) >= threshold
    n = unstable.shape[0]
    # y - x >= 0 for every unstable neuron
    builder.add_rows(np.repeat(np.arange(n), 2), np.stack([y, x], 1).ravel(),
                     np.tile([1.0, -1.0], n), np.zeros(n), np.full(n, np.inf))
    e = np.flatnonzero(exact)
    if e.shape[0]:
        a = builder.add_vars(np.zeros(e.shape[0]), np.ones(e.shape[0]), kind=VarKind.RELU_ON,
                             layer=pre_layer, index=unstable[e], integer=True)
        m = e.shape[0]
        # y - x - l a <= -l ;  y - u a <= 0
        builder.add_rows(np.repeat(np.arange(m), 3), np.stack([y[e], x[e], a], 1).ravel(),
                         np.stack([np.ones(m), -np.ones(m), -low[e]], 1).ravel(),
                         np.full(m, -np.inf), -low[e])
        builder.add_rows(np.repeat(np.arange(m), 2), np.stack([y[e], a], 1).ravel(),
                         np.stack([np.ones(m), -u[e]], 1).ravel(), np.full(m, -np.inf), np.zeros(m))
    r = np.flatnonzero(~exact)
    if r.shape[0]:
        m = r.shape[0]
        # (u - l) y - u x <= -u l
        builder.add_rows(np.repeat(np.arange(m), 2), np.stack([y[r], x[r]], 1).ravel(),
                         np.stack([u[r] - low[r], -u[r]], 1).ravel(), np.full(m, -np.inf), -u[r] * low[r])
    stats["relu_binaries"] += int(e.shape[0])
    stats["relaxed"] += int(r.shape[0])
    return _Values(var=var, const=np.where(var >= 0, 0.0, const))


def _maxpool(builder: _Builder, layer: nn.MaxPool2d, values: _Values, shape: tuple[int, ...],
             bounds: tuple[np.ndarray, np.ndarray], in_layer: int, stats: dict[str, int],
             pool_budget: int | None = None) -> tuple[_Values, tuple[int, int, int]]:
    """MIPVerify's max encoding with the candidates that can still be the maximum.

    ``pool_budget``: at most that many windows (the widest, by ``max u - max l``) keep
    binaries; the others get the Planet relaxation (Ehlers 2017) ``y >= x_i``,
    ``y <= max_i l_i + sum_i (x_i - l_i)``, ``y <= max_i u_i``, which keeps ROBUST sound.
    """
    (kh, kw), (sh, sw), (ph, pw) = (pair(layer.kernel_size), pair(layer.stride), pair(layer.padding))
    if ph or pw or pair(layer.dilation) != (1, 1) or layer.ceil_mode:
        raise RingcertError("MaxPool2d with padding, dilation or ceil_mode is not supported by the MILP")
    c, h, w = shape
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    o_c, o_y, o_x, k_y, k_x = np.meshgrid(np.arange(c), np.arange(ho), np.arange(wo), np.arange(kh),
                                          np.arange(kw), indexing="ij")
    windows = ((o_c * h + o_y * sh + k_y) * w + o_x * sw + k_x).reshape(c * ho * wo, kh * kw)
    moving = values.var >= 0
    lo = np.where(moving, bounds[0], values.const)
    hi = np.where(moving, bounds[1], values.const)
    out_var = np.full(windows.shape[0], -1)
    out_const = np.zeros(windows.shape[0])
    spread = np.where(moving[windows].any(1), hi[windows].max(1) - lo[windows].max(1), -np.inf)
    exact = np.ones(windows.shape[0], dtype=bool)
    if pool_budget is not None:
        order = np.argsort(-spread, kind="stable")
        exact[order[max(pool_budget, 0):]] = False
    rows: list[tuple[int, int, float]] = []
    row_lo: list[float] = []
    row_hi: list[float] = []
    for window, members in enumerate(windows):
        floor = lo[members].max()
        cand = members[hi[members] >= floor]
        if cand.shape[0] == 1 or not moving[cand].any():
            best = cand[np.argmax(values.const[cand])] if not moving[cand].any() else cand[0]
            out_var[window], out_const[window] = values.var[best], values.const[best]
            continue
        top = hi[cand].max()
        y = int(builder.add_vars(np.array([floor]), np.array([top]), kind=VarKind.NEURON,
                                 layer=in_layer + 1, index=np.array([window]))[0])
        out_var[window] = y
        if not exact[window]:
            base = len(row_lo)
            # y - x_i >= c_i for each candidate; y - sum x_i <= floor - sum l_i + sum c_i
            for position, member in enumerate(cand):
                rows.append((base + position, y, 1.0))
                if values.var[member] >= 0:
                    rows.append((base + position, int(values.var[member]), -1.0))
                    rows.append((base + cand.shape[0], int(values.var[member]), -1.0))
                row_lo.append(float(values.const[member]))
                row_hi.append(np.inf)
            rows.append((base + cand.shape[0], y, 1.0))
            row_lo.append(-np.inf)
            row_hi.append(float(floor - lo[cand].sum() + values.const[cand].sum()))
            stats["pool_relaxed"] = stats.get("pool_relaxed", 0) + 1
            continue
        a = builder.add_vars(np.zeros(cand.shape[0]), np.ones(cand.shape[0]), kind=VarKind.POOL_ARG,
                             layer=in_layer, index=cand, integer=True)
        builder.pools.append((a, cand, in_layer))
        for position, member in enumerate(cand):
            others = np.delete(hi[cand], position).max()
            big = max(others - lo[member], 0.0)
            x, xc = int(values.var[member]), float(values.const[member])
            base = len(row_lo)
            # y - x >= 0 ; y - x + big a <= big
            rows.append((base, y, 1.0))
            rows.append((base + 1, y, 1.0))
            rows.append((base + 1, int(a[position]), big))
            if x >= 0:
                rows.append((base, x, -1.0))
                rows.append((base + 1, x, -1.0))
            row_lo += [xc, -np.inf]
            row_hi += [np.inf, big + xc]
        base = len(row_lo)
        rows += [(base, int(index), 1.0) for index in a]
        row_lo.append(1.0)
        row_hi.append(1.0)
        stats["pool_binaries"] += int(cand.shape[0])
    if rows:
        r, col, val = (np.array(part) for part in zip(*rows, strict=True))
        builder.add_rows(r.astype(int), col.astype(int), val, np.array(row_lo), np.array(row_hi))
    return _Values(var=out_var, const=out_const), (c, ho, wo)


def _interval(coeffs: sp.csr_matrix, const: np.ndarray, col_lo: np.ndarray, col_hi: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """Interval of ``coeffs @ v + const`` for ``v`` in its column bounds."""
    coeffs = sp.csr_matrix(coeffs, shape=(coeffs.shape[0], col_lo.shape[0]))
    pos, neg = coeffs.maximum(0), coeffs.minimum(0)
    return pos @ col_lo + neg @ col_hi + const, pos @ col_hi + neg @ col_lo + const


def _topk(builder: _Builder, pending: tuple[sp.csr_matrix, np.ndarray], values: _Values, *, target: int,
          k: int, logit_bounds: tuple[np.ndarray, np.ndarray], stats: dict[str, int]) -> int:
    """``max s`` s.t. ``s <= F_c - F_t + M_c (1 - z_c)``, ``sum z_c = k`` (MIPVerify's max of
    a top-k: s is the k-th largest ``F_c - F_t`` over the classes ``c != t``)."""
    coeffs, b = _apply(*pending, values)
    num = b.shape[0]
    coeffs = sp.csr_matrix(coeffs, shape=(num, builder.count))
    others = np.array([c for c in range(num) if c != target])
    diff = coeffs[others] - coeffs[[target] * others.shape[0]]
    diff_b = b[others] - b[target]
    col_lo, col_hi = np.concatenate(builder.col_lo), np.concatenate(builder.col_hi)
    d_lo, d_hi = _interval(diff, diff_b, col_lo, col_hi)
    lf, uf = logit_bounds
    d_lo = np.maximum(d_lo, lf[others] - uf[target])
    d_hi = np.minimum(d_hi, uf[others] - lf[target])
    s_lo = np.sort(d_lo)[::-1][k - 1]
    s_hi = np.sort(d_hi)[::-1][k - 1]
    keep = np.flatnonzero(d_hi >= s_lo)  # the others can never be among the k largest
    s = int(builder.add_vars(np.array([s_lo]), np.array([max(s_hi, s_lo)]), kind=VarKind.SCORE)[0])
    z = builder.add_vars(np.zeros(keep.shape[0]), np.ones(keep.shape[0]), kind=VarKind.SELECT,
                         index=others[keep], integer=True)
    big = np.maximum(s_hi - d_lo[keep], 0.0)
    sub = diff[keep].tocoo()
    m = keep.shape[0]
    # s - D_c + M_c z_c <= M_c + b_c
    rows = np.concatenate([np.arange(m), np.arange(m), sub.row])
    cols = np.concatenate([np.full(m, s), z, sub.col])
    vals = np.concatenate([np.ones(m), big, -sub.data])
    builder.add_rows(rows, cols, vals, np.full(m, -np.inf), big + diff_b[keep])
    builder.add_rows(np.zeros(m, dtype=int), z, np.ones(m), np.array([float(k)]), np.array([float(k)]))
    stats["selectors"] = m
    return s
