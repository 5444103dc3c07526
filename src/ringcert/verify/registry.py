"""Verifiers by name (the CLI's ``--verifier`` vocabulary) with their default settings."""

from __future__ import annotations

from enum import Enum

from ringcert.verify.verdict import Verifier


class VerifierName(Enum):
    CASCADE = "cascade"
    ATTACK = "attack"
    IBP = "ibp"
    CROWN = "crown"
    ALPHA_CROWN = "alpha-crown"
    MILP = "milp"


def make_verifier(name: VerifierName | str, *, time_limit: float = 60.0) -> Verifier:
    """A verifier with default settings; ``time_limit`` bounds the complete stage."""
    from ringcert.verify.attack import Attack

    name = VerifierName(name)
    if name is VerifierName.ATTACK:
        return Attack()
    if name is VerifierName.CASCADE:
        from ringcert.verify.cascade import Cascade

        return Cascade(stages=[Attack()])
    raise NotImplementedError(f"verifier {name.value} is not available yet")
