"""The second complete verifier: branch and bound over ReLU and max-pool splits with
beta-CROWN bounds.

The approach behind alpha-beta-CROWN (Wang et al., NeurIPS 2021, "Beta-CROWN"; Bunel et
al., JMLR 2020, "Branch and bound for piecewise linear neural network verification"):

1. a PGD falsification phase (``attack.falsify``), which settles most NOT_ROBUST queries;
2. the root branch: the box with its CROWN layer bounds (shared with the cascade through a
   ``LayerBoundsCache``) and its joint top-k margin bound; with ``PoolForm.BEST`` also the
   same on the network with its max-pools rewritten into ReLUs (``verify/relu_form.py``),
   and the search goes on with whichever root bound is higher (the rewrite is far tighter
   on small local boxes, far looser on wide ones: benchmarks/README.md); with
   ``envelope_steps``, both forms' root layer bounds rest on the second affine layer's bounds
   from the first ReLU layer's hull over the box (``bounds/envelope.py``), which every branch
   inherits;
3. a loop over the open branches, worst bound first (a priority queue): pop ``batch`` of
   them, split each on one neuron, a ReLU or a max-pool window's top input
   (``branching.children``: the children's layer bounds clamp the split neuron and
   recompute the later layers with CROWN, and the sets CROWN leaves open get beta-CROWN's
   split multipliers, ``beta.py``; once nothing is left to split, the box is bisected
   instead), prune every child whose bound minus ``padding`` is positive and every empty
   child, and check the children's bound minimizers with a forward pass (PGD from the most
   promising one).

ROBUST only when every leaf is pruned, with the smallest leaf bound as ``bound`` (a sound
lower bound on the robustness level over the whole box, since the leaves cover it);
NOT_ROBUST only through a witness that the base class re-checks; UNKNOWN when the time or
the branch budget runs out first, with the smallest open or pruned leaf bound as ``bound``.
Bounding is per branch: the bound operators take one set of intermediate bounds, so a
step's ``batch`` shares the witness check and the attack, not the backward passes.
"""

from __future__ import annotations

import heapq
import math
import time
from collections import Counter
from dataclasses import replace
from itertools import count
from typing import TYPE_CHECKING

import torch
from torch import nn

from ringcert.problem import Problem
from ringcert.verify.attack import falsify, pgd_attack
from ringcert.verify.bab.branching import Branch, SplitRule, bound, children
from ringcert.verify.bounds import BoundMethod, NetworkBounds, envelope
from ringcert.verify.bounds.cache import NetworkMemo, hull_bounds, layer_bounds
from ringcert.verify.bounds.crown import crown_layer_bounds
from ringcert.verify.propagation import ENVELOPE_MIN_SECONDS
from ringcert.verify.relu_form import relu_form
from ringcert.verify.verdict import Verdict, Verifier, capped, check_witness, skipped, start_point
from ringcert.vocabulary import PoolForm, Status, UnknownReason, VerifierKind

if TYPE_CHECKING:
    from ringcert.verify.bounds.cache import LayerBoundsCache


MIN_SECONDS = 2.0
"""Below this time limit a query answers UNKNOWN at once: the PGD phase and the root bound
always run (over a second on the seed classifier), so a search's last seconds would overrun."""


class _Points:
    """The box points with the smallest margins seen (attack restarts, leaf minimizers), and
    the first one that passes the forward-pass witness check."""

    def __init__(self, problem: Problem, eps: torch.Tensor, keep: int) -> None:
        self.problem, self.eps, self.keep = problem, eps, keep
        self.points: torch.Tensor | None = None
        self.margins: torch.Tensor | None = None
        self.witness: torch.Tensor | None = None

    def add(self, points: torch.Tensor, margins: torch.Tensor | None = None) -> None:
        if margins is None:
            margins = self.problem.margin(points).detach()
        if self.witness is None:
            for index in torch.argsort(margins)[: self.keep]:
                if float(margins[index]) > 0:
                    break
                if check_witness(self.problem, self.eps, points[index]) is not None:
                    self.witness = points[index]
                    break
        if self.points is not None:
            points, margins = torch.cat([self.points, points]), torch.cat([self.margins, margins])
        order = torch.argsort(margins)[: self.keep]
        self.points, self.margins = points[order], margins[order]

    @property
    def best(self) -> float:
        return math.inf if self.margins is None else float(self.margins[0])


class BranchAndBound(Verifier):
    """Complete verifier by branch and bound. Settings (keyword-only):

    ``time_limit`` seconds per query (the attack and the root bound included);
    ``batch`` branches split per step; ``max_branches`` bounded branches per query (each
    open one holds its layer bounds: about 200 kB on the seed classifier); ``split`` the
    neuron choice (``SplitRule``); ``attack_restarts`` and ``attack_steps`` the PGD phase
    before branching (``attack.falsify``, as strong as the MILP stage's, see
    benchmarks/README.md; 0 restarts: none, and no PGD on the leaves either); a one-restart PGD
    of ``attack_steps`` steps also starts from a step's lowest-margin leaf minimizer when
    it is the best point so far, and every ``leaf_attack_every`` steps in any case;
    ``abs_padding`` + ``rel_padding`` * max |logit| the float32 slack a leaf bound must
    clear (as for the other bound verifiers); ``beta_steps`` and ``beta_lr`` the Adam steps
    on each branch's split multipliers (beta-CROWN, ``beta.py``; 0: plain CROWN bounds);
    ``grid`` the top-k lambda grid; ``keep``
    weakest points; ``seed`` the attack's; ``cache`` the cascade's shared CROWN layer bounds;
    ``max_gap``: in a cascade, answer UNKNOWN at once when the hint's bound (alpha-CROWN's
    or CROWN's) is below ``-max_gap`` (for searches, which ask hundreds of queries: on the
    guided search's queries that reach this stage, see ``registry.search_verifier``);
    ``pool_form``: how max-pools are bounded (``PoolForm``; networks without a max-pool the
    rewrite supports always keep ``RELAXED``); ``envelope_steps``: steps of the hull bound on
    the root's second affine layer (0: CROWN's; networks that do not start ``affine -> ReLU ->
    affine`` keep CROWN's); the pass runs once per query, only when CROWN's root bound is above
    ``-envelope_gap`` (None: always) and at least ``ENVELOPE_MIN_SECONDS`` are left, since it
    cannot be interrupted. Counterexamples are always checked on the network as given.
    """

    kind = VerifierKind.BAB

    def __init__(self, *, time_limit: float = 60.0, batch: int = 4, max_branches: int = 20_000,
                 split: SplitRule | str = SplitRule.BABSR, attack_restarts: int = 32,
                 attack_steps: int = 100, abs_padding: float = 1e-4, rel_padding: float = 1e-5,
                 leaf_attack_every: int = 10, beta_steps: int = 3, beta_lr: float = 0.2,
                 grid: int = 4, keep: int = 8, seed: int = 0,
                 cache: LayerBoundsCache | None = None, max_gap: float | None = None,
                 pool_form: PoolForm | str = PoolForm.BEST, envelope_steps: int = 0,
                 envelope_gap: float | None = None) -> None:
        self.time_limit = time_limit
        self.batch = batch
        self.max_branches = max_branches
        self.split = SplitRule(split)
        self.attack_restarts = attack_restarts
        self.attack_steps = attack_steps
        self.leaf_attack_every = leaf_attack_every
        self.abs_padding = abs_padding
        self.rel_padding = rel_padding
        self.beta_steps = beta_steps
        self.beta_lr = beta_lr
        self.grid = grid
        self.keep = keep
        self.seed = seed
        self.cache = cache
        self.max_gap = max_gap
        self.pool_form = PoolForm(pool_form)
        self.envelope_steps = envelope_steps
        self.envelope_gap = envelope_gap
        self._blocks: NetworkMemo[envelope.FirstBlock | None] = NetworkMemo(envelope.FirstBlock.of)
        self._relu_forms: NetworkMemo[nn.Sequential | None] = NetworkMemo(relu_form)

    def relu_form(self, problem: Problem) -> nn.Sequential | None:
        """``relu_form`` of the problem's network, built once per network and input shape."""
        return self._relu_forms.get(problem.model, tuple(problem.image.shape))

    def first_block(self, problem: Problem) -> envelope.FirstBlock | None:
        """The envelope's ``FirstBlock`` of the problem's network (as given), built once."""
        return self._blocks.get(problem.model, tuple(problem.image.shape))

    def _run(self, problem: Problem, eps: torch.Tensor, *, hint: Verdict | None,
             warm_start: Verdict | None, time_limit: float | None) -> Verdict:
        far = (self.max_gap is not None and hint is not None and hint.bound is not None
               and hint.bound < -self.max_gap)
        if far or (time_limit is not None and time_limit < MIN_SECONDS):
            return skipped(self.kind, hint,
                           UnknownReason.SKIPPED_GAP if far else UnknownReason.SKIPPED_TIME)
        with torch.no_grad():
            return _Search(self, problem, eps, start_point(hint, warm_start),
                           capped(self.time_limit, time_limit)).run()


class _Search:
    """One query's branch and bound: the queue of open leaves and the running counts."""

    def __init__(self, settings: BranchAndBound, problem: Problem, eps: torch.Tensor,
                 start: torch.Tensor | None, time_limit: float) -> None:
        self.settings, self.problem, self.eps, self.start = settings, problem, eps, start
        self.deadline = time.perf_counter() + time_limit
        self.padding = settings.abs_padding + settings.rel_padding * float(problem.logits().abs().max())
        self.points = _Points(problem, eps, settings.keep)
        self.bounded = problem  # the problem whose network is bounded (``_root`` chooses)
        self.queue: list[tuple[float, int, Branch]] = []
        self.ticket = count()
        self.settled = math.inf  # smallest bound among pruned and unsplittable leaves
        self.steps = 0
        self.counts: Counter[str] = Counter(branches=0, pruned=0, empty=0, stuck=0, max_depth=0,
                                            leaf_attacks=0)
        self.stats: dict[str, float | int | str] = {}

    def run(self) -> Verdict:
        settings, problem, eps = self.settings, self.problem, self.eps
        began = time.perf_counter()
        if settings.attack_restarts > 0:
            found = falsify(problem, eps, self.start, restarts=settings.attack_restarts,
                            steps=settings.attack_steps, seed=settings.seed)
            self.points.add(found.points, found.margins)
            if self.points.witness is not None:
                return self._verdict(Status.NOT_ROBUST, settled_by=VerifierKind.ATTACK)
        self._settle([self._root()])
        while self.queue and self.points.witness is None:
            if (time.perf_counter() > self.deadline
                    or self.counts["branches"] >= settings.max_branches):
                break
            self._step()
        elapsed = time.perf_counter() - began
        self.stats["branches_per_s"] = self.counts["branches"] / max(elapsed, 1e-9)
        if self.points.witness is not None:
            return self._verdict(Status.NOT_ROBUST)
        if not self.queue and not self.counts["stuck"] and math.isfinite(self.settled):
            return self._verdict(Status.ROBUST)
        # open leaves left: out of time or branches; none left but unsplittable ones: stuck
        return self._verdict(Status.UNKNOWN, reason=UnknownReason.TIMEOUT if self.queue
                             else UnknownReason.INCONCLUSIVE)

    def _root(self) -> Branch:
        """The root branch in the pool form ``settings.pool_form`` asks for (the better root
        bound for ``BEST``), on CROWN's layer bounds or, when the hull pass runs
        (``_hull_pays``), on the hull's where that root is no lower; ``self.bounded`` becomes
        the problem on the chosen form's network."""
        settings, problem = self.settings, self.problem
        lo, hi = problem.box(self.eps)
        relu = None if settings.pool_form is PoolForm.RELAXED else settings.relu_form(problem)
        plain = layer_bounds(problem.model, lo, hi, method=BoundMethod.CROWN, cache=settings.cache)
        best = self._best_form(lo, hi, relu, plain, {})
        block = settings.first_block(problem) if settings.envelope_steps > 0 else None
        if block is not None and self._hull_pays(best[1].lower):
            began = time.perf_counter()
            tight = hull_bounds(problem.model, block, plain, steps=settings.envelope_steps,
                                cache=settings.cache)
            self.stats["envelope_s"] = time.perf_counter() - began
            hull = self._best_form(lo, hi, relu, tight, {block.end: tight.layers[block.end]})
            if hull[1].lower >= best[1].lower:  # on a tie the tighter layer bounds
                best = hull
        form, root, self.bounded, layers = best
        self.stats.update(root_bound=root.lower, unstable=layers.unstable(self.bounded.model),
                          pool_form=form.value)
        return root

    def _hull_pays(self, root_bound: float) -> bool:
        """Whether the hull pass runs: CROWN's root bound is within ``envelope_gap`` of a proof
        (far below, the pass costs most of a minute on a wide box and proves nothing), and the time
        left is at least the envelope stage's ``ENVELOPE_MIN_SECONDS`` (the pass cannot be
        interrupted)."""
        gap = self.settings.envelope_gap
        return ((gap is None or root_bound > -gap)
                and self.deadline - time.perf_counter() >= ENVELOPE_MIN_SECONDS)

    def _best_form(self, lo: torch.Tensor, hi: torch.Tensor, relu: nn.Sequential | None,
                   layers: NetworkBounds, given: dict[int, tuple[torch.Tensor, torch.Tensor]]
                   ) -> tuple[PoolForm, Branch, Problem, NetworkBounds]:
        """(form, root, problem on that form's network, its layer bounds) with the higher root
        bound among the forms asked; ``layers`` bound the network as given, ``given`` the
        layers before the first max-pool to carry into the ReLU form (the same in both)."""
        settings, problem = self.settings, self.problem
        forms = []  # on a tie the relaxed form stays
        if relu is None or settings.pool_form is PoolForm.BEST:
            forms.append((PoolForm.RELAXED, problem, layers))
        if relu is not None:
            forms.append((PoolForm.RELU, replace(problem, model=relu), NetworkBounds(
                input=(lo, hi), layers=crown_layer_bounds(relu, lo, hi, given=given))))
        best = None
        for form, bounded, bounds in forms:
            root = bound(bounded, self.eps, (lo, hi), [(a.detach(), b.detach()) for a, b in bounds.layers],
                         grid=settings.grid)
            self.stats[f"root_bound_{form.value}"] = root.lower
            if best is None or root.lower > best[1].lower:
                best = (form, root, bounded, bounds)
        assert best is not None
        return best

    def _step(self) -> None:
        """Split the ``batch`` worst open leaves; prune, queue and check their children."""
        self.steps += 1
        popped = [heapq.heappop(self.queue)[2]
                  for _ in range(min(self.settings.batch, len(self.queue)))]
        kids: list[Branch] = []
        for index, branch in enumerate(popped):
            if time.perf_counter() > self.deadline:
                for rest in popped[index:]:
                    heapq.heappush(self.queue, (rest.lower, next(self.ticket), rest))
                break
            split = children(self.bounded, self.eps, branch, rule=self.settings.split,
                             grid=self.settings.grid, settled=self.padding,
                             beta_steps=self.settings.beta_steps, beta_lr=self.settings.beta_lr)
            if split is None:  # nothing left to split: an open leaf for good
                self.counts["stuck"] += 1
                self.settled = min(self.settled, branch.lower)
                continue
            found, empty = split
            self.counts["empty"] += empty
            kids.extend(found)
        self._settle(kids)

    def _settle(self, kids: list[Branch]) -> None:
        """Count, prune or queue freshly bounded branches; check their minimizers."""
        if not kids:
            return
        self.counts["branches"] += len(kids)
        for kid in kids:
            self.counts["max_depth"] = max(self.counts["max_depth"], kid.depth)
            if kid.lower - self.padding > 0:
                self.counts["pruned"] += 1
                self.settled = min(self.settled, kid.lower)
            else:
                heapq.heappush(self.queue, (kid.lower, next(self.ticket), kid))
        before = self.points.best
        minimizers = torch.stack([kid.minimizer for kid in kids])
        margins = self.problem.margin(minimizers).detach()
        self.points.add(minimizers, margins)
        settings = self.settings
        due = self.steps % max(settings.leaf_attack_every, 1) == 0
        if (self.points.witness is None and settings.attack_restarts > 0
                and (float(margins.min()) < before or due)):
            found = pgd_attack(self.problem, self.eps, restarts=1, steps=settings.attack_steps,
                               step_fraction=0.1, seed=settings.seed,
                               start=minimizers[int(margins.argmin())])
            self.points.add(found.points, found.margins)
            self.counts["leaf_attacks"] += 1

    def _verdict(self, status: Status, *, settled_by: VerifierKind | None = None,
                 reason: UnknownReason | None = None) -> Verdict:
        lowest = min(self.settled, self.queue[0][0] if self.queue else math.inf)
        bound = lowest - self.padding if math.isfinite(lowest) else None
        return Verdict(status=status, verifier=VerifierKind.BAB, bound=bound,
                       counterexample=self.points.witness, weakest_points=self.points.points,
                       weakest_margins=self.points.margins,
                       stats={**self.counts, **self.stats, "open": len(self.queue),
                              "padding": self.padding},
                       settled_by=settled_by, reason=reason)
