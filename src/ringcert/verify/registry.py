"""Verifiers by name (the CLI's ``--verifier`` vocabulary) with their default settings."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from ringcert.verify.verdict import Verifier

if TYPE_CHECKING:
    from ringcert.verify.propagation import LayerBoundsCache


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
                  max_unstable: int | None = None, alpha_gap: float | None = None) -> Verifier:
    """A verifier with default settings.

    ``time_limit`` bounds the complete stage (MILP, or branch and bound for ``bab``) per
    query. The two gates are for searches, which ask hundreds of queries and treat UNKNOWN
    as not robust anyway: ``alpha_gap`` skips alpha-CROWN when CROWN's bound is below
    ``-alpha_gap``, and ``max_unstable`` skips the MILP when more ReLUs are unstable (see
    ``Milp``). A single ``ringcert verify`` query runs every stage in full. alpha-CROWN
    starts each query from the previous query's slopes and then takes 5 steps instead of
    20 (as tight on the shipped models' search queries, at 40% of the time; see
    ``AlphaCrown``).
    """
    from ringcert.verify.attack import Attack
    from ringcert.verify.propagation import AlphaCrown, Crown, Ibp, LayerBoundsCache

    name = VerifierName(name)
    if name is VerifierName.ATTACK:
        return Attack()
    if name is VerifierName.CASCADE:
        from ringcert.verify.cascade import Cascade

        shared = LayerBoundsCache()  # alpha-CROWN reuses CROWN's layer bounds of the query
        return Cascade(stages=[Attack(), Crown(cache=shared),
                               AlphaCrown(cache=shared, max_gap=alpha_gap, warm_steps=WARM_STEPS),
                               _milp(time_limit, max_unstable, shared)])
    if name is VerifierName.MILP:
        return _milp(time_limit, max_unstable)
    if name is VerifierName.BAB:
        from ringcert.verify.bab import BranchAndBound

        return BranchAndBound(time_limit=time_limit)
    if name is VerifierName.IBP:
        return Ibp()
    if name is VerifierName.CROWN:
        return Crown()
    return AlphaCrown(max_gap=alpha_gap, warm_steps=WARM_STEPS)


def _milp(time_limit: float, max_unstable: int | None,
          cache: LayerBoundsCache | None = None) -> Verifier:
    """The complete stage (always the cascade's last)."""
    from ringcert.verify.milp import Milp

    # a stronger PGD phase first: near the boundary it refutes what the MILP cannot settle
    return Milp(time_limit=time_limit, attack_restarts=32, max_unstable=max_unstable,
                cache=cache)
