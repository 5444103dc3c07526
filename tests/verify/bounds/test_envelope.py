"""The envelope bounds (each first-layer ReLU's hull over the input box) are sound: every
linearization lies below the bounded function on the whole box, every tightened layer bound
and margin bound holds on >= 1,000 points per box (uniform, corners, PGD), and they never
exceed the exact optimum found by enumeration; they are tighter than CROWN's."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch import nn

from ringcert.verify.bounds import BoundMethod, envelope, margin_bound, network_bounds
from ringcert.verify.propagation import ENVELOPE_MIN_SECONDS, Crown, Envelope
from ringcert.vocabulary import Status, UnknownReason
from tests.fixtures import (
    MILP_CASES,
    TOL,
    box_points,
    exact_optimum,
    layer_outputs,
    make_problem,
    mlp,
    pooled,
    random_eps,
    tiny_problem,
)


def seed_like(seed: int) -> tuple[nn.Sequential, tuple[int, int, int]]:
    """The seed architecture small: Conv(k8, s4, p2) - ReLU - Conv(k5, p2) - ReLU - MaxPool -
    Flatten - Linear on (1, 24, 24)."""
    torch.manual_seed(seed)
    network = nn.Sequential(nn.Conv2d(1, 4, 8, stride=4, padding=2), nn.ReLU(),
                            nn.Conv2d(4, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Flatten(), nn.Linear(6 * 3 * 3, 5))
    return network.eval(), (1, 24, 24)


def dense_net(seed: int) -> tuple[nn.Sequential, tuple[int, int, int]]:
    """Flatten - Linear - ReLU - Linear - ReLU - Linear on (1, 4, 4): the block on dense layers."""
    torch.manual_seed(seed)
    network = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 8), nn.ReLU(),
                            nn.Linear(8, 5))
    return network.eval(), (1, 4, 4)


NETS = [(seed_like, 0), (seed_like, 1), (dense_net, 2), (dense_net, 3)]


def _second_layer(network: nn.Sequential, block: envelope.FirstBlock, points: torch.Tensor
                  ) -> torch.Tensor:
    with torch.no_grad():
        return network[: block.end + 1](points).flatten(1).double()


@pytest.mark.parametrize(("builder", "seed"), NETS)
def test_every_linearization_lies_below_the_rows_on_the_box(builder, seed: int) -> None:
    """At random iterates (not only good ones), the linear function of each row, with each
    unstable neuron's envelope piece for the iterate's order, stays below the row's value at
    uniform and corner points: the plane is sound whatever the order."""
    network, shape = builder(seed)
    problem = make_problem(network, shape, seed, 2)
    eps = random_eps(problem, seed, 0.3)
    lo, hi = problem.box(eps)
    block = envelope.FirstBlock.of(network, shape)
    assert block is not None
    box = envelope._Box.of(block, lo, hi)
    generator = torch.Generator().manual_seed(seed)
    coef = sp.csr_matrix(torch.randn(6, block.second.shape[1], generator=generator).numpy()
                         * (torch.rand(6, block.second.shape[1], generator=generator) < 0.5).numpy())
    bias = np.zeros(6)
    rows = envelope._rows(coef, bias, box.lower1.numpy(), box.upper1.numpy())
    terms = envelope._Terms.of(block, box, rows)
    assert int((rows.far_coef != 0).sum()) > 0  # some envelope pieces are exercised
    shares = torch.rand(terms.lo.shape, generator=generator, dtype=torch.float64)
    g, h = envelope._linearize(terms, terms.lo + shares * (terms.hi - terms.lo))  # rows' own coordinates
    uniform = lo + (hi - lo) * torch.rand((1000, *lo.shape), generator=generator)
    corners = torch.where(torch.rand((500, *lo.shape), generator=generator) < 0.5, lo, hi)
    points = torch.cat([uniform, corners])
    with torch.no_grad():
        hidden = network[: block.relu + 1](points).flatten(1).double().numpy()
    values = (coef @ hidden.T).T  # (points, rows)
    planes = (points.flatten(1).double()[:, terms.pixels] * g).sum(2) + h  # (points, rows)
    assert bool((planes.numpy() <= values + 1e-5).all())  # the forward pass is float32


@pytest.mark.parametrize(("builder", "seed"), NETS)
@pytest.mark.parametrize("scale", [0.05, 0.3])
def test_tightened_bounds_hold_on_samples_and_beat_crown(builder, seed: int, scale: float) -> None:
    network, shape = builder(seed)
    problem = make_problem(network, shape, seed, 2)
    eps = random_eps(problem, seed, scale)
    lo, hi = problem.box(eps)
    block = envelope.FirstBlock.of(network, shape)
    crown = network_bounds(network, lo, hi, method=BoundMethod.CROWN)
    tight = envelope.tightened_bounds(network, block, crown, steps=40)
    points = box_points(problem, eps, seed)
    assert points.shape[0] >= 1000
    for out, (lower, upper) in zip(layer_outputs(network, points), tight.layers, strict=True):
        assert bool((out >= lower - TOL).all()) and bool((out <= upper + TOL).all())
    (cl, cu), (tl, tu) = crown.layers[block.end], tight.layers[block.end]
    assert bool((tl >= cl).all()) and bool((tu <= cu).all())
    width_crown, width_tight = float((cu - cl).sum()), float((tu - tl).sum())
    if int(((cl < 0) & (cu > 0)).sum()) > 0:
        assert width_tight < width_crown


@pytest.mark.parametrize(("builder", "seed"), NETS)
def test_envelope_bounds_of_single_neurons_never_pass_the_sampled_range(builder, seed: int) -> None:
    """The raw envelope bounds (float64, before any intersection with CROWN's)."""
    network, shape = builder(seed)
    problem = make_problem(network, shape, seed, 2)
    eps = random_eps(problem, seed, 0.3)
    lo, hi = problem.box(eps)
    block = envelope.FirstBlock.of(network, shape)
    chosen = torch.arange(block.second.shape[0])
    low, up = envelope.envelope_bounds(block, lo, hi, chosen, steps=20)
    values = _second_layer(network, block, box_points(problem, eps, seed))
    assert bool((values.min(0).values >= low - 1e-5).all())
    assert bool((values.max(0).values <= up + 1e-5).all())


def test_one_unstable_neuron_is_bounded_exactly() -> None:
    """``y = -2 ReLU(w . x + b) + 1``: the hull of one neuron is exact, so the lower bound is
    ``1 - 2 max ReLU`` and the upper bound ``1`` (ReLU reaches 0 on the box)."""
    network = nn.Sequential(nn.Flatten(), nn.Linear(3, 1), nn.ReLU(), nn.Linear(1, 1), nn.ReLU())
    with torch.no_grad():
        network[1].weight.copy_(torch.tensor([[1.0, -2.0, 0.5]]))
        network[1].bias.copy_(torch.tensor([0.2]))
        network[3].weight.copy_(torch.tensor([[-2.0]]))
        network[3].bias.copy_(torch.tensor([1.0]))
    lo, hi = torch.zeros(1, 1, 3), torch.ones(1, 1, 3)
    block = envelope.FirstBlock.of(network, (1, 1, 3))
    low, up = envelope.envelope_bounds(block, lo, hi, torch.tensor([0]), steps=5)
    top = 1.0 + 0.5 + 0.2  # max of w . x + b on the box
    assert float(low[0]) == pytest.approx(1.0 - 2.0 * top, abs=1e-6)  # float32 weights
    assert float(up[0]) == pytest.approx(1.0, abs=1e-6)  # float32 weights


@pytest.mark.parametrize(("builder", "shape", "seed"), MILP_CASES)
def test_envelope_verifier_never_passes_the_exact_optimum(builder, shape, seed: int) -> None:
    """On the enumerable networks: the envelope's bound is at most the exact minimum of the
    margin, ROBUST only where the exact answer is robust; a network without the block is
    skipped, never answered."""
    network = builder(seed)
    problem = tiny_problem(network, shape, seed)
    for radius in (0.05, 0.2, 0.5):
        eps = [radius] * problem.num_rings
        verdict = Envelope(envelope_steps=40).verify(problem, torch.tensor(eps, dtype=torch.float64))
        if envelope.FirstBlock.of(network, tuple(problem.image.shape)) is None:
            assert verdict.status is Status.UNKNOWN
            assert verdict.reason is UnknownReason.SKIPPED_UNSUPPORTED
            continue
        worst = exact_optimum(problem, eps)  # max over the box of -margin
        assert verdict.bound is not None and verdict.bound <= -worst + TOL
        if verdict.status is Status.ROBUST:
            assert worst < 0


@pytest.mark.parametrize(("builder", "seed"), NETS)
def test_envelope_margin_bound_holds_and_is_at_least_crowns(builder, seed: int) -> None:
    network, shape = builder(seed)
    problem = make_problem(network, shape, seed, 2)
    eps = random_eps(problem, seed, 0.3)
    margins = problem.margin(box_points(problem, eps, seed)).detach()
    hull = Envelope(envelope_steps=30).verify(problem, eps)
    assert hull.bound is not None
    assert float(margins.min()) >= hull.bound - TOL
    plain = margin_bound(problem, eps, method=BoundMethod.CROWN).lower
    assert hull.bound >= float(plain) - TOL


def test_no_neurons_give_no_bounds() -> None:
    network, shape = seed_like(0)
    block = envelope.FirstBlock.of(network, shape)
    low, up = envelope.envelope_bounds(block, torch.zeros(shape), torch.ones(shape),
                                       torch.zeros(0, dtype=torch.long))
    assert low.shape == (0,) and up.shape == (0,)


def test_a_network_that_starts_with_a_max_pool_block_has_none() -> None:
    assert envelope.FirstBlock.of(pooled(0), (1, 1, 3)) is None
    assert envelope.FirstBlock.of(mlp(0), (1, 2, 2)) is not None


def test_the_stage_is_skipped_far_from_a_proof_and_short_of_time() -> None:
    network, shape = seed_like(0)
    problem = make_problem(network, shape, 0, 2)
    eps = random_eps(problem, 0, 0.3)
    crown = Crown().verify(problem, eps)
    assert crown.bound is not None and crown.bound < -0.5
    far = Envelope(max_gap=0.5).verify(problem, eps, hint=crown)
    assert far.status is Status.UNKNOWN and far.reason is UnknownReason.SKIPPED_GAP
    assert far.bound == crown.bound
    short = Envelope().verify(problem, eps, time_limit=ENVELOPE_MIN_SECONDS / 2)
    assert short.status is Status.UNKNOWN and short.reason is UnknownReason.SKIPPED_TIME
    ran = Envelope().verify(problem, eps, time_limit=ENVELOPE_MIN_SECONDS * 2)
    assert ran.reason is not UnknownReason.SKIPPED_TIME and ran.bound is not None


@pytest.mark.parametrize(("builder", "seed"), NETS)
def test_a_row_s_bound_does_not_depend_on_its_batch(builder, seed: int, monkeypatch) -> None:
    """Rows are batched by their number of terms, trimmed to the batch's widest and put
    back in order: each row asked alone gives the bound it gets among the others, whether
    they share one batch or each has its own."""
    network, shape = builder(seed)
    problem = make_problem(network, shape, seed, 2)
    lo, hi = problem.box(random_eps(problem, seed, 0.3))
    block = envelope.FirstBlock.of(network, shape)
    generator = torch.Generator().manual_seed(seed)
    dense = torch.randn(9, block.second.shape[1], generator=generator)
    coef = sp.csr_matrix((dense * (torch.rand(dense.shape, generator=generator) < torch.linspace(
        0.1, 0.9, 9)[:, None])).numpy())  # rows of different widths
    bias = np.linspace(-1.0, 1.0, 9)
    together = envelope.envelope_lower(block, lo, hi, coef, bias, steps=5)
    alone = torch.cat([envelope.envelope_lower(block, lo, hi, coef[row], bias[row:row + 1], steps=5)
                       for row in range(9)])
    monkeypatch.setattr(envelope, "CHUNK_ENTRIES", 1)
    apart = envelope.envelope_lower(block, lo, hi, coef, bias, steps=5)
    assert together.shape == (9,) and len(set(alone.tolist())) == 9
    assert torch.allclose(together, alone, rtol=1e-9, atol=1e-9)
    assert torch.allclose(apart, alone, rtol=1e-9, atol=1e-9)


def test_a_stored_zero_coefficient_changes_no_bound() -> None:
    """A sparse row may store an explicit 0 (products of sparse maps do): it is no term, and
    the row's bound is that of the same row without it (it once made the batch trim a real
    term)."""
    network, shape = seed_like(0)
    problem = make_problem(network, shape, 0, 2)
    lo, hi = problem.box(random_eps(problem, 0, 0.05))
    block = envelope.FirstBlock.of(network, shape)
    box = envelope._Box.of(block, lo, hi)
    active = np.nonzero(box.lower1.numpy() >= 0)[0][:4]
    assert active.shape[0] == 4
    values, size = np.array([0.0, 1.0, 2.0, 3.0]), (1, block.second.shape[1])
    stored = sp.coo_matrix((values, (np.zeros(4, dtype=int), active)), shape=size)
    without = sp.coo_matrix((values[1:], (np.zeros(3, dtype=int), active[1:])), shape=size)
    assert stored.nnz == 4
    found = envelope.envelope_lower(block, lo, hi, stored, np.zeros(1), steps=3)
    assert torch.allclose(found, envelope.envelope_lower(block, lo, hi, without, np.zeros(1), steps=3))
    with torch.no_grad():
        hidden = network[: block.relu + 1](box_points(problem, random_eps(problem, 0, 0.05), 0)).flatten(1)
    assert float(found) <= float((hidden.double().numpy() @ without.toarray().T).min()) + 1e-5
