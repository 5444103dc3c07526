"""IBP / CROWN / alpha-CROWN soundness on the seed classifier (each shipped model when
installed, else a random initialisation) on a DOUBLE-MNIST test image, against >= 1,000
points of the box (uniform samples, corners, PGD results)."""

from __future__ import annotations

import pytest
import torch

from ringcert.data.double_mnist import Split, dataset
from ringcert.errors import RingcertError
from ringcert.models.architecture import seed_classifier
from ringcert.models.modelfile import load_model
from ringcert.problem import Problem
from ringcert.verify.bounds import BoundMethod, margin_bound
from ringcert.verify.propagation import Crown
from ringcert.vocabulary import Status
from tests.fixtures import TOL, assert_layer_bounds_sound, box_points, pair_maxima


@pytest.fixture(scope="module", params=["none", "l0", "pgd"])
def problem(request: pytest.FixtureRequest) -> Problem:
    try:
        network = load_model(request.param).network
    except RingcertError:
        torch.manual_seed(0)
        network = seed_classifier().eval()
    data = dataset(Split.TEST, count=8)
    images = data.float_images()
    for index in range(len(data)):
        for side in (0, 1):
            try:
                return Problem.create(model=network, image=images[index],
                                      target=int(data.labels[index][1 - side]),
                                      mask=data.masks[index, side], k=2)
            except RingcertError:
                continue
    pytest.skip("no test image has its target in the top-2")


def test_seed_classifier_bounds_are_sound_and_nested(problem: Problem) -> None:
    eps = torch.zeros(problem.num_rings, dtype=torch.float64)
    eps[:3] = 0.08
    network = problem.model
    points = box_points(problem, eps, seed=0, count=1000)
    margins = problem.margin(points).detach()
    set_max = pair_maxima(problem, points)
    lo, hi = problem.box(eps)
    ibp, crown = assert_layer_bounds_sound(network, points, lo, hi)
    assert crown.unstable(network) < ibp.unstable(network)
    found = {}
    for method in BoundMethod:
        for joint in (True, False):
            given = ibp if method is BoundMethod.IBP else crown
            result = margin_bound(problem, eps, method=method, joint=joint, network_bounds=given)
            assert float(margins.min()) >= float(result.lower) - TOL, (method, joint)
            assert bool((set_max >= result.per_set - TOL).all()), (method, joint)
            found[method, joint] = float(result.lower)
    for joint in (True, False):
        assert found[BoundMethod.IBP, joint] < found[BoundMethod.CROWN, joint]
        assert found[BoundMethod.CROWN, joint] <= found[BoundMethod.ALPHA_CROWN, joint]
    for method in BoundMethod:
        assert found[method, True] >= found[method, False] - 1e-6


def test_seed_classifier_gradient_and_verdict(problem: Problem) -> None:
    eps = torch.zeros(problem.num_rings, dtype=torch.float64)
    eps[:2] = 0.02
    eps.requires_grad_()
    result = margin_bound(problem, eps, method=BoundMethod.CROWN)
    result.lower.backward()
    assert eps.grad is not None and bool(torch.isfinite(eps.grad).all())
    assert float(eps.grad[:2].abs().sum()) > 0 and float(eps.grad.max()) <= 1e-6
    verdict = Crown().verify(problem, eps.detach())
    if verdict.status is Status.ROBUST:
        from ringcert.verify.attack import pgd_attack

        attack = pgd_attack(problem, eps.detach(), restarts=16, steps=40, step_fraction=0.1, seed=0)
        assert float(attack.margins[0]) >= verdict.bound > 0
