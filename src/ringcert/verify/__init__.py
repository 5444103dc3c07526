"""Verifiers for the top-k layered-neighborhood query (docs/design.md section 2).

The declared API: ``Verdict`` and ``Verifier`` (the contract, ``verdict``),
``make_verifier`` / ``search_verifier`` (verifiers by name, ``registry``). The verifiers
themselves: ``attack`` (PGD), ``propagation`` (IBP, CROWN, alpha-CROWN on ``bounds``),
``cascade``, and the complete stages ``bab`` (branch and bound) and ``milp``.
"""

from ringcert.verify.registry import make_verifier, search_verifier
from ringcert.verify.verdict import Verdict, Verifier, check_witness

__all__ = ["Verdict", "Verifier", "check_witness", "make_verifier", "search_verifier"]
