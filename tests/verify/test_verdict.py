"""The soundness gates every verifier goes through (``Verifier.verify``), the attack's
witnesses, and the cascade's stage order, on a tiny seeded network."""

from __future__ import annotations

import pytest
import torch

from ringcert.problem import Problem
from ringcert.verify.attack import Attack, likely_sets, pgd_attack
from ringcert.verify.cascade import Cascade
from ringcert.verify.propagation import Crown, Ibp
from ringcert.verify.verdict import Verdict, Verifier, check_witness
from ringcert.vocabulary import Status, UnknownReason, VerifierKind
from tests.fixtures import make_problem, net_b


@pytest.fixture(scope="module")
def problem() -> Problem:
    network, shape = net_b(0)
    with torch.no_grad():
        network[0].weight.mul_(4)  # the output depends strongly on the input
    return make_problem(network, shape, 0, 2)


def _eps(problem: Problem, value: float) -> torch.Tensor:
    return torch.full((problem.num_rings,), value, dtype=torch.float64)


class _Claims(Verifier):
    """A broken verifier that always answers the same thing (tests the base class's gates)."""

    kind = VerifierKind.MILP

    def __init__(self, *, verdict: Verdict) -> None:
        self.verdict = verdict

    def _run(self, problem: Problem, eps: torch.Tensor, *, hint: Verdict | None,
             warm_start: Verdict | None, time_limit: float | None) -> Verdict:
        return self.verdict


def test_check_witness_accepts_only_in_box_points_that_break_the_top_k(problem):
    eps = _eps(problem, 1.0)
    found = Attack(restarts=16, steps=50).verify(problem, eps)
    assert found.status is Status.NOT_ROBUST and found.counterexample is not None
    margin = check_witness(problem, eps, found.counterexample)
    assert margin is not None and margin <= 0
    assert float(problem.margin(found.counterexample[None].float()).detach()[0]) == margin
    # the clean image keeps the target in the top-k: no witness
    assert check_witness(problem, eps, problem.image) is None
    # the same breaking point judged against a box too small to hold it: no witness
    assert check_witness(problem, _eps(problem, 0.0), found.counterexample) is None


def test_a_not_robust_claim_without_a_real_witness_becomes_unknown(problem):
    eps = _eps(problem, 0.01)
    for witness in (problem.image.clone(), None):  # a point that keeps the target; none at all
        liar = _Claims(verdict=Verdict(status=Status.NOT_ROBUST, verifier=VerifierKind.MILP,
                                       counterexample=witness))
        verdict = liar.verify(problem, eps)
        assert verdict.status is Status.UNKNOWN and verdict.counterexample is None


def test_a_robust_claim_with_a_non_positive_bound_is_refused(problem):
    liar = _Claims(verdict=Verdict(status=Status.ROBUST, verifier=VerifierKind.MILP, bound=-0.5))
    with pytest.raises(AssertionError, match="claimed ROBUST"):
        liar.verify(problem, _eps(problem, 0.01))


def test_attack_never_claims_robust_and_its_witnesses_are_in_the_box(problem):
    for value in (0.0, 0.01, 0.1, 0.3, 1.0):
        eps = _eps(problem, value)
        verdict = Attack().verify(problem, eps)
        assert verdict.status in ((Status.UNKNOWN,) if value == 0 else (Status.NOT_ROBUST, Status.UNKNOWN))
        if verdict.status is Status.NOT_ROBUST:
            lo, hi = problem.box(eps)
            assert bool(((verdict.counterexample >= lo) & (verdict.counterexample <= hi)).all())
            assert float(problem.margin(verdict.counterexample[None]).detach()[0]) <= 0


def test_cascade_stops_at_the_first_stage_that_decides(problem):
    cascade = Cascade(stages=[Attack(), Ibp(), Crown()])
    small = cascade.verify(problem, _eps(problem, 0.0))
    assert small.status is Status.ROBUST and small.verifier is VerifierKind.IBP
    assert len(small.stages) == 2  # the attack, then IBP decided; CROWN never ran
    assert [(s.verifier, s.status) for s in small.stages] == [
        (VerifierKind.ATTACK, Status.UNKNOWN), (VerifierKind.IBP, Status.ROBUST)]
    assert small.stages[0].reason is UnknownReason.INCONCLUSIVE and small.stages[1].time_s > 0
    large = cascade.verify(problem, _eps(problem, 1.0))
    assert large.status is Status.NOT_ROBUST and large.verifier is VerifierKind.ATTACK
    assert len(large.stages) == 1
    # a query IBP leaves open and CROWN proves is decided by CROWN, never by IBP
    for value in (0.001, 0.003, 0.01, 0.03):
        eps = _eps(problem, value)
        ibp, crown = Ibp().verify(problem, eps), Crown().verify(problem, eps)
        if ibp.status is Status.UNKNOWN and crown.status is Status.ROBUST:
            verdict = Cascade(stages=[Ibp(), Crown()]).verify(problem, eps)
            assert verdict.status is Status.ROBUST and verdict.verifier is VerifierKind.CROWN
            break
    else:
        pytest.fail("no query between IBP and CROWN on this network")


def test_likely_sets_are_k_sets_of_other_classes_strongest_first(problem):
    logits = problem.logits()[0]
    sets = likely_sets(problem, 7)
    assert sets.shape == (7, problem.k)
    others = sorted((c for c in range(problem.num_classes) if c != problem.target),
                    key=lambda c: -float(logits[c]))
    assert set(sets[0].tolist()) == set(others[: problem.k])
    for row in sets.tolist():
        assert len(set(row)) == problem.k and problem.target not in row
    sums = [float(logits[row].sum()) for row in sets.tolist()]
    distinct = len({tuple(sorted(row)) for row in sets.tolist()})
    assert sums[:distinct] == sorted(sums[:distinct], reverse=True)  # then it cycles


@pytest.mark.parametrize("targeted", [0, 4, 8])
def test_targeted_restarts_report_true_margins_of_points_in_the_box(problem, targeted):
    """Targeted restarts descend another loss, but every point is judged by the margin."""
    for value in (0.05, 0.3):
        eps = _eps(problem, value)
        result = pgd_attack(problem, eps, restarts=8, steps=30, step_fraction=0.1, seed=3,
                            targeted=targeted)
        lo, hi = problem.box(eps)
        assert bool(((result.points >= lo) & (result.points <= hi)).all())
        assert torch.allclose(result.margins, problem.margin(result.points).detach(), atol=1e-5)
        assert bool((result.margins[1:] >= result.margins[:-1]).all())
    with pytest.raises(ValueError, match="targeted"):
        pgd_attack(problem, eps, restarts=2, steps=1, step_fraction=0.1, seed=0, targeted=3)


class _Records(_Claims):
    """Answers UNKNOWN and remembers the time limit each call was given."""

    def __init__(self) -> None:
        super().__init__(verdict=Verdict(status=Status.UNKNOWN, verifier=VerifierKind.MILP))
        self.limits: list[float | None] = []

    def _run(self, problem: Problem, eps: torch.Tensor, *, hint: Verdict | None,
             warm_start: Verdict | None, time_limit: float | None) -> Verdict:
        self.limits.append(time_limit)
        return self.verdict


def test_cascade_passes_what_is_left_of_its_time_limit_to_each_stage(problem):
    first, last = _Records(), _Records()
    cascade = Cascade(stages=[first, Crown(), last])
    cascade.verify(problem, _eps(problem, 0.5), time_limit=5.0)
    assert first.limits[0] is not None and last.limits[0] is not None
    assert 0 <= last.limits[0] <= first.limits[0] <= 5.0
    cascade.verify(problem, _eps(problem, 0.5))
    assert first.limits[1] is None and last.limits[1] is None


def test_cascade_resumes_after_the_stage_an_unknown_hint_comes_from(problem):
    """The maximality screen's contract: a CROWN verdict on the query as hint skips the
    stages up to CROWN; a settled hint or one from a kind the cascade lacks skips nothing."""
    first, last = _Records(), _Records()
    cascade = Cascade(stages=[first, Crown(), last])
    eps = _eps(problem, 0.5)
    hint = Crown().verify(problem, eps)
    assert hint.status is Status.UNKNOWN
    verdict = cascade.verify(problem, eps, hint=hint)
    assert first.limits == [] and len(last.limits) == 1
    assert [s.verifier for s in verdict.stages] == [VerifierKind.CROWN, VerifierKind.MILP]
    cascade.verify(problem, eps, hint=Ibp().verify(problem, eps))
    assert len(first.limits) == 1
    zero = _eps(problem, 0.0)
    settled = cascade.verify(problem, zero, hint=Crown().verify(problem, zero))
    assert len(first.limits) == 2 and settled.stages[0].verifier is VerifierKind.MILP


@pytest.mark.parametrize("name", ["attack", "crown", "alpha-crown", "bab", "cascade"])
def test_verifiers_answer_the_same_inside_no_grad(problem, name):
    """A caller's ``torch.no_grad()`` (common around evaluation code) must not break the
    stages that need gradients (PGD, alpha- and beta-CROWN) or change their answers."""
    from ringcert.verify.registry import make_verifier

    for value in (0.02, 0.3):
        eps = _eps(problem, value)
        outside = make_verifier(name, time_limit=5.0).verify(problem, eps)
        with torch.no_grad():
            inside = make_verifier(name, time_limit=5.0).verify(problem, eps)
        assert inside.status is outside.status
        assert (inside.bound is None) == (outside.bound is None)
        if inside.bound is not None:
            assert inside.bound == pytest.approx(outside.bound, abs=1e-5)
