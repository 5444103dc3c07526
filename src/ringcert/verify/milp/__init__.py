"""The MILP verifier (Tjeng et al., ICLR 2019) on HiGHS.

``verifier`` holds the verifier and the solve, ``encoding`` the network as a MILP,
``bounds`` the LP-tightened second-layer bounds it encodes with.
"""

from ringcert.verify.milp.verifier import Milp

__all__ = ["Milp"]
