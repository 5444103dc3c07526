"""Where the margin bound loses: the second affine layer's pre-activation bounds (issue 14).

For one stored analysis (its certified vector ``eps*`` scaled by ``--scale``) it measures,
on the network's first affine -> ReLU -> affine block (the seed classifier: conv1, ReLU,
conv2):

1. per sampled pre-activation neuron of the second affine layer whose CROWN bounds leave its
   ReLU unstable, the width of its bounds from CROWN, from the LP over the triangle
   relaxation of the first ReLU layer (the optimum alpha-CROWN could reach for this bound:
   for one hidden layer the optimized lower slopes are the LP's dual), from the MILP
   (HiGHS, the sound dual bound after ``--milp-seconds``; exact when it finishes) and the
   range sampled at uniform and corner points (an inner bound);
   and from the envelope bound (``verify/bounds/envelope.py``: the hull, by projected steps
   and averaged linearizations, sound at every step);
2. the top-k margin bound from alpha-CROWN with sound (CROWN) intermediate bounds, with the
   envelope's intermediate bounds, and the envelope verifier's (those bounds and the margin
   rows through the hull), and the same bound with every intermediate bound replaced by
   the range sampled at uniform, corner and PGD points: NOT a sound bound, an optimistic
   limit of what tighter intermediate bounds could buy, next to the attack's smallest
   margin.

    python benchmarks/looseness.py OUT/pgd/0-left.json --model pgd --scale 1.1 [--milp-seconds 0]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from scipy.optimize import Bounds, LinearConstraint, milp

from common import table
from ringcert.layers.registry import layer_type
from ringcert.models.modelfile import load_model
from ringcert.samples import sample_problem, test_sample
from ringcert.verify.attack import pgd_attack
from ringcert.verify.bounds.envelope import FirstBlock, envelope_bounds, tightened_bounds
from ringcert.verify.bounds.margin import margin_bound
from ringcert.verify.bounds.network import BoundMethod, NetworkBounds, network_bounds
from ringcert.verify.propagation import Envelope
from ringcert.vocabulary import Side


@dataclass(frozen=True)
class Local:
    """One second-layer neuron ``z = c . ReLU(W x + b) + bias`` on the pixels it sees: per
    feeding first-layer neuron its weight ``c``, row of ``W`` (over ``pixels``), ``b`` and
    pre-activation bounds ``[lower, upper]`` (exact: the first layer is affine); the pixels'
    box ``[low, high]``."""

    c: np.ndarray
    w: np.ndarray
    b: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    bias: float
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def of(cls, first, second, row: int, box, relu1) -> Local:
        (a1, b1), (a2, b2) = first, second
        weights = a2.getrow(row)
        feeding = weights.indices
        pixels = np.unique(a1[feeding].indices)
        return cls(c=weights.data.astype(np.float64), w=a1[feeding][:, pixels].toarray(),
                   b=np.asarray(b1)[feeding], lower=relu1[0][feeding], upper=relu1[1][feeding],
                   bias=float(b2[row]), low=box[0][pixels], high=box[1][pixels])

    def split(self) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the active (``lower >= 0``) and the unstable feeding neurons."""
        return (np.flatnonzero(self.lower >= 0),
                np.flatnonzero((self.lower < 0) & (self.upper > 0)))

    def active_part(self) -> tuple[np.ndarray, float]:
        """The active neurons' contribution ``coef . x + constant`` (the inactive ones give 0)."""
        active, _ = self.split()
        return self.c[active] @ self.w[active], self.bias + float(self.c[active] @ self.b[active])


def neuron_range(local: Local, *, integral: bool, seconds: float) -> tuple[float, float, bool]:
    """Min and max of the neuron with the first ReLU layer exact (``integral``: big-M with one
    binary per unstable neuron) or as its triangle relaxation; (low, high, both optimal)."""
    _, unstable = local.split()
    p = len(local.low)
    count = p + 2 * len(unstable)  # pixels, then (a, d) per unstable neuron
    cost = np.zeros(count)
    cost[:p], constant = local.active_part()
    rows, lower, upper = [], [], []
    for k, n in enumerate(unstable):
        a, d = p + 2 * k, p + 2 * k + 1
        line, bias, floor, top = local.w[n], local.b[n], local.lower[n], local.upper[n]
        cost[a] = local.c[n]
        for coef_a, coef_d, lo_, hi_ in ((1.0, 0.0, bias, np.inf), (1.0, -floor, -np.inf, bias - floor)):
            r = np.zeros(count)
            r[:p], r[a], r[d] = -line, coef_a, coef_d
            rows.append(r)
            lower.append(lo_)
            upper.append(hi_)
        r = np.zeros(count)
        r[a], r[d] = 1.0, -top
        rows.append(r)
        lower.append(-np.inf)
        upper.append(0.0)
    bounds = Bounds(np.concatenate([local.low, np.zeros(2 * len(unstable))]),
                    np.concatenate([local.high, np.tile([np.inf, 1.0], len(unstable))]))
    integrality = np.zeros(count)
    integrality[p + 1:: 2] = 1 if integral else 0
    constraints = [LinearConstraint(sp.csr_matrix(np.array(rows)), lower, upper)] if rows else []
    found = []
    for sign in (1.0, -1.0):
        result = milp(sign * cost, constraints=constraints, integrality=integrality, bounds=bounds,
                      options={"time_limit": seconds})
        value = result.mip_dual_bound if integral and result.status != 0 else result.fun
        found.append((sign * value + constant, result.status == 0))
    return found[0][0], found[1][0], found[0][1] and found[1][1]


def hull_range(local: Local) -> tuple[float, float]:
    """Min and max of the neuron with each unstable first-layer ReLU replaced by the
    convex hull of ``{(x, a): a = ReLU(w . x + b), x in box}``: the tightest relaxation of a
    single neuron over the input box (Tjandraatmadja et al., NeurIPS 2020; here in Balas'
    extended form: ``x = x0 + x1`` with ``x1`` in ``d . box``, ``w . x1 + b d >= 0``, ``x0``
    in ``(1 - d) . box``, ``w . x0 + b (1 - d) <= 0``, ``a = w . x1 + b d``). Every neuron
    is relaxed alone: the joint (multi-neuron) effects stay out."""
    _, unstable = local.split()
    lo_, hi_ = local.low, local.high
    p = len(lo_)
    count = p + len(unstable) * (p + 1)  # x, then per unstable neuron (x1, d)
    cost = np.zeros(count)
    cost[:p], constant = local.active_part()
    blocks, lower, upper = [], [], []
    eye = sp.identity(p, format="csr")
    x = sp.hstack([eye, sp.csr_matrix((p, count - p))])
    for k, n in enumerate(unstable):
        start = p + k * (p + 1)
        line, bias, weight = local.w[n], float(local.b[n]), float(local.c[n])
        cost[start: start + p] += weight * line  # a = w . x1 + b d
        cost[start + p] += weight * bias
        x1 = sp.hstack([sp.csr_matrix((p, start)), eye, sp.csr_matrix((p, count - start - p))])
        d = sp.csr_matrix((np.ones(p), (np.arange(p), np.full(p, start + p))), shape=(p, count))
        blocks += [x1 - d.multiply(lo_[:, None]), x1 - d.multiply(hi_[:, None]),
                   x - x1 + d.multiply(lo_[:, None]), x - x1 + d.multiply(hi_[:, None])]
        lower += [np.zeros(p), np.full(p, -np.inf), lo_, np.full(p, -np.inf)]
        upper += [np.full(p, np.inf), np.zeros(p), np.full(p, np.inf), hi_]
        on = np.zeros(count)
        on[start: start + p], on[start + p] = line, bias
        off = np.zeros(count)
        off[:p], off[start: start + p], off[start + p] = line, -line, -bias
        blocks += [sp.csr_matrix(on), sp.csr_matrix(off)]
        lower += [np.zeros(1), np.full(1, -np.inf)]
        upper += [np.full(1, np.inf), np.full(1, -bias)]
    bounds = Bounds(np.concatenate([lo_, np.tile([*np.full(p, -np.inf), 0.0], len(unstable))]),
                    np.concatenate([hi_, np.tile([*np.full(p, np.inf), 1.0], len(unstable))]))
    constraints = ([LinearConstraint(sp.vstack(blocks, format="csr"), np.concatenate(lower),
                                     np.concatenate(upper))] if blocks else [])
    found = [sign * milp(sign * cost, constraints=constraints, bounds=bounds).fun + constant
             for sign in (1.0, -1.0)]
    return found[0], found[1]


def hull_facet(w: np.ndarray, b: float, low: np.ndarray, high: np.ndarray, point: np.ndarray
               ) -> tuple[np.ndarray, float]:
    """A linear upper bound ``coef . x + constant`` on ``ReLU(w . x + b)`` over the box: the
    supergradient plane, at ``point``, of the function's concave envelope over the box (the
    single-neuron hull above; Anderson et al., Math. Programming 2020, give its facets).
    Oriented per coordinate (``base`` the end that lowers ``w . x``, ``reach = |w| width``),
    ``d_j`` = how far ``point`` is from ``base`` (0-1); in decreasing ``d_j`` the first
    coordinates (``R``) are dropped until ``l + sum reach`` turns >= 0 at the pivot ``j*``;
    the plane keeps ``w_j`` on the rest (``S``) and ``beta / delta`` on ``j*``."""
    base = np.where(w >= 0, low, high)
    delta = np.where(w >= 0, high - low, low - high)
    reach = np.abs(w) * (high - low)
    floor = b + float(w @ base)
    moving = reach > 0
    d = np.where(moving, (point - base) / np.where(moving, delta, 1.0), 0.0)
    order = np.argsort(-d, kind="stable")
    prefix = floor + np.cumsum(reach[order])
    pivot_at = int(np.argmax(prefix >= 0))
    pivot, beta = order[pivot_at], float(prefix[pivot_at])
    coef = np.zeros_like(w)
    rest = order[pivot_at + 1:]
    coef[rest] = w[rest]
    coef[pivot] = beta / delta[pivot]
    return coef, -float(coef @ base)


def facet_range(local: Local, *, rounds: int) -> tuple[float, float]:
    """The neuron's bounds by one back-substitution through the first ReLU layer, CROWN's
    relaxation but with each unstable neuron's upper bound replaced by ``hull_facet`` at the
    previous round's minimizer (round 0: CROWN's triangle); ``rounds`` rounds, best kept."""
    low, high = local.low, local.high
    found = []
    for sign in (1.0, -1.0):  # min of sign * z
        c = sign * local.c
        best, point = -np.inf, None
        for _ in range(rounds + 1):
            coef, constant = np.zeros(len(low)), sign * local.bias
            for k in range(len(c)):
                floor, top, w, bias = local.lower[k], local.upper[k], local.w[k], float(local.b[k])
                if top <= 0:
                    continue
                if floor >= 0 or (c[k] >= 0 and top > -floor):  # y itself (exact, or slope 1)
                    coef, constant = coef + c[k] * w, constant + c[k] * bias
                elif c[k] >= 0:  # CROWN's lower slope 0
                    continue
                elif point is None:  # the triangle
                    slope = top / (top - floor)
                    coef, constant = coef + c[k] * slope * w, constant + c[k] * slope * (bias - floor)
                else:
                    upper, offset = hull_facet(w, bias, low, high, point)
                    coef, constant = coef + c[k] * upper, constant + c[k] * offset
            value = float(np.minimum(coef * low, coef * high).sum()) + constant
            best, point = max(best, value), np.where(coef >= 0, low, high)
        found.append(sign * best)
    return found[0], found[1]


def sampled_layers(network, points: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    ranges = []
    with torch.no_grad():
        h = points
        for layer in network:
            h = layer(h)
            ranges.append((h.min(0).values, h.max(0).values))
    return ranges


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("analysis", help="an analysis JSON (its eps* is scaled)")
    parser.add_argument("--model", required=True)
    parser.add_argument("--scale", type=float, default=1.1)
    parser.add_argument("--neurons", type=int, default=10)
    parser.add_argument("--milp-seconds", type=float, default=15.0, help="0: no MILP column")
    parser.add_argument("--rounds", type=int, default=3, help="facet re-selection rounds")
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--steps", type=int, default=20, help="envelope steps")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with open(args.analysis) as handle:
        record = json.load(handle)
    network = load_model(args.model).network
    problem = sample_problem(network, test_sample(record["image_index"]), target=Side(record["target"]))
    eps = (torch.tensor(record["epsilon"]) * args.scale).clamp(max=1.0)
    lo, hi = problem.box(eps)
    crown = network_bounds(network, lo, hi, method=BoundMethod.CROWN)
    shape = tuple(lo.shape)
    m1, c1, hidden = layer_type(network[0]).affine_map(network[0], shape)
    m2, c2, _ = layer_type(network[2]).affine_map(network[2], hidden)
    first, second = (sp.csr_matrix(m1), c1), (sp.csr_matrix(m2), c2)
    relu1 = tuple(t.double().flatten().numpy() for t in crown.layers[0])
    box = (lo.double().flatten().numpy(), hi.double().flatten().numpy())
    generator = torch.Generator().manual_seed(0)
    uniform = lo + (hi - lo) * torch.rand((args.samples, *shape), generator=generator)
    corners = torch.where(torch.rand((args.samples, *shape), generator=generator) < 0.5, lo, hi)
    attack = pgd_attack(problem, eps, restarts=64, steps=100, seed=0, step_fraction=0.1)
    inner = sampled_layers(network, torch.cat([uniform, corners]))
    low2, up2 = (t.flatten() for t in crown.layers[2])
    unstable = ((low2 < 0) & (up2 > 0)).nonzero().flatten().numpy()
    picked = np.random.default_rng(0).choice(unstable, size=min(args.neurons, len(unstable)), replace=False)
    block = FirstBlock.of(network, shape)
    hull_low, hull_up = envelope_bounds(block, lo, hi, torch.from_numpy(picked), steps=args.steps)
    rows, widths = [], []
    for place, neuron in enumerate(picked):
        began = time.perf_counter()
        local = Local.of(first, second, int(neuron), box, relu1)
        lp = neuron_range(local, integral=False, seconds=600.0)
        hull = hull_range(local)
        facets = facet_range(local, rounds=args.rounds)
        exact = (neuron_range(local, integral=True, seconds=args.milp_seconds)
                 if args.milp_seconds > 0 else (np.nan, np.nan, False))
        sampled = (float(inner[2][0].flatten()[neuron]), float(inner[2][1].flatten()[neuron]))
        width = [float(up2[neuron] - low2[neuron]), lp[1] - lp[0], hull[1] - hull[0],
                 facets[1] - facets[0], float(hull_up[place] - hull_low[place]),
                 exact[1] - exact[0], sampled[1] - sampled[0]]
        assert facets[0] <= sampled[0] + 1e-6 and facets[1] >= sampled[1] - 1e-6, "unsound facets"
        assert hull_low[place] <= sampled[0] + 1e-6 and hull_up[place] >= sampled[1] - 1e-6, "unsound"
        widths.append(width)
        optimal = ("yes" if exact[2] else "no (dual bound)") if args.milp_seconds > 0 else "-"
        rows.append([int(neuron), *width, optimal, time.perf_counter() - began])
    print(f"{args.model} image {record['image_index']} {record['target']}, eps* x {args.scale}: "
          f"{len(unstable)} unstable second-layer ReLUs (CROWN), "
          f"{int(((crown.layers[0][0] < 0) & (crown.layers[0][1] > 0)).sum())} in the first layer")
    print(table(["neuron", "CROWN width", "LP (best alpha) width", "single-neuron hull width",
                 f"hull facets, {args.rounds} rounds", f"envelope, {args.steps} steps", "MILP width",
                 "sampled width",
                 "MILP optimal", "seconds"], rows))
    if widths:  # --neurons 0: the margin bounds only
        mean = np.mean(widths, axis=0)
        names = ("CROWN", "LP", "hull", "facets", "envelope", "MILP", "sampled")
        print("mean width: " + ", ".join(f"{name} {value:.3f} ({value / mean[0]:.0%})"
                                         for name, value in zip(names, mean, strict=True)))
    sound = margin_bound(problem, eps, method=BoundMethod.ALPHA_CROWN, network_bounds=crown).lower
    low3, up3 = crown.layers[block.end]
    for label, select in (("its unstable neurons only", (low3 < 0) & (up3 > 0)),
                          ("also the active ones a max-pool reads (the default)", None)):
        began = time.perf_counter()
        tight = tightened_bounds(network, block, crown, steps=args.steps, select=select)
        on_tight = margin_bound(problem, eps, method=BoundMethod.ALPHA_CROWN, network_bounds=tight).lower
        print(f"envelope on the second layer's bounds, {label}: alpha-CROWN {float(on_tight):.2f} "
              f"({time.perf_counter() - began:.0f} s)")
    began = time.perf_counter()
    hull_bound = Envelope(envelope_steps=args.steps).verify(problem, eps).stats["raw_bound"]
    print(f"envelope verifier (the default layer bounds, and the margin rows through the hull): "
          f"{hull_bound:.2f} ({time.perf_counter() - began:.0f} s)")
    attacked = sampled_layers(network, attack.points)  # with the ranges above: every sample
    everything = [(torch.minimum(a, c), torch.maximum(b, d))
                  for (a, b), (c, d) in zip(inner, attacked, strict=True)]
    optimistic = margin_bound(problem, eps, method=BoundMethod.ALPHA_CROWN,
                              network_bounds=NetworkBounds(input=(lo, hi), layers=everything)).lower
    print(f"top-k margin: alpha-CROWN {float(sound):.2f} (sound); with sampled intermediate bounds "
          f"{float(optimistic):.2f} (NOT sound: an optimistic limit); attack's smallest margin "
          f"{float(attack.margins.min()):.2f}")


if __name__ == "__main__":
    main()
