"""The soundness gates every verifier goes through (``Verifier.verify``), the attack's
witnesses, and the cascade's stage order, on a tiny seeded network."""

from __future__ import annotations

import pytest
import torch

from ringcert.problem import Problem
from ringcert.verify.attack import Attack
from ringcert.verify.cascade import Cascade
from ringcert.verify.propagation import Crown, Ibp
from ringcert.verify.verdict import Status, Verdict, Verifier, VerifierKind, check_witness
from tests.verify.test_bounds import make_problem, net_b


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

    def _run(self, problem: Problem, eps: torch.Tensor, hint: Verdict | None) -> Verdict:
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
    assert small.stats["stages_run"] == 2  # the attack, then IBP decided; CROWN never ran
    large = cascade.verify(problem, _eps(problem, 1.0))
    assert large.status is Status.NOT_ROBUST and large.verifier is VerifierKind.ATTACK
    assert large.stats["stages_run"] == 1
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
