"""The complete stage of the cascade: branch and bound with beta-CROWN bounds.

``search`` holds the verifier and its queue, ``branching`` bounds and splits one branch,
``beta`` the split multipliers, ``split`` the split constraint and rule.
"""

from ringcert.verify.bab.search import BranchAndBound
from ringcert.verify.bab.split import Split, SplitRule

__all__ = ["BranchAndBound", "Split", "SplitRule"]
