"""The maximality pass every search ends with (docs/design.md section 3.6; the seed's condition 2).

For each ring ``d`` with ``eps_d < 1`` it tries the step ``eps + delta * e_d``: a checked
counterexample means the ring is maximal at ``delta`` (``refuted``), an ``UNKNOWN`` means
only the verifier's incompleteness stops it (``unproven``). With ``grow`` a proved step
is kept and the ring is pushed further (galloping by doubling, then bisection on the
``delta`` grid) until its next ``delta`` step fails, so the returned vector is maximal
at ``delta`` in every ring; since the vector only grows, earlier rings' verdicts stay
valid by monotonicity (a counterexample to a step stays one from any larger vector; an
``unproven`` step from a larger vector is still unproven). Without ``grow`` (the uniform
baseline) the ring is only marked ``expandable``.

With the default cascade the pass is batched (issue 17, "maximality as an interval"): one
PGD batch attacks every ring's step (``pgd_boxes``, the cascade attack stage's settings), and
the cascade's CROWN stage bounds each remaining step. Only then do the per-ring cascade
queries run, resuming after CROWN (``Cascade``'s hint rule), closest bound first, while the
budget lasts; growth comes last. The screen runs outside the budget (it is the floor that
gives every ring a status: a ring the budget leaves is ``unproven`` by CROWN); its CROWN
calls are counted apart (``queries["screened"]``), and it can take an analysis a few seconds
past its time limit. Any other verifier gets the sequential pass: one full
query per step, in ring order.
"""

from __future__ import annotations

import numpy as np

from ringcert.search.budget import BudgetExhausted
from ringcert.search.oracle import Decision, Oracle
from ringcert.verify.attack import Attack, pgd_boxes
from ringcert.verify.cascade import Cascade
from ringcert.verify.propagation import Crown
from ringcert.verify.verdict import Verdict
from ringcert.vocabulary import MaximalityStatus, Status


def _failure_status(decision: Decision) -> MaximalityStatus:
    if decision.status is Status.NOT_ROBUST:
        return MaximalityStatus.REFUTED
    return MaximalityStatus.UNPROVEN


def _with(eps: np.ndarray, ring: int, value: float) -> np.ndarray:
    out = eps.copy()
    out[ring] = min(1.0, max(out[ring], value))
    return out


def _grow_ring(oracle: Oracle, eps: np.ndarray, ring: int, delta: float
               ) -> tuple[np.ndarray, MaximalityStatus]:
    """Push ``ring`` up on the grid ``eps_d + j * delta``; returns the new vector and status."""
    base = eps[ring]
    lo, hi, jump = 0, None, 1
    failed: Decision | None = None
    while hi is None:  # gallop: j = 1, 3, 7, ...
        j = lo + jump
        decision = oracle.decide(_with(eps, ring, base + j * delta))
        if decision.robust:
            eps = np.maximum(eps, oracle.cover(decision.eps))
            if eps[ring] >= 1.0:
                return eps, MaximalityStatus.SATURATED
            lo, jump = j, jump * 2
        else:
            hi, failed = j, decision
    while hi - lo > 1:  # bisect on the grid
        mid = (lo + hi) // 2
        decision = oracle.decide(_with(eps, ring, base + mid * delta))
        if decision.robust:
            eps = np.maximum(eps, oracle.cover(decision.eps))
            lo = mid
        else:
            hi, failed = mid, decision
    assert failed is not None
    return eps, _failure_status(failed)


def _screen_stages(oracle: Oracle) -> tuple[Attack, Crown] | None:
    """The cascade's attack and CROWN stages, when it starts with them (else no screen)."""
    verifier = oracle.verifier
    if not isinstance(verifier, Cascade) or len(verifier.stages) < 2:
        return None
    attack, crown = verifier.stages[:2]
    if type(attack) is Attack and type(crown) is Crown:
        return attack, crown
    return None


def screen_steps(oracle: Oracle, steps: dict[int, np.ndarray], attack: Attack, crown: Crown
                 ) -> dict[int, Verdict]:
    """Attack every step in one PGD batch (witnesses go to the oracle, which then refutes
    those steps from its cache), then bound each step the attack left with ``crown``
    (counted as ``screened``, outside the budget; proved steps are recorded, so the oracle
    covers them, while an UNKNOWN is not the final word and is not kept as a failure).
    Returns the CROWN verdicts by ring."""
    problem = oracle.problem
    rings = list(steps)
    if not rings:
        return {}
    found = pgd_boxes(problem, *problem.boxes([steps[ring] for ring in rings]),
                      restarts=attack.restarts, steps=attack.steps,
                      step_fraction=attack.step_fraction, seed=attack.seed)
    refuted = {ring for ring, z, margin in zip(rings, found.points, found.margins, strict=True)
               if bool(margin <= 0) and oracle.add_witness(steps[ring], z)}
    verdicts: dict[int, Verdict] = {}
    for ring in rings:
        if ring not in refuted:
            verdicts[ring] = crown.verify(problem, steps[ring])
            if verdicts[ring].robust:
                oracle.record(verdicts[ring], screened=True)
            else:
                oracle.budget.screen(verdicts[ring])
    return verdicts


def _sequential(oracle: Oracle, eps: np.ndarray, statuses: list[MaximalityStatus], *,
                delta: float, grow: bool) -> np.ndarray:
    for ring in range(len(eps)):
        if statuses[ring] is not MaximalityStatus.UNCHECKED:
            continue
        if grow:
            eps, statuses[ring] = _grow_ring(oracle, eps, ring, delta)
            continue
        decision = oracle.decide(_with(eps, ring, eps[ring] + delta))
        statuses[ring] = (MaximalityStatus.EXPANDABLE if decision.robust
                          else _failure_status(decision))
    return eps


def _batched(oracle: Oracle, eps: np.ndarray, statuses: list[MaximalityStatus],
             stages: tuple[Attack, Crown], *, delta: float, grow: bool) -> np.ndarray:
    steps = {ring: _with(eps, ring, eps[ring] + delta) for ring, status in enumerate(statuses)
             if status is MaximalityStatus.UNCHECKED}
    verdicts = screen_steps(oracle, steps, *stages)
    for ring in steps:
        if ring not in verdicts:
            statuses[ring] = MaximalityStatus.REFUTED
        elif not verdicts[ring].robust:
            statuses[ring] = MaximalityStatus.UNPROVEN  # by CROWN, until a later stage proves it
    proved = [ring for ring, verdict in verdicts.items() if verdict.robust]
    for ring in sorted((ring for ring, verdict in verdicts.items() if not verdict.robust),
                       key=lambda ring: (-_bound(verdicts[ring]), ring)):  # closest first
        decision = oracle.decide(steps[ring], hint=verdicts[ring])
        if decision.robust:
            statuses[ring] = MaximalityStatus.UNCHECKED  # until grown or marked
            proved.append(ring)
        else:
            statuses[ring] = _failure_status(decision)
    for ring in sorted(proved):
        if grow:
            eps, statuses[ring] = _grow_ring(oracle, eps, ring, delta)
        else:
            statuses[ring] = MaximalityStatus.EXPANDABLE
    return eps


def _bound(verdict: Verdict) -> float:
    return -np.inf if verdict.bound is None else verdict.bound


def maximality_pass(oracle: Oracle, eps: np.ndarray, *, delta: float, grow: bool,
                    batched: bool = True) -> tuple[np.ndarray, tuple[MaximalityStatus, ...]]:
    """Statuses per ring for ``eps`` (grown first when ``grow``); ``UNCHECKED`` where the
    budget left a ring undecided (with the batched pass: only a ring whose growth it cut).
    ``batched``: screen the steps first when the verifier is a cascade that starts with an
    attack and CROWN (``False``: the sequential pass, the reference the batch is tested
    against).

    ``eps`` must be robust (proved, or zero). The returned vector is ``eps`` itself or a
    proved vector above it.
    """
    eps = np.asarray(eps, dtype=np.float64).copy()
    statuses = [MaximalityStatus.SATURATED if value >= 1.0 else MaximalityStatus.UNCHECKED
                for value in eps]
    stages = _screen_stages(oracle) if batched else None
    try:
        if stages is None:
            eps = _sequential(oracle, eps, statuses, delta=delta, grow=grow)
        else:
            eps = _batched(oracle, eps, statuses, stages, delta=delta, grow=grow)
    except BudgetExhausted:
        pass
    for ring, status in enumerate(statuses):
        if eps[ring] >= 1.0:  # also a ring another ring's proved vector took to 1
            statuses[ring] = MaximalityStatus.SATURATED
        elif status is MaximalityStatus.UNCHECKED and \
                oracle.cover(_with(eps, ring, eps[ring] + delta)) is not None:
            statuses[ring] = MaximalityStatus.EXPANDABLE  # proved from the returned vector
    return eps, tuple(statuses)
