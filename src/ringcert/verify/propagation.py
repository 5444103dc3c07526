"""Incomplete verifiers from bound propagation: IBP, CROWN and alpha-CROWN (docs/design.md 2).

Each computes a sound lower bound on the top-k margin over the epsilon box
(``bounds.margin_bound``) and answers ROBUST when the bound, minus a float32 padding,
is positive; otherwise UNKNOWN (never NOT_ROBUST: a negative bound is no counterexample).
The weakest point is the box point minimizing the final linear bound.

CROWN and alpha-CROWN need the same CROWN layer bounds; in the cascade alpha-CROWN runs
right after CROWN on the same box, so the two can share a ``LayerBoundsCache`` and compute
them once.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from ringcert.problem import Problem
from ringcert.verify.bounds import BoundMethod, NetworkBounds, envelope, margin_bound
from ringcert.verify.bounds.alpha import AlphaParams
from ringcert.verify.bounds.cache import LayerBoundsCache, NetworkMemo, hull_bounds, layer_bounds
from ringcert.verify.bounds.margin import MarginBound
from ringcert.verify.bounds.topk import candidate_sets, set_rows
from ringcert.verify.verdict import Verdict, Verifier, skipped
from ringcert.vocabulary import Status, UnknownReason, VerifierKind


class _BoundVerifier(Verifier):
    method: BoundMethod

    def __init__(self, *, joint: bool = True, grid: int = 4, abs_padding: float = 1e-4,
                 rel_padding: float = 1e-5, cache: LayerBoundsCache | None = None) -> None:
        self.joint = joint
        self.grid = grid
        self.abs_padding = abs_padding
        self.rel_padding = rel_padding
        self.cache = cache

    def _layers(self, problem: Problem, lo: torch.Tensor, hi: torch.Tensor) -> NetworkBounds:
        method = BoundMethod.IBP if self.method is BoundMethod.IBP else BoundMethod.CROWN
        return layer_bounds(problem.model, lo, hi, method=method, cache=self.cache)

    def _bound(self, problem: Problem, eps: torch.Tensor, bounds: NetworkBounds) -> MarginBound:
        return margin_bound(problem, eps, method=self.method, joint=self.joint,
                            network_bounds=bounds, grid=self.grid)

    def _run(self, problem: Problem, eps: torch.Tensor, *, hint: Verdict | None,
             warm_start: Verdict | None, time_limit: float | None) -> Verdict:
        with torch.no_grad():
            lo, hi = problem.box(eps)
            bounds = self._layers(problem, lo, hi)
            result = self._bound(problem, eps, bounds)
            logits = problem.logits()
            padding = self.abs_padding + self.rel_padding * float(logits.abs().max())
            bound = float(result.lower) - padding
            point = result.minimizer[None]
            margin = problem.margin(point)
        return Verdict(status=Status.ROBUST if bound > 0 else Status.UNKNOWN, verifier=self.kind,
                       bound=bound, weakest_points=point, weakest_margins=margin,
                       stats={"unstable": bounds.unstable(problem.model),
                              "raw_bound": float(result.lower), "padding": padding})


class Ibp(_BoundVerifier):
    """Interval bound propagation (Gowal et al. 2018), last affine layers exact."""

    kind = VerifierKind.IBP
    method = BoundMethod.IBP


class Crown(_BoundVerifier):
    """CROWN / DeepPoly linear relaxation (Zhang et al. 2018; Singh et al. 2019)."""

    kind = VerifierKind.CROWN
    method = BoundMethod.CROWN


class AlphaCrown(_BoundVerifier):
    """alpha-CROWN (Xu et al. 2021): CROWN with slopes and set weights optimized by Adam.

    With ``warm_steps`` set, a query on the same network, target and k as the previous one
    starts from that query's optimized parameters and runs ``warm_steps`` steps instead of
    ``steps`` (a search's consecutive boxes are close, so are their best slopes)."""

    kind = VerifierKind.ALPHA_CROWN
    method = BoundMethod.ALPHA_CROWN

    def __init__(self, *, joint: bool = True, grid: int = 4, steps: int = 20, lr: float = 0.1,
                 warm_steps: int | None = None, abs_padding: float = 1e-4,
                 rel_padding: float = 1e-5, cache: LayerBoundsCache | None = None,
                 max_gap: float | None = None) -> None:
        """``max_gap``: in a cascade, skip the optimization (answer UNKNOWN at once) when the
        hint is a CROWN verdict on the same query whose bound is below ``-max_gap`` (on a
        search's queries alpha-CROWN proves only those CROWN nearly proves, at the cost of
        several CROWN queries: benchmarks/README.md)."""
        super().__init__(joint=joint, grid=grid, abs_padding=abs_padding, rel_padding=rel_padding,
                         cache=cache)
        self.steps = steps
        self.lr = lr
        self.warm_steps = warm_steps
        self.max_gap = max_gap
        self._last: tuple[tuple[int, int, int], AlphaParams] | None = None

    def _run(self, problem: Problem, eps: torch.Tensor, *, hint: Verdict | None,
             warm_start: Verdict | None, time_limit: float | None) -> Verdict:
        if (self.max_gap is not None and hint is not None and hint.verifier is VerifierKind.CROWN
                and hint.bound is not None and hint.bound < -self.max_gap):
            return skipped(self.kind, hint, UnknownReason.SKIPPED_GAP)
        return super()._run(problem, eps, hint=hint, warm_start=warm_start, time_limit=time_limit)

    def _bound(self, problem: Problem, eps: torch.Tensor, bounds: NetworkBounds) -> MarginBound:
        key = (id(problem.model), problem.target, problem.k)
        start = None
        if self.warm_steps is not None and self._last is not None and self._last[0] == key:
            start = self._last[1]
        result = margin_bound(problem, eps, method=self.method, joint=self.joint,
                              network_bounds=bounds, grid=self.grid, alpha_lr=self.lr,
                              alpha_steps=self.steps if start is None else self.warm_steps,
                              alpha_start=start)
        if self.warm_steps is not None and result.alpha_params is not None:
            self._last = (key, result.alpha_params)
        return result


ENVELOPE_MIN_SECONDS = 20.0
"""The least time limit the envelope stage starts under (its queries take seconds to a minute
on the seed classifier)."""


class Envelope(AlphaCrown):
    """alpha-CROWN on tighter layer bounds: each first-layer ReLU relaxed by its convex hull
    over the input box (Tjandraatmadja et al., NeurIPS 2020) where the second affine layer is
    bounded, and the optimized margin rows taken through the same hull below the first ReLU
    layer (``bounds/envelope.py``; docs/design.md section 2.7c). Per query it costs seconds
    to a minute on the seed classifier (benchmarks/README.md), against alpha-CROWN's tenth of
    a second, so in a cascade it runs only when ``max_gap`` admits the hint's bound, and
    answers UNKNOWN (``skipped_unsupported``) on a network that does not start ``affine ->
    ReLU -> affine``. It cannot be interrupted, so under a time limit below
    ``ENVELOPE_MIN_SECONDS`` it is skipped (``skipped_time``)."""

    kind = VerifierKind.ENVELOPE

    def __init__(self, *, envelope_steps: int = envelope.ENVELOPE_STEPS, joint: bool = True,
                 grid: int = 4, steps: int = 20, lr: float = 0.1, warm_steps: int | None = None,
                 abs_padding: float = 1e-4, rel_padding: float = 1e-5,
                 cache: LayerBoundsCache | None = None, max_gap: float | None = None) -> None:
        """``envelope_steps``: steps of the hull bound per neuron and row; the others are
        alpha-CROWN's (``max_gap`` gates on any hint with a bound)."""
        super().__init__(joint=joint, grid=grid, steps=steps, lr=lr, warm_steps=warm_steps,
                         abs_padding=abs_padding, rel_padding=rel_padding, cache=cache,
                         max_gap=max_gap)
        self.envelope_steps = envelope_steps
        self._blocks: NetworkMemo[envelope.FirstBlock | None] = NetworkMemo(envelope.FirstBlock.of)

    def _first_block(self, problem: Problem) -> envelope.FirstBlock | None:
        return self._blocks.get(problem.model, tuple(problem.image.shape))

    def _run(self, problem: Problem, eps: torch.Tensor, *, hint: Verdict | None,
             warm_start: Verdict | None, time_limit: float | None) -> Verdict:
        if (self.max_gap is not None and hint is not None and hint.bound is not None
                and hint.bound < -self.max_gap):
            return skipped(self.kind, hint, UnknownReason.SKIPPED_GAP)
        if time_limit is not None and time_limit < ENVELOPE_MIN_SECONDS:
            return skipped(self.kind, hint, UnknownReason.SKIPPED_TIME)
        if self._first_block(problem) is None:
            return skipped(self.kind, hint, UnknownReason.SKIPPED_UNSUPPORTED)
        return _BoundVerifier._run(self, problem, eps, hint=hint, warm_start=warm_start,
                                   time_limit=time_limit)

    def _layers(self, problem: Problem, lo: torch.Tensor, hi: torch.Tensor) -> NetworkBounds:
        block = self._first_block(problem)
        assert block is not None  # _run checked
        return hull_bounds(problem.model, block, super()._layers(problem, lo, hi),
                           steps=self.envelope_steps, cache=self.cache)

    def _bound(self, problem: Problem, eps: torch.Tensor, bounds: NetworkBounds) -> MarginBound:
        result = super()._bound(problem, eps, bounds)
        block = self._first_block(problem)
        assert block is not None and result.alpha_params is not None
        params = result.alpha_params
        classes = bounds.layers[-1][0].shape[-1]
        sets = candidate_sets(classes, problem.target, problem.k)
        rows = set_rows(sets, torch.softmax(params.weight_logits, dim=1), classes, problem.target)
        through = envelope.envelope_rows(problem.model, block, bounds, rows.to(bounds.input[0].dtype),
                                         params.slopes, steps=self.envelope_steps)
        per_set = torch.maximum(result.per_set, through.to(result.per_set.dtype))
        return replace(result, lower=per_set.min(), per_set=per_set)
