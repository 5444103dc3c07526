"""Verifiers by name (the CLI's ``--verifier`` vocabulary) with their default settings."""

from __future__ import annotations

import math

from ringcert.options import COMPLETE_SECONDS
from ringcert.verify.verdict import Verifier
from ringcert.vocabulary import VerifierKind

WARM_STEPS = 5
"""alpha-CROWN steps when it starts from the previous query's parameters."""

# Search-tuned settings (a search asks hundreds of queries; UNKNOWN = not robust):
# alpha-CROWN only runs on queries CROWN nearly proves (AlphaCrown.max_gap), and the
# complete stage (branch and bound in the cascade) only on queries whose bound is already
# within the float padding of a proof (gap 0), with 10 s at most. The MILP keeps to queries
# with at most 150 unstable ReLUs. benchmarks/README.md has the measurements behind them.
SEARCH_COMPLETE_SECONDS = 10.0
SEARCH_COMPLETE_GAP = 0.0
SEARCH_MAX_UNSTABLE = 150
SEARCH_ALPHA_GAP = 0.5

ENVELOPE_GAP = 5.0
"""The cascade runs the envelope stage only on queries whose bound so far is above this
negative: it lifts alpha-CROWN's bound by 1.7-6 logits on the seed classifiers' queries just
past alpha-CROWN's reach, at a minute or so each (benchmarks/README.md). Searches leave the
stage out."""

BAB_ENVELOPE_STEPS = 5
"""Envelope steps for branch and bound's root layer bounds (``BranchAndBound.envelope_steps``)
in single queries, when CROWN's root bound is above ``-ENVELOPE_GAP``: on the boundary
queries of benchmarks/complete.py it proves one query the plain root leaves 2.4 logits short,
at a few seconds per query, and 20 steps settle the same queries; far below, on a wide box,
the pass costs most of a minute and proves nothing (benchmarks/README.md). Searches leave it
out, as they leave out the envelope stage."""

# Work limits instead of time limits, for runs that must not depend on the machine's load
# (a query budget and no time limit): the complete stage stops after this many branches
# (branch and bound) or nodes (the MILP), whatever the clock says.
DETERMINISTIC_BRANCHES = 400
DETERMINISTIC_NODES = 2000


def make_verifier(name: VerifierKind | str, *, time_limit: float = COMPLETE_SECONDS,
                  max_unstable: int | None = None, alpha_gap: float | None = None,
                  complete_gap: float | None = None, deterministic: bool = False,
                  envelope: bool = True) -> Verifier:
    """A verifier with default settings.

    ``time_limit`` bounds the complete stage (branch and bound, or the MILP for ``milp``)
    per query. The gates are for searches, which ask hundreds of queries and treat UNKNOWN
    as not robust anyway: ``alpha_gap`` skips alpha-CROWN when CROWN's bound is below
    ``-alpha_gap``, ``complete_gap`` skips branch and bound when the best bound so far is
    below ``-complete_gap``, and ``max_unstable`` skips the MILP when more ReLUs are
    unstable (see ``Milp``). A single ``ringcert verify`` query runs every stage in full.
    alpha-CROWN starts each query from the previous query's slopes and then takes 5 steps
    instead of 20 (see ``AlphaCrown``). The cascade's complete stage is branch and bound,
    which settles twice as many of ``benchmarks/complete.py``'s boundary queries as the MILP
    (benchmarks/README.md has the measurements behind these choices). ``deterministic``:
    the complete stage is bounded by work (``DETERMINISTIC_BRANCHES`` / ``_NODES``), not by
    ``time_limit``, so the same query gives the same answer on any machine load.
    ``envelope``: the cascade has the envelope stage (``Envelope``, gated by
    ``ENVELOPE_GAP``) between alpha-CROWN and branch and bound, and branch and bound (alone or
    in the cascade) takes its root's second-layer bounds from the hull
    (``BAB_ENVELOPE_STEPS``).
    """
    from ringcert.verify.attack import Attack
    from ringcert.verify.bab import BranchAndBound
    from ringcert.verify.bounds.cache import LayerBoundsCache
    from ringcert.verify.propagation import AlphaCrown, Crown, Envelope, Ibp

    name = VerifierKind(name)
    bab_settings: dict[str, object] = {"envelope_steps": BAB_ENVELOPE_STEPS if envelope else 0,
                                       "envelope_gap": ENVELOPE_GAP}
    if deterministic:
        time_limit = math.inf
        bab_settings["max_branches"] = DETERMINISTIC_BRANCHES
    if name is VerifierKind.ATTACK:
        return Attack()
    if name is VerifierKind.CASCADE:
        from ringcert.verify.cascade import Cascade

        shared = LayerBoundsCache()  # alpha-CROWN and branch and bound reuse CROWN's layer bounds
        hull = [Envelope(cache=shared, max_gap=ENVELOPE_GAP, warm_steps=WARM_STEPS)] if envelope else []
        return Cascade(stages=[Attack(), Crown(cache=shared),
                               AlphaCrown(cache=shared, max_gap=alpha_gap, warm_steps=WARM_STEPS),
                               *hull,
                               BranchAndBound(time_limit=time_limit, cache=shared,
                                              max_gap=complete_gap, **bab_settings)])
    if name is VerifierKind.MILP:
        from ringcert.verify.milp import Milp

        # a stronger PGD phase first: near the boundary it refutes what the MILP cannot settle
        nodes = {"solver_options": {"mip_max_nodes": DETERMINISTIC_NODES}} if deterministic else {}
        return Milp(time_limit=time_limit, attack_restarts=32, max_unstable=max_unstable, **nodes)
    if name is VerifierKind.BAB:
        return BranchAndBound(time_limit=time_limit, max_gap=complete_gap, **bab_settings)
    if name is VerifierKind.IBP:
        return Ibp()
    if name is VerifierKind.CROWN:
        return Crown()
    if name is VerifierKind.ENVELOPE:
        return Envelope(warm_steps=WARM_STEPS)
    return AlphaCrown(max_gap=alpha_gap, warm_steps=WARM_STEPS)


EXTENSION_STAGES: tuple[tuple[int, float | None], ...] = ((5, None), (20, 3.0))
"""The ray extension's envelope stages as (steps, gate): a short one first, which proves the
rungs with room to spare at a quarter of the cost, then the full one, unless the short one's
bound is below minus the gate (20 steps lifted 5 steps' bound by 1.7-1.9 on a `none` ray;
benchmarks/README.md)."""


def extension_verifier() -> Verifier:
    """The ray extension's verifier (``search.extension``): the attack, then the envelope
    stages of ``EXTENSION_STAGES`` (each runs CROWN and alpha-CROWN on its tightened
    bounds; they share CROWN's layer bounds)."""
    from ringcert.verify.attack import Attack
    from ringcert.verify.bounds.cache import LayerBoundsCache
    from ringcert.verify.cascade import Cascade
    from ringcert.verify.propagation import Envelope

    shared = LayerBoundsCache()
    return Cascade(stages=[Attack(), *(Envelope(envelope_steps=steps, cache=shared, max_gap=gate,
                                                warm_steps=WARM_STEPS)
                                       for steps, gate in EXTENSION_STAGES)])


def search_verifier(name: VerifierKind | str, *, deterministic: bool = False) -> Verifier:
    """The verifier ``name`` with the search-tuned gates and limits above (a search's time
    limit lowers the complete stage's limit further, see ``search.budget.QUERY_SHARE``);
    ``deterministic``: work limits instead of time limits (see ``make_verifier``)."""
    return make_verifier(name, time_limit=SEARCH_COMPLETE_SECONDS, max_unstable=SEARCH_MAX_UNSTABLE,
                         alpha_gap=SEARCH_ALPHA_GAP, complete_gap=SEARCH_COMPLETE_GAP,
                         deterministic=deterministic, envelope=False)
