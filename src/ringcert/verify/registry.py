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
    from ringcert.verify.propagation import AlphaCrown, Crown, Ibp

    name = VerifierName(name)
    if name is VerifierName.ATTACK:
        return Attack()
    if name is VerifierName.CASCADE:
        from ringcert.verify.cascade import Cascade

        return Cascade(stages=[Attack(), Crown(), AlphaCrown(), _milp(time_limit)])
    if name is VerifierName.MILP:
        return _milp(time_limit)
    if name is VerifierName.IBP:
        return Ibp()
    if name is VerifierName.CROWN:
        return Crown()
    if name is VerifierName.ALPHA_CROWN:
        return AlphaCrown()
    raise NotImplementedError(f"verifier {name.value} is not available yet")


def _milp(time_limit: float) -> Verifier:
    """The complete stage (always the cascade's last)."""
    from ringcert.verify.milp import Milp

    return Milp(time_limit=time_limit)
