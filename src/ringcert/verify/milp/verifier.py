"""The complete verifier: the MIPVerify MILP of the top-k margin, solved with HiGHS.

Tjeng, Xiao & Tedrake, ICLR 2019 (encoding in ``encoding``). What makes it finish:

- pre-activation bounds from CROWN (IBP only when CROWN is unavailable), padded for
  float32 rounding, so that few ReLUs are unstable and big-M constants are small;
- a warm start from the attack's best point (the hint, or a short PGD run);
- early stop as soon as the sign of the optimum is known: a dual bound below
  ``-tolerance`` proves ROBUST, an incumbent whose input passes the float32 forward-pass
  check proves NOT_ROBUST;
- a per-query time limit (UNKNOWN when it runs out);
- optionally a partial MILP (binaries only for the ``binary_budget`` most uncertain
  unstable ReLUs, triangle relaxation for the rest, as MaRVeL / ERAN do), which keeps
  ROBUST sound; its incumbents count only after the forward-pass check.
- optionally alpha-optimized (LP-tight) bounds for the second convolution
  (``bounds``), a max-pool window budget (Planet relaxation beyond it), and a
  stronger PGD phase before the MILP (the cascade's default: near the robustness
  boundary the MILP of the seed classifier rarely finishes its root LP in 60 s, while a
  longer attack refutes some queries in about a second).

The verdict's ``bound`` is ``-dual bound``: a sound lower bound on the robustness level
up to the solver's tolerances (hence the safety ``tolerance``). The solver's incumbents
are the weakest points.
"""

from __future__ import annotations

import copy
import os
import sys
import time
from typing import TYPE_CHECKING

import highspy
import numpy as np
import torch

from ringcert.problem import Problem
from ringcert.verify.attack import falsify, pgd_attack
from ringcert.verify.bounds import BoundMethod
from ringcert.verify.bounds.cache import layer_bounds
from ringcert.verify.milp.bounds import optimized_second_conv, supports_local
from ringcert.verify.milp.encoding import Encoding, VarKind, encode
from ringcert.verify.verdict import Verdict, Verifier, capped, check_witness, start_point
from ringcert.vocabulary import Status, UnknownReason, VerifierKind

if TYPE_CHECKING:
    from ringcert.verify.bounds.cache import LayerBoundsCache


def quiet_highs() -> highspy.Highs:
    """A HiGHS instance with no output. HiGHS 1.16 prints its banner to the process's
    stdout (file descriptor 1, below Python) when the first instance is built, before any
    option can be set; that would corrupt ``ringcert verify --json``, so descriptor 1
    points at /dev/null for the construction."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            highs = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    highs.setOptionValue("output_flag", False)
    return highs


def assignment(encoding: Encoding, problem: Problem, z: torch.Tensor) -> np.ndarray:
    """Values of every MILP variable for the input ``z`` (a feasible point: warm start)."""
    acts = []
    x = z.detach().double().reshape(1, *problem.image.shape)
    with torch.no_grad():
        for layer in copy.deepcopy(problem.model).double():
            x = layer(x)
            acts.append(x[0].reshape(-1).numpy())
    kind, layer, index = encoding.recipe_kind, encoding.recipe_layer, encoding.recipe_index
    values = np.zeros(encoding.num_vars)
    flat = z.detach().double().reshape(-1).numpy()
    for var_kind in (VarKind.INPUT, VarKind.NEURON, VarKind.RELU_ON):
        for number in np.unique(layer[kind == var_kind.value]):
            pick = np.flatnonzero((kind == var_kind.value) & (layer == number))
            if var_kind is VarKind.INPUT:
                values[pick] = flat[index[pick]]
            elif var_kind is VarKind.NEURON:
                values[pick] = acts[number][index[pick]]
            else:
                values[pick] = (acts[number][index[pick]] > 0).astype(float)
    for selectors, inputs, number in encoding.pool_groups:
        values[selectors[int(np.argmax(acts[number][inputs]))]] = 1.0
    logits = acts[-1]
    others = np.array([c for c in range(logits.shape[0]) if c != problem.target])
    diff = logits[others] - logits[problem.target]
    top = others[np.argsort(-diff)[: problem.k]]
    select = np.flatnonzero(kind == VarKind.SELECT.value)
    values[select] = np.isin(index[select], top).astype(float)
    values[encoding.score_var] = np.sort(diff)[::-1][problem.k - 1]
    return np.clip(values, encoding.col_lo, encoding.col_hi)


class Milp(Verifier):
    """Complete MILP verifier. Settings (keyword-only):

    ``time_limit`` seconds per query; ``bounds`` the bound method for pre-activations;
    ``binary_budget`` None for the exact MILP or the number of unstable ReLUs that keep
    binaries (partial MILP); ``warm_start`` from the hint's (or a short attack's) best
    point; ``early_stop`` once the sign is known; ``tolerance`` the safety margin a dual
    bound must clear to prove ROBUST; ``threads`` for HiGHS; ``keep`` weakest points;
    ``tighten_steps`` > 0 tightens the second convolution's bounds by alpha-optimization
    (``bounds``); ``pool_budget`` max-pool windows keeping binaries (None: all);
    ``solver_options`` extra HiGHS options; ``attack_restarts`` > 0 runs a stronger PGD
    (``attack_steps`` steps) first, which can settle NOT_ROBUST before any MILP;
    ``max_unstable`` answers UNKNOWN without building the MILP (or running that attack)
    when more ReLUs than this are unstable (on the seed classifier HiGHS did not finish the
    root LP of any query with 269 or more unstable ReLUs within 60 s, see
    benchmarks/complete.py); ``cache`` shares layer bounds with the cascade's CROWN stage.
    """

    kind = VerifierKind.MILP

    def __init__(self, *, time_limit: float = 60.0, bounds: BoundMethod = BoundMethod.CROWN,
                 binary_budget: int | None = None, warm_start: bool = True, early_stop: bool = True,
                 tolerance: float = 1e-3, threads: int = 1, keep: int = 8, seed: int = 0,
                 tighten_steps: int = 0, pool_budget: int | None = None,
                 solver_options: dict[str, object] | None = None, attack_restarts: int = 0,
                 attack_steps: int = 100, max_unstable: int | None = None,
                 cache: LayerBoundsCache | None = None) -> None:
        self.time_limit = time_limit
        self.cache = cache
        self.max_unstable = max_unstable
        self.attack_restarts = attack_restarts
        self.attack_steps = attack_steps
        self.tighten_steps = tighten_steps
        self.pool_budget = pool_budget
        self.solver_options = dict(solver_options or {})
        self.bounds = BoundMethod(bounds)
        self.binary_budget = binary_budget
        self.warm_start = warm_start
        self.early_stop = early_stop
        self.tolerance = tolerance
        self.threads = threads
        self.keep = keep
        self.seed = seed

    def _run(self, problem: Problem, eps: torch.Tensor, *, hint: Verdict | None,
             warm_start: Verdict | None, time_limit: float | None) -> Verdict:
        began = time.perf_counter()
        lo, hi = problem.box(eps)
        layers = layer_bounds(problem.model, lo, hi, method=self.bounds, cache=self.cache)
        bounds = [(lower.detach(), upper.detach()) for lower, upper in layers.layers]
        unstable = layers.unstable(problem.model)
        if self.max_unstable is not None and unstable > self.max_unstable:
            return Verdict(status=Status.UNKNOWN, verifier=self.kind,
                           reason=UnknownReason.SKIPPED_UNSTABLE, stats={"unstable": unstable})
        start = start_point(hint, warm_start)
        if self.attack_restarts > 0:
            found, start = self._falsify(problem, eps, start)
            if found is not None:
                return found
        tighten: dict[str, int] = {}
        if self.tighten_steps > 0 and supports_local(problem.model):
            bounds, tighten = optimized_second_conv(problem.model, lo, hi, bounds,
                                                    steps=self.tighten_steps)
        encoding = encode(problem.model, lo, hi, bounds, target=problem.target, k=problem.k,
                          binary_budget=self.binary_budget, pool_budget=self.pool_budget)
        build_time = time.perf_counter() - began
        start = self._start_point(problem, eps, start) if self.warm_start else None
        run = _Solve(self, problem, eps, encoding, start,
                     time_limit=max(capped(self.time_limit, time_limit) - build_time, 0.01))
        return run.verdict(stats={"bounds": self.bounds.value, "build_s": build_time, **tighten,
                                  **{key: int(value) for key, value in encoding.stats.items()}})

    def _falsify(self, problem: Problem, eps: torch.Tensor, start: torch.Tensor | None
                 ) -> tuple[Verdict | None, torch.Tensor]:
        """A stronger PGD run than the cascade's attack stage (more restarts and steps,
        from ``start``): near the robustness boundary it refutes queries the MILP would spend
        its whole budget on. Returns (NOT_ROBUST verdict or None, the run's best point, the
        solver's warm start)."""
        result = falsify(problem, eps, start, restarts=self.attack_restarts,
                         steps=self.attack_steps, seed=self.seed + 1)
        if float(result.margins[0]) > 0:
            return None, result.points[0]
        return Verdict(status=Status.NOT_ROBUST, verifier=VerifierKind.MILP,
                       counterexample=result.points[0], weakest_points=result.points[: self.keep],
                       weakest_margins=result.margins[: self.keep],
                       settled_by=VerifierKind.ATTACK,
                       stats={"best_margin": float(result.margins[0])}), result.points[0]

    def _start_point(self, problem: Problem, eps: torch.Tensor, start: torch.Tensor | None
                     ) -> torch.Tensor:
        if start is not None:
            return start
        return pgd_attack(problem, eps, restarts=4, steps=20, step_fraction=0.1,
                          seed=self.seed).points[0]


class _Solve:
    """One HiGHS run with the early-stop callbacks; collects incumbents as weakest points."""

    def __init__(self, settings: Milp, problem: Problem, eps: torch.Tensor, encoding: Encoding,
                 start: torch.Tensor | None, *, time_limit: float) -> None:
        self.settings, self.problem, self.eps, self.encoding = settings, problem, eps, encoding
        self.points: list[torch.Tensor] = []
        self.witness: torch.Tensor | None = None
        self.rejected = 0
        highs = quiet_highs()
        highs.setOptionValue("threads", settings.threads)
        highs.setOptionValue("time_limit", float(time_limit))
        highs.setOptionValue("random_seed", settings.seed)
        highs.setOptionValue("mip_feasibility_tolerance", 1e-7)
        highs.setOptionValue("primal_feasibility_tolerance", 1e-8)
        highs.setOptionValue("mip_rel_gap", 1e-6)
        highs.setOptionValue("mip_abs_gap", 1e-7)
        for option, value in settings.solver_options.items():
            highs.setOptionValue(option, value)
        n = encoding.num_vars
        highs.addVars(n, encoding.col_lo, encoding.col_hi)
        highs.changeColsCost(n, np.arange(n, dtype=np.int32), encoding.cost)
        integer = np.flatnonzero(encoding.integer).astype(np.int32)
        if integer.shape[0]:
            highs.changeColsIntegrality(integer.shape[0], integer,
                                        np.full(integer.shape[0], highspy.HighsVarType.kInteger))
        rows = encoding.rows
        highs.addRows(rows.shape[0], encoding.row_lo, encoding.row_hi, rows.nnz,
                      rows.indptr[:-1].astype(np.int32), rows.indices.astype(np.int32),
                      rows.data.astype(np.float64))
        highs.changeObjectiveSense(highspy.ObjSense.kMaximize)
        if start is not None:
            values = assignment(encoding, problem, start)
            highs.setSolution(n, np.arange(n, dtype=np.int32), values)
            self._record(values)
        highs.cbMipImprovingSolution.subscribe(self._on_improving)
        highs.cbMipInterrupt.subscribe(self._on_interrupt)
        began = time.perf_counter()
        highs.run()
        self.solve_time = time.perf_counter() - began
        self.highs = highs

    def _input(self, values: np.ndarray) -> torch.Tensor:
        enc = self.encoding
        flat = np.where(enc.input_vars >= 0, values[np.maximum(enc.input_vars, 0)], enc.input_const)
        return torch.as_tensor(flat, dtype=torch.float32).reshape(self.problem.image.shape)

    def _record(self, values: np.ndarray) -> None:
        point = self._input(values)
        self.points.append(point)
        if self.witness is None and values[self.encoding.score_var] >= 0:
            if check_witness(self.problem, self.eps, point) is not None:
                self.witness = point
            else:
                self.rejected += 1

    def _on_improving(self, event: highspy.HighsCallbackEvent) -> None:
        self._record(np.array(event.data_out.mip_solution, dtype=np.float64))

    def _on_interrupt(self, event: highspy.HighsCallbackEvent) -> None:
        if not self.settings.early_stop:
            return
        if self.witness is not None or event.data_out.mip_dual_bound < -self.settings.tolerance:
            event.interrupt()

    def verdict(self, *, stats: dict[str, float | int | str]) -> Verdict:
        highs, settings = self.highs, self.settings
        info = highs.getInfo()
        status = highs.getModelStatus()
        integer = bool(self.encoding.integer.any())
        if integer:
            dual = float(info.mip_dual_bound)
        elif status == highspy.HighsModelStatus.kOptimal:
            dual = float(info.objective_function_value)
        else:
            dual = np.inf
        if status == highspy.HighsModelStatus.kOptimal and not integer:
            self._record(np.array(highs.getSolution().col_value, dtype=np.float64))
        if not np.isfinite(dual) or status == highspy.HighsModelStatus.kInfeasible:
            dual = np.inf
        points, margins = self._weakest()
        stats = {**stats, "solve_s": self.solve_time, "nodes": int(info.mip_node_count),
                 "model_status": highs.modelStatusToString(status), "rejected_incumbents": self.rejected,
                 "dual_bound": dual if np.isfinite(dual) else 1e30}
        bound = -dual if np.isfinite(dual) else None
        if self.witness is not None:
            return Verdict(status=Status.NOT_ROBUST, verifier=VerifierKind.MILP, bound=bound,
                           counterexample=self.witness, weakest_points=points,
                           weakest_margins=margins, stats=stats)
        if dual < -settings.tolerance:
            return Verdict(status=Status.ROBUST, verifier=VerifierKind.MILP, bound=bound,
                           weakest_points=points, weakest_margins=margins, stats=stats)
        solved = status == highspy.HighsModelStatus.kOptimal
        return Verdict(status=Status.UNKNOWN, verifier=VerifierKind.MILP, bound=bound,
                       reason=UnknownReason.INCONCLUSIVE if solved else UnknownReason.TIMEOUT,
                       weakest_points=points, weakest_margins=margins, stats=stats)

    def _weakest(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if not self.points:
            return None, None
        lo, hi = self.problem.box(self.eps)
        batch = torch.max(torch.min(torch.stack(self.points), hi), lo)
        with torch.no_grad():
            margins = self.problem.margin(batch)
        order = torch.argsort(margins)[: self.settings.keep]
        return batch[order], margins[order]
