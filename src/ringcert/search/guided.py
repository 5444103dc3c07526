"""The seed's oracle-guided search (Mour & Drachsler-Cohen 2023, section 3; docs/design.md sections 3.3-3.4).

Built on MaRVeL (Kabaha & Drachsler-Cohen, VMCAI 2023), per ring instead of per pixel:
start at the all-zero vector (robust by the precondition); at every iteration take a
step from the last verified vector, verify it, accept a robust candidate. A failed
candidate goes to the CEGIS step: rings its counterexample implicates are frozen and
``eps_c * cw + eps_v * (1 - cw)`` is tried toward the last verified ``eps_v``; ``l`` and
``step`` decay on every failure (MaRVeL: ``l`` from 0.99, x0.75). The search stops when
the step is below its floor, ``l`` below ``l_min``, every ring is frozen or saturated, or
the budget is spent. The runner's maximality pass then completes every ring to ``delta``.

Two step rules, used alone or one after the other (``GradientSource``):

- ``weakest-points`` (the seed's): the robustness-level gradient per ring ``G`` from the
  verifier's weakest points (MaRVeL); step along ``max(0, w - l' G)``
  (``l' = l ||w|| / ||G||`` over the active rings) normalized so that the freest ring
  moves by ``step``. It only ever grows rings.
- ``bound``: sequential linear programming on the CROWN lower bound ``b(eps)`` of the
  margin, whose gradient in epsilon is exact (Liu, Tomioka & Cevher, ICML 2019 maximize
  a volume under the same kind of bound). Each step solves
  ``max w.s  s.t.  b + grad b . s >= keep * b,  |s_d| <= step`` (a fractional knapsack,
  solved exactly by sorting rings by ``w_d / -d b/d eps_d``): it may shrink rings whose
  epsilon costs much bound per unit of size to grow cheaper ones, so it walks along the
  provable region's boundary instead of stopping at the first point it reaches there.
- ``weakest-points+bound`` (the default): the seed's rule until it stops, then ``bound``
  steps from there (trust region ``refine_step``, frozen rings released). On the shipped
  models (benchmarks/search.py) it finds larger neighborhoods than either rule alone: the
  seed's rule quickly reaches a balanced vector, the LP steps then move epsilon from rings
  where it costs much bound to rings where it costs little.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ringcert.problem import Problem
from ringcert.search.oracle import Decision, Oracle
from ringcert.search.shrink import cutting_weights
from ringcert.vocabulary import GradientSource, Shrink


@dataclass(frozen=True, kw_only=True)
class GuidedSettings:
    """``lr``: first step (the freest ring's growth; for ``bound`` the trust region);
    ``l0``/``l_decay``/``l_min``: the RL weight and its decay on failure (MaRVeL's defaults;
    ``weakest-points`` only); ``step_decay``/``step_growth``: step change on failure /
    success; ``min_step``: the search ends when the step falls below ``min_step * delta``
    (None: 1 for ``weakest-points``, the design's rule, and 0.1 for ``bound``, whose
    steps also shrink rings and keep finding size at finer steps);
    ``freeze_fraction``: freeze the rings that carry this share of a counterexample's
    first-order margin loss outside the verified box; ``keep``: the share of the current
    CROWN bound a ``bound`` step keeps in its linear model (the rest is spent on growth);
    ``refine_step``: the trust region the ``bound`` phase of ``weakest-points+bound``
    starts with."""

    delta: float = 0.01
    shrink: Shrink = Shrink.FIXED
    gradient: GradientSource = GradientSource.BOTH
    lr: float = 0.1
    l0: float = 0.99
    l_decay: float = 0.75
    l_min: float = 0.01
    step_decay: float = 0.5
    step_growth: float = 1.5
    min_step: float | None = None
    freeze_fraction: float = 0.5
    keep: float = 0.5
    refine_step: float = 0.025
    max_iterations: int = 1000


def _per_ring(problem: Problem, per_pixel: torch.Tensor) -> np.ndarray:
    """Sum of a (N, C, H, W) pixel quantity over each ring -> (N, R)."""
    values = per_pixel.sum(dim=1).reshape(per_pixel.shape[0], -1).double().numpy()
    rings = problem.rings.ravel()
    return np.stack([np.bincount(rings, weights=row, minlength=problem.num_rings)
                     for row in values])


def _margin_gradient(problem: Problem, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    z = points.detach().float().clone().requires_grad_(True)
    margins = problem.margin(z)
    (grad,) = torch.autograd.grad(margins.sum(), z)
    return grad, margins.detach()


def points_gradient(problem: Problem, points: torch.Tensor, eps: np.ndarray) -> np.ndarray:
    """``G_d``: how fast the worst-case margin falls as ``eps_d`` grows, from weakest points.

    At each point the worst corner moves against the margin gradient; a pixel counts only
    where the box can still grow in that direction (clipping at 0 and 1), so
    ``G_d = sum_p |dm/dz_p| * [not clipped]``; points are averaged with weights
    ``softmax(-margin)`` (MaRVeL).
    """
    grad, margins = _margin_gradient(problem, points)
    lo, hi = problem.box(eps)
    movable = torch.where(grad > 0, lo > 0, hi < 1)
    per_point = _per_ring(problem, grad.abs() * movable)
    weights = torch.softmax(-margins.double(), dim=0).numpy()
    return weights @ per_point


def bound_and_gradient(problem: Problem, eps: np.ndarray) -> tuple[float, np.ndarray]:
    """The CROWN lower bound on the top-k margin over the box of ``eps`` and its gradient
    ``d bound / d eps`` (autograd through the whole bound computation); of several targets,
    the minimum over their bounds (the gradient is the weakest target's)."""
    from ringcert.verify.bounds import BoundMethod, margin_bound

    eps_t = torch.as_tensor(eps, dtype=torch.float64).clone().requires_grad_(True)
    with torch.enable_grad():
        bound = torch.stack([margin_bound(single, eps_t, method=BoundMethod.CROWN).lower
                             for single in problem.split()]).min()
        (grad,) = torch.autograd.grad(bound, eps_t)
    return float(bound.detach()), grad.detach().numpy()


def knapsack_step(weights: np.ndarray, cost: np.ndarray, budget: float, lower: np.ndarray,
                  upper: np.ndarray) -> np.ndarray:
    """Exact solution of the LP ``max w.s  s.t.  cost.s <= budget, lower <= s <= upper``
    (``lower <= 0 <= upper``): rings whose cost is not positive go to ``upper``, the others
    start at ``lower`` and rise in order of decreasing ``w_d / cost_d`` while the budget
    lasts (a fractional knapsack). If even ``s = lower`` overspends, that is returned."""
    step = np.where(cost <= 0, upper, lower).astype(np.float64)
    room = budget - float(cost @ step)
    paying = np.flatnonzero((cost > 0) & (weights > 0))
    for ring in paying[np.argsort(-weights[paying] / cost[paying], kind="stable")]:
        if room <= 0:
            break
        rise = min(upper[ring] - lower[ring], room / cost[ring])
        step[ring] += rise
        room -= rise * cost[ring]
    return step


def implicated_rings(problem: Problem, z: torch.Tensor, verified: np.ndarray,
                     fraction: float) -> np.ndarray:
    """Rings whose growth beyond ``verified`` carries ``fraction`` of the counterexample's
    first-order margin loss (MaRVeL freezes the coordinates counterexamples use most)."""
    lo, hi = problem.box(verified)
    z = z.detach().float().reshape(problem.image.shape)
    excess = z - torch.max(torch.min(z, hi), lo)
    grad, _ = _margin_gradient(problem, z[None])
    harm = np.maximum(0.0, -_per_ring(problem, grad * excess[None])[0])
    chosen = np.zeros(problem.num_rings, dtype=bool)
    if harm.sum() <= 0:
        return chosen
    order = np.argsort(-harm)
    covered = np.cumsum(harm[order]) / harm.sum()
    count = int(np.searchsorted(covered, fraction) + 1)
    chosen[order[:count]] = True
    return chosen


def _direction(weights: np.ndarray, rl_grad: np.ndarray, level: float,
               active: np.ndarray) -> np.ndarray:
    w = np.where(active, weights, 0.0)
    g = np.where(active, rl_grad, 0.0)
    g_norm = np.linalg.norm(g)
    scale = level * np.linalg.norm(w) / g_norm if g_norm > 0 else 0.0
    return np.maximum(0.0, w - scale * g)


def _witness(decision: Decision) -> torch.Tensor | None:
    if decision.counterexample is not None:
        return decision.counterexample
    verdict = decision.verdict
    if verdict is not None and verdict.weakest_points is not None and len(verdict.weakest_points):
        return verdict.weakest_points[0]
    return None


class _State:
    def __init__(self, problem: Problem, settings: GuidedSettings) -> None:
        self.eps = np.zeros(problem.num_rings)
        self.frozen = np.zeros(problem.num_rings, dtype=bool)
        self.level = settings.l0
        self.step = settings.lr
        self.points = problem.image[None].clone()

    def accept(self, decision: Decision) -> None:
        self.eps = decision.eps
        verdict = decision.verdict
        if verdict is not None and verdict.weakest_points is not None and len(verdict.weakest_points):
            self.points = verdict.weakest_points


def _points_candidate(problem: Problem, state: _State, active: np.ndarray) -> np.ndarray | None:
    """The seed's step along ``max(0, w - l' G)``; None when the RL term blocks every ring."""
    rl_grad = points_gradient(problem, state.points, state.eps)
    direction = _direction(problem.weights, rl_grad, state.level, active)
    if direction.max() <= 0:
        return None
    return np.minimum(1.0, state.eps + state.step * direction / direction.max())


def _bound_candidate(problem: Problem, state: _State, settings: GuidedSettings) -> np.ndarray | None:
    """The LP step on the linearized CROWN bound inside the trust region ``step``; frozen
    rings may only shrink. None when the step gains no size."""
    bound, grad = bound_and_gradient(problem, state.eps)
    upper = np.where(state.frozen, 0.0, np.minimum(state.step, 1.0 - state.eps))
    lower = -np.minimum(state.step, state.eps)
    budget = (1.0 - settings.keep) * max(bound, 0.0)
    step = knapsack_step(problem.weights, -grad, budget, lower, upper)
    if float(problem.weights @ step) <= 1e-12:
        return None
    return np.clip(state.eps + step, 0.0, 1.0)


def guided_search(oracle: Oracle, settings: GuidedSettings) -> np.ndarray:
    """Returns the last accepted vector (the oracle tracks the best proved one)."""
    cw = cutting_weights(oracle.problem, settings.shrink)
    state = _State(oracle.problem, settings)
    if settings.gradient is not GradientSource.BOUND:
        _phase(oracle, state, settings, cw, by_bound=False)
    if settings.gradient is GradientSource.WEAKEST_POINTS:
        return state.eps
    if settings.gradient is GradientSource.BOTH:  # refine from where the seed's rule stopped
        state.step = settings.refine_step
        state.frozen[:] = False
    _phase(oracle, state, settings, cw, by_bound=True)
    return state.eps


def _phase(oracle: Oracle, state: _State, settings: GuidedSettings, cw: np.ndarray, *,
           by_bound: bool) -> None:
    """Steps of one rule until it stops (see the module docstring)."""
    problem = oracle.problem
    min_step = settings.min_step if settings.min_step is not None else (0.1 if by_bound else 1.0)
    for _ in range(settings.max_iterations):
        active = ~state.frozen & (state.eps < 1.0)
        if (not active.any() or state.step < min_step * settings.delta
                or (not by_bound and state.level < settings.l_min)):
            break
        if by_bound:
            candidate = _bound_candidate(problem, state, settings)
            if candidate is None:
                break
        else:
            candidate = _points_candidate(problem, state, active)
            if candidate is None:
                state.level *= settings.l_decay  # the RL term blocks every ring: weigh it less
                continue
        decision = oracle.decide(candidate)
        if decision.robust:
            state.accept(decision)
            state.step = min(1.0, state.step * settings.step_growth)
            continue
        _cegis(oracle, state, decision, cw, settings)


def _cegis(oracle: Oracle, state: _State, failed: Decision, cw: np.ndarray,
           settings: GuidedSettings) -> None:
    """Freeze the implicated rings, try the shrunk candidate, decay ``l`` and the step."""
    problem = oracle.problem
    witness = _witness(failed)
    if witness is not None:
        state.frozen |= implicated_rings(problem, witness, state.eps, settings.freeze_fraction)
        state.points = witness[None]
    state.level *= settings.l_decay
    state.step *= settings.step_decay
    if settings.shrink is Shrink.ADAPTIVE and state.points is not None and len(state.points):
        cw = cutting_weights(problem, Shrink.ADAPTIVE, at=state.points[0])
    shrunk = failed.eps * cw + state.eps * (1.0 - cw)
    shrunk[state.frozen] = state.eps[state.frozen]
    if np.max(shrunk - state.eps) < settings.delta / 2:
        return
    decision = oracle.decide(shrunk)
    if decision.robust:
        state.accept(decision)
    elif (witness := _witness(decision)) is not None:
        state.frozen |= implicated_rings(problem, witness, state.eps, settings.freeze_fraction)
