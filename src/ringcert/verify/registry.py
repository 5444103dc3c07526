"""Verifiers by name (the CLI's ``--verifier`` vocabulary) with their default settings."""

from __future__ import annotations

from enum import Enum

from ringcert.verify.verdict import Verifier

WARM_STEPS = 5
"""alpha-CROWN steps when it starts from the previous query's parameters."""


class VerifierName(Enum):
    CASCADE = "cascade"
    ATTACK = "attack"
    IBP = "ibp"
    CROWN = "crown"
    ALPHA_CROWN = "alpha-crown"
    MILP = "milp"
    BAB = "bab"


def make_verifier(name: VerifierName | str, *, time_limit: float = 60.0,
                  max_unstable: int | None = None, alpha_gap: float | None = None,
                  complete_gap: float | None = None) -> Verifier:
    """A verifier with default settings.

    ``time_limit`` bounds the complete stage (branch and bound, or the MILP for ``milp``)
    per query. The gates are for searches, which ask hundreds of queries and treat UNKNOWN
    as not robust anyway: ``alpha_gap`` skips alpha-CROWN when CROWN's bound is below
    ``-alpha_gap``, ``complete_gap`` skips branch and bound when the best bound so far is
    below ``-complete_gap``, and ``max_unstable`` skips the MILP when more ReLUs are
    unstable (see ``Milp``). A single ``ringcert verify`` query runs every stage in full.
    alpha-CROWN starts each query from the previous query's slopes and then takes 5 steps
    instead of 20 (as tight on the shipped models' search queries, at 40% of the time; see
    ``AlphaCrown``). The cascade's complete stage is branch and bound: on the boundary
    queries of ``benchmarks/complete.py`` it settles 8 of 30 within 60 s, the MILP 4.
    """
    from ringcert.verify.attack import Attack
    from ringcert.verify.bab import BranchAndBound
    from ringcert.verify.propagation import AlphaCrown, Crown, Ibp, LayerBoundsCache

    name = VerifierName(name)
    if name is VerifierName.ATTACK:
        return Attack()
    if name is VerifierName.CASCADE:
        from ringcert.verify.cascade import Cascade

        shared = LayerBoundsCache()  # alpha-CROWN and branch and bound reuse CROWN's layer bounds
        return Cascade(stages=[Attack(), Crown(cache=shared),
                               AlphaCrown(cache=shared, max_gap=alpha_gap, warm_steps=WARM_STEPS),
                               BranchAndBound(time_limit=time_limit, cache=shared,
                                              max_gap=complete_gap)])
    if name is VerifierName.MILP:
        from ringcert.verify.milp import Milp

        # a stronger PGD phase first: near the boundary it refutes what the MILP cannot settle
        return Milp(time_limit=time_limit, attack_restarts=32, max_unstable=max_unstable)
    if name is VerifierName.BAB:
        return BranchAndBound(time_limit=time_limit, max_gap=complete_gap)
    if name is VerifierName.IBP:
        return Ibp()
    if name is VerifierName.CROWN:
        return Crown()
    return AlphaCrown(max_gap=alpha_gap, warm_steps=WARM_STEPS)
