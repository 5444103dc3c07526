"""Every closed vocabulary of ringcert, defined once (torch-free, so the CLI, batch workers
and reports read it without loading the verifiers).

The values are what the CLI accepts and what the JSON records hold; code compares members,
never the strings. See docs/design.md for what each term means.
"""

from __future__ import annotations

from enum import Enum


class Side(Enum):
    """Which digit of a DOUBLE-MNIST image is the target (the other one is perturbed).

    ``RIGHT`` (the default everywhere) means the target is the right digit and the rings
    grow from the left digit."""

    LEFT = "left"
    RIGHT = "right"

    @property
    def column(self) -> int:
        """Column of this digit in the (left, right) label and mask arrays."""
        return 0 if self is Side.LEFT else 1

    @property
    def other(self) -> Side:
        return Side.RIGHT if self is Side.LEFT else Side.LEFT


class Status(Enum):
    """A verifier's answer: ROBUST only from a proof, NOT_ROBUST only with a checked witness."""

    ROBUST = "robust"
    NOT_ROBUST = "not_robust"
    UNKNOWN = "unknown"


class VerifierKind(Enum):
    """The verifiers: the CLI's ``--verifier`` names, the stage that produced a verdict and
    the key under which searches count queries."""

    CASCADE = "cascade"
    ATTACK = "attack"
    IBP = "ibp"
    CROWN = "crown"
    ALPHA_CROWN = "alpha-crown"
    MILP = "milp"
    BAB = "bab"
    ENVELOPE = "envelope"


class PoolForm(Enum):
    """How branch and bound bounds a network's max-pools (``verify/bab/search.py``)."""

    RELAXED = "relaxed"  # the max-pool's own relaxation (layers/maxpool.py), max-pool splits
    RELU = "relu"  # rewritten into pairwise ReLU maxima (verify/relu_form.py), ReLU splits
    BEST = "best"  # whichever of the two has the higher CROWN bound at the root


class UnknownReason(Enum):
    """Why a verdict is UNKNOWN (set on every UNKNOWN verdict, on no other)."""

    INCONCLUSIVE = "inconclusive"  # the stage ran in full: its bound is not positive
    TIMEOUT = "timeout"  # a complete stage ran out of time or branches before settling
    SKIPPED_GAP = "skipped_gap"  # a gate skipped the stage: the same query's bound is far below 0
    SKIPPED_TIME = "skipped_time"  # too little of the time limit left to start the stage
    SKIPPED_UNSTABLE = "skipped_unstable"  # too many unstable ReLUs for the MILP
    SKIPPED_UNSUPPORTED = "skipped_unsupported"  # the stage does not apply to this network
    REJECTED_WITNESS = "rejected_witness"  # a claimed counterexample failed the forward-pass check


class Algorithm(Enum):
    """The searches for a maximal layered neighborhood."""

    UNIFORM = "uniform"
    NAIVE = "naive"
    GUIDED = "guided"


class Shrink(Enum):
    """Cutting weights of the guided search's CEGIS step (seed, section 3)."""

    FIXED = "fixed"
    SENSITIVITY = "sensitivity"
    ADAPTIVE = "adaptive"


class GradientSource(Enum):
    """How the guided search picks its step (see ``ringcert.search.guided``)."""

    WEAKEST_POINTS = "weakest-points"  # the seed / MaRVeL: RL gradient at the weakest points
    BOUND = "bound"  # an LP step on the CROWN bound's gradient in epsilon (Liu et al. 2019)
    BOTH = "weakest-points+bound"  # the seed's rule until it stops, then bound steps


class MaximalityStatus(Enum):
    """Outcome of trying ``eps + delta * e_d`` for one ring after a search."""

    REFUTED = "refuted"  # a checked counterexample: the ring is maximal at delta
    UNPROVEN = "unproven"  # only the verifier's incompleteness stops growth
    SATURATED = "saturated"  # eps_d = 1
    EXPANDABLE = "expandable"  # eps + delta * e_d was proved robust (not grown)
    # the budget ran out first (batched pass: while growing the ring), or the ray extension
    # moved the ring after its check
    UNCHECKED = "unchecked"


class Defense(Enum):
    """Training regimes of the shipped classifiers."""

    NONE = "none"
    L0 = "l0"
    PGD = "pgd"
    CERTIFIED = "certified"  # IBP on the top-k property (ringcert.training.certified)


class Weighting(Enum):
    """Built-in ring weight vectors (any non-negative vector also works)."""

    UNIFORM = "uniform"
    AREA = "area"


class Alternative(Enum):
    """The alternative hypothesis of a report's test (``report/statistics.py``), in scipy's words."""

    GREATER = "greater"  # one-sided: the wins (or the differences) lean above
    TWO_SIDED = "two-sided"
