"""Problems of several targets (issue 15): rings grown from a union of object masks, the
min-over-targets margin, the per-target verdicts ``Verifier.verify`` combines, and the PGD
attack on the minimum.

Ground truth is independent of the code under test where it can be: rings against a
brute-force Chebyshev distance, margins against a count of the classes that beat a target,
multi-target verdicts against the single-target verdicts of the exact MILP (and, for one
bound, against the enumerated optimum of ``tests.fixtures.exact_optimum``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ringcert.data.images import ImageSet
from ringcert.errors import RingcertError
from ringcert.models.architecture import seed_classifier
from ringcert.problem import Problem, ring_map
from ringcert.samples import image, image_problem
from ringcert.selection import Selection, relation_selections
from ringcert.verify.attack import Attack, pgd_attack
from ringcert.verify.bounds import BoundMethod
from ringcert.verify.milp import Milp
from ringcert.verify.propagation import Crown
from ringcert.verify.verdict import Verdict, check_witness
from ringcert.vocabulary import Side, Status
from tests.fixtures import exact_optimum

# ---------------------------------------------------------------- helpers


def _brute_rings(mask: np.ndarray) -> np.ndarray:
    """Chebyshev distance of every pixel to the mask, one pixel at a time."""
    ys, xs = np.nonzero(mask)
    rings = np.zeros(mask.shape, dtype=np.int64)
    for y in range(mask.shape[0]):
        for x in range(mask.shape[1]):
            rings[y, x] = np.maximum(np.abs(ys - y), np.abs(xs - x)).min()
    return rings


def _out_of_top_k(logits: torch.Tensor, target: int, k: int) -> bool:
    """Whether ``target`` is not in the top-k of one logit vector: at least k other classes
    score at least as high (ties go against the target, as in ``topk_margin``)."""
    values = logits.detach().double().reshape(-1)
    beating = sum(1 for c in range(len(values)) if c != target and values[c] >= values[target])
    return beating >= k


def _margin_by_hand(logits: torch.Tensor, target: int, k: int) -> float:
    values = logits.detach().double().reshape(-1).numpy()
    others = np.sort(np.delete(values, target))[::-1]
    return float(values[target] - others[k - 1])


def _tiny(seed: int) -> nn.Sequential:
    """9 inputs, 6 ReLUs, 5 classes; a strong first layer so that small boxes break it."""
    torch.manual_seed(seed)
    network = nn.Sequential(nn.Flatten(), nn.Linear(9, 6), nn.ReLU(), nn.Linear(6, 5))
    with torch.no_grad():
        network[1].weight.mul_(3)
    return network.eval()


def _tiny_image(seed: int) -> tuple[torch.Tensor, np.ndarray]:
    generator = torch.Generator().manual_seed(seed)
    picture = torch.rand((1, 3, 3), generator=generator)
    mask = np.zeros((3, 3), dtype=bool)
    mask[0, 0] = True
    return picture, mask


def _top(network: nn.Module, picture: torch.Tensor, count: int) -> list[int]:
    with torch.no_grad():
        logits = network(picture[None])[0]
    return torch.argsort(logits, descending=True)[:count].tolist()


def _tiny_problem(seed: int, k: int, order: str = "top") -> Problem:
    """The top-k classes of the tiny network on its image as targets, in rank order
    (``top``) or reversed (``reversed``)."""
    network = _tiny(seed)
    picture, mask = _tiny_image(seed)
    targets = _top(network, picture, k)
    if order == "reversed":
        targets = targets[::-1]
    return Problem.create(model=network, image=picture, target=tuple(targets), mask=mask, k=k)


def _uniform(problem: Problem, value: float) -> torch.Tensor:
    return torch.full((problem.num_rings,), value, dtype=torch.float64)


def _assert_witness(problem: Problem, eps: torch.Tensor, verdict: Verdict) -> None:
    """A NOT_ROBUST verdict's counterexample: in the box, and a plain forward pass puts a
    named target out of the top-k."""
    assert verdict.status is Status.NOT_ROBUST
    witness = verdict.counterexample
    assert witness is not None and witness.shape == problem.image.shape
    lo, hi = problem.box(eps)
    assert bool(((witness >= lo) & (witness <= hi)).all())
    with torch.no_grad():
        logits = problem.model(witness[None].float())[0]
    assert any(_out_of_top_k(logits, target, problem.k) for target in problem.targets)
    assert check_witness(problem, eps, witness) is not None


# ---------------------------------------------------------------- rings from a union of masks


def _blob_masks(generator: np.random.Generator, objects: int, shape: tuple[int, int]) -> np.ndarray:
    """``objects`` random non-empty masks of a few scattered rectangles each, whose union
    leaves most of the image free."""
    masks = np.zeros((objects, *shape), dtype=bool)
    for obj in range(objects):
        for _ in range(int(generator.integers(1, 4))):
            y, x = int(generator.integers(shape[0] - 1)), int(generator.integers(shape[1] - 1))
            masks[obj, y:y + int(generator.integers(1, 3)), x:x + int(generator.integers(1, 3))] = True
    return masks


def _small_conv(seed: int, shape: tuple[int, int], classes: int = 6) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(2 * shape[0] * shape[1], classes)).eval()


@pytest.mark.parametrize("seed", range(4))
def test_rings_grow_from_the_union_of_the_perturbed_masks(seed):
    shape = (9, 11)
    generator = np.random.default_rng(seed)
    masks = _blob_masks(generator, 3, shape)
    picture = generator.random((1, 1, *shape)).astype(np.float32)
    network = _small_conv(seed, shape)
    labels = np.array(_top(network, torch.from_numpy(picture[0]), 3))[generator.permutation(3)]
    images = ImageSet(images=picture, masks=masks[None], labels=labels[None].astype(np.int64))
    chosen = [*relation_selections(3), Selection(perturbed=(0, 1), targets=(2,)),
              Selection(perturbed=(0, 2), targets=(1,)), Selection(perturbed=(1, 2), targets=(0,))]
    for selection in chosen:
        union = masks[list(selection.perturbed)].any(axis=0)
        problem = image_problem(network, images, target=selection)
        assert np.array_equal(problem.mask, union)
        assert np.array_equal(ring_map(union), _brute_rings(union))
        assert np.array_equal(problem.rings, _brute_rings(union))
        assert problem.num_rings == _brute_rings(union).max() + 1
        assert problem.targets == tuple(int(labels[j]) for j in selection.targets)
        assert problem.k == 3  # the number of objects
        expected_class = int(labels[selection.perturbed[0]]) if len(selection.perturbed) == 1 else None
        assert problem.perturbed_class == expected_class


@pytest.fixture(scope="module")
def three_digits() -> tuple[nn.Sequential, ImageSet]:
    """Test image 0 of three digits (64x96) and a random seed classifier for three objects,
    the labels replaced by the network's own top-3 (in a shuffled order) so every object's
    class is in its top-k."""
    torch.manual_seed(3)
    network = seed_classifier(3).eval()
    sample = image(0, objects=3)
    top = _top(network, torch.from_numpy(sample.images[0]), 3)
    labels = np.array([[top[1], top[2], top[0]]], dtype=np.int64)
    return network, ImageSet(images=sample.images, masks=sample.masks, labels=labels)


def test_rings_of_three_digit_images_match_brute_force(three_digits):
    network, images = three_digits
    assert images.image_shape == (1, 64, 96) and images.num_objects == 3
    for value in ("p0+1-t2", "p1-t0+2", "p2-t1"):
        selection = Selection.of(value)
        union = images.masks[0, list(selection.perturbed)].any(axis=0)
        problem = image_problem(network, images, target=selection)
        assert np.array_equal(problem.rings, _brute_rings(union))
        assert problem.targets == tuple(int(images.labels[0, j]) for j in selection.targets)
        assert problem.k == 3


def test_selections_are_checked_against_the_images(three_digits):
    network, images = three_digits
    with pytest.raises(RingcertError, match="needs exactly two objects"):
        image_problem(network, images, target=Side.RIGHT)
    with pytest.raises(RingcertError, match=r"object 3 is out of range 0\.\.2"):
        image_problem(network, images, target="p0-t3")
    with pytest.raises(RingcertError, match="2 targets cannot all be in the top-1"):
        image_problem(network, images, target="p0-t1+2", k=1)


# ---------------------------------------------------------------- the problem


def test_margin_is_the_minimum_of_the_split_problems_margins():
    mixed = 0
    for seed, k in [(0, 2), (1, 3), (4, 3), (5, 2)]:
        problem = _tiny_problem(seed, k)
        generator = torch.Generator().manual_seed(seed)
        points = torch.rand((64, 1, 3, 3), generator=generator)
        with torch.no_grad():
            multi = problem.margin(points)
            singles = torch.stack([part.margin(points) for part in problem.split()])
            logits = problem.model(points)
        assert torch.equal(multi, singles.amin(dim=0))
        assert torch.equal(problem.margin_of(logits), multi)
        for row in range(len(points)):
            by_hand = min(_margin_by_hand(logits[row], target, k) for target in problem.targets)
            assert float(multi[row]) == pytest.approx(by_hand, abs=1e-5)
        mixed += len(set(singles.argmin(dim=0).tolist())) > 1
    # the minimum is attained by different targets on different points (not one target's margin)
    assert mixed >= 2


def test_margin_of_three_digit_images_is_the_minimum_over_targets(three_digits):
    network, images = three_digits
    problem = image_problem(network, images, target="p0-t1+2")
    assert len(problem.targets) == 2
    lo, hi = problem.box(_uniform(problem, 0.3))
    generator = torch.Generator().manual_seed(0)
    points = lo + torch.rand((8, *lo.shape), generator=generator) * (hi - lo)
    with torch.no_grad():
        multi = problem.margin(points)
        logits = problem.model(points)
    for row in range(len(points)):
        by_hand = min(_margin_by_hand(logits[row], target, problem.k) for target in problem.targets)
        assert float(multi[row]) == pytest.approx(by_hand, abs=1e-4)


def test_split_keeps_the_query_and_names_one_target_each():
    problem = _tiny_problem(1, 3, order="reversed")
    parts = problem.split()
    assert tuple(part.targets for part in parts) == tuple((target,) for target in problem.targets)
    for part in parts:
        assert part.target == part.targets[0]
        assert torch.equal(part.image, problem.image) and part.k == problem.k
        assert np.array_equal(part.rings, problem.rings) and np.array_equal(part.mask, problem.mask)
        assert np.array_equal(part.weights, problem.weights)
    with pytest.raises(ValueError, match="a problem of 3 targets has no single target"):
        _ = problem.target


def test_weakest_target_has_the_smallest_clean_margin():
    for seed, k in [(0, 2), (1, 3), (3, 3), (4, 2)]:
        for order in ("top", "reversed"):
            problem = _tiny_problem(seed, k, order)
            logits = problem.logits()[0]
            margins = {target: _margin_by_hand(logits, target, k) for target in problem.targets}
            assert problem.weakest_target() == min(margins, key=margins.get)


def test_create_accepts_a_list_and_keeps_the_order():
    network = _tiny(2)
    picture, mask = _tiny_image(2)
    first, second = _top(network, picture, 2)
    problem = Problem.create(model=network, image=picture, target=[second, first], mask=mask, k=2)
    assert problem.targets == (second, first)
    assert problem.perturbed_class is None  # several targets: no guess of the perturbed class
    single = Problem.create(model=network, image=picture, target=first, mask=mask, k=2)
    assert single.targets == (first,) and single.target == first and single.perturbed_class is not None


def test_create_rejects_bad_target_sets():
    network = _tiny(2)
    picture, mask = _tiny_image(2)
    ranked = _top(network, picture, 5)

    def create(target, k=2):
        return Problem.create(model=network, image=picture, target=target, mask=mask, k=k)

    cases = [
        (lambda: create(()), "the target set is empty"),
        (lambda: create((ranked[0], ranked[0])),
         rf"target classes \[{ranked[0]}, {ranked[0]}\] repeat a class"),
        (lambda: create((ranked[0], ranked[1], ranked[0]), k=3), r"repeat a class"),
        (lambda: create(tuple(ranked[:3])), "3 targets cannot all be in the top-2"),
        (lambda: create(tuple(ranked[:2]), k=1), "2 targets cannot all be in the top-1"),
        (lambda: create((ranked[0], ranked[4])), f"target class {ranked[4]} is not in the top-2"),
        (lambda: create((ranked[0], 7)), r"target class 7 is not in 0\.\.4"),
    ]
    for make, message in cases:
        with pytest.raises(RingcertError, match=message) as caught:
            make()
        assert "\n" not in str(caught.value)


# ---------------------------------------------------------------- verdicts


def _exact() -> Milp:
    return Milp(early_stop=False, bounds=BoundMethod.IBP)


EPSILONS = (0.02, 0.05, 0.1, 0.2, 0.5)


def _check_combination(problem: Problem, eps: torch.Tensor, multi: Verdict, singles: list[Verdict]) -> None:
    """The multi-target verdict against the single-target verdicts of the same verifier."""
    statuses = [single.status for single in singles]
    refuted = [i for i, status in enumerate(statuses) if status is Status.NOT_ROBUST]
    assert (multi.status is Status.ROBUST) == all(status is Status.ROBUST for status in statuses)
    assert (multi.status is Status.NOT_ROBUST) == bool(refuted)
    ran = refuted[0] + 1 if refuted else len(singles)
    assert len(multi.targets) == ran  # stops at the first refuted target
    assert [part.status for part in multi.targets] == statuses[:ran]
    assert multi.answers(eps)
    if multi.status is Status.NOT_ROBUST:
        _assert_witness(problem, eps, multi)
        assert multi.targets[-1].status is Status.NOT_ROBUST
        assert multi.stats["refuted_target"] == problem.targets[ran - 1]
        with torch.no_grad():
            logits = problem.model(multi.counterexample[None])[0]
        assert _out_of_top_k(logits, problem.targets[ran - 1], problem.k)
    else:
        assert multi.counterexample is None
        assert multi.bound == pytest.approx(min(single.bound for single in singles), abs=1e-9)
        if multi.status is Status.ROBUST:
            assert multi.bound > 0
        else:
            assert multi.reason is not None
    if multi.weakest_points is not None:
        with torch.no_grad():
            margins = problem.margin(multi.weakest_points.float())
        assert torch.allclose(multi.weakest_margins, margins, atol=1e-5)  # batch size changes float32 sums
        assert bool((multi.weakest_margins[1:] >= multi.weakest_margins[:-1]).all())
        assert len(multi.weakest_points) == sum(len(part.weakest_points) for part in multi.targets
                                                if part.weakest_points is not None)


@pytest.mark.parametrize("k", [2, 3])
def test_exact_multi_target_verdicts_agree_with_the_single_target_verdicts(k):
    verifier = _exact()
    seen: set[tuple[Status, ...]] = set()
    multi_seen: set[tuple[Status, int]] = set()
    for seed in (1, 2, 3):
        for eps_value in EPSILONS:
            base = _tiny_problem(seed, k)
            eps = _uniform(base, eps_value)
            by_target = {part.target: verifier.verify(part, eps) for part in base.split()}
            seen.add(tuple(sorted({single.status for single in by_target.values()}, key=str)))
            for order in ("top", "reversed"):
                problem = _tiny_problem(seed, k, order)
                singles = [by_target[target] for target in problem.targets]
                multi = verifier.verify(problem, eps)
                _check_combination(problem, eps, multi, singles)
                multi_seen.add((multi.status, len(multi.targets)))
    # the cases are not vacuous: every target robust, some targets refuted and others proved,
    # every target refuted; multi-target refutations both at the first and at a later target
    assert (Status.ROBUST,) in seen and (Status.NOT_ROBUST,) in seen
    assert tuple(sorted({Status.ROBUST, Status.NOT_ROBUST}, key=str)) in seen
    assert (Status.NOT_ROBUST, 1) in multi_seen and (Status.ROBUST, k) in multi_seen
    assert any(status is Status.NOT_ROBUST and ran > 1 for status, ran in multi_seen)


def test_crown_multi_target_verdicts_are_robust_only_if_every_target_is():
    verifier = Crown()
    statuses = set()
    for seed, k in [(1, 2), (3, 3), (5, 2)]:
        problem = _tiny_problem(seed, k, "reversed")
        for eps_value in (0.02, 0.1, 0.5):
            eps = _uniform(problem, eps_value)
            singles = [verifier.verify(part, eps) for part in problem.split()]
            multi = verifier.verify(problem, eps)
            _check_combination(problem, eps, multi, singles)
            statuses.add(multi.status)
    assert statuses == {Status.ROBUST, Status.UNKNOWN}


def test_every_multi_target_counterexample_breaks_a_named_target():
    """Witnesses of the exact MILP and of PGD on a multi-target problem, over many boxes."""
    count = 0
    for seed, k in [(1, 3), (2, 2), (3, 3), (4, 2)]:
        for order in ("top", "reversed"):
            problem = _tiny_problem(seed, k, order)
            for eps_value in (0.1, 0.2, 0.5):
                eps = _uniform(problem, eps_value)
                for verifier in (Milp(bounds=BoundMethod.IBP), Attack(restarts=4, steps=20)):
                    verdict = verifier.verify(problem, eps)
                    if verdict.status is Status.NOT_ROBUST:
                        _assert_witness(problem, eps, verdict)
                        assert verdict.targets[-1].status is Status.NOT_ROBUST
                        assert all(part.status is not Status.NOT_ROBUST for part in verdict.targets[:-1])
                        assert torch.equal(verdict.counterexample, verdict.targets[-1].counterexample)
                        count += 1
    assert count >= 10


def test_a_refuted_multi_target_bound_is_a_lower_bound_on_the_problems_margin():
    """Targets (1, 3) of tiny network 2 at eps 0.5: target 1 is refuted first (its exact
    minimum margin is about -0.26), target 3's exact minimum is about -0.42. ``bound`` is
    documented as a sound lower bound on ``min_box m``, ``m`` the minimum over targets, so it
    must be None or at most -0.42."""
    problem = _tiny_problem(2, 2)
    assert problem.targets == (1, 3)
    eps = _uniform(problem, 0.5)
    verdict = _exact().verify(problem, eps)
    assert verdict.status is Status.NOT_ROBUST and len(verdict.targets) == 1  # refuted early
    truth = min(-exact_optimum(part, eps.tolist()) for part in problem.split())
    assert verdict.bound is None or verdict.bound <= truth + 1e-6


# ---------------------------------------------------------------- the attack


def test_the_attack_refutes_a_multi_target_problem_where_its_weakest_target_falls():
    attack = Attack(restarts=4, steps=20)
    refuted = 0
    for seed, k in [(1, 2), (2, 3), (3, 2), (4, 3), (5, 3)]:
        for order in ("top", "reversed"):
            problem = _tiny_problem(seed, k, order)
            weakest = problem.split()[problem.targets.index(problem.weakest_target())]
            for eps_value in (0.0, 0.05, 0.1, 0.2, 0.3):
                eps = _uniform(problem, eps_value)
                single = attack.verify(weakest, eps)
                multi = attack.verify(problem, eps)
                # the zero box is the image, where every target is in the top-k
                assert multi.status in ((Status.UNKNOWN,) if eps_value == 0 else
                                        (Status.NOT_ROBUST, Status.UNKNOWN))
                if single.status is Status.NOT_ROBUST:
                    assert multi.status is Status.NOT_ROBUST
                    refuted += 1
                if multi.status is Status.NOT_ROBUST:
                    _assert_witness(problem, eps, multi)
                else:
                    assert multi.counterexample is None and multi.reason is not None
    assert refuted >= 5


def test_pgd_on_a_multi_target_problem_reports_the_minimum_margin():
    for seed, k in [(1, 3), (3, 2), (4, 3)]:
        problem = _tiny_problem(seed, k, "reversed")
        for eps_value in (0.05, 0.3, 1.0):
            eps = _uniform(problem, eps_value)
            result = pgd_attack(problem, eps, restarts=6, steps=15, step_fraction=0.1, seed=seed,
                                targeted=3)
            lo, hi = problem.box(eps)
            assert bool(((result.points >= lo) & (result.points <= hi)).all())
            with torch.no_grad():
                logits = problem.model(result.points)
            by_hand = torch.tensor([min(_margin_by_hand(row, target, k) for target in problem.targets)
                                    for row in logits])
            assert torch.allclose(result.margins.double(), by_hand.double(), atol=1e-5)
            assert bool((result.margins[1:] >= result.margins[:-1]).all())
            if eps_value == 1.0:  # the whole [0, 1] cube: some target always falls
                assert float(result.margins[0]) <= 0
                assert check_witness(problem, eps, result.points[0]) is not None


def test_the_attack_on_three_digit_images_checks_its_witnesses(three_digits):
    network, images = three_digits
    problem = image_problem(network, images, target="p0-t1+2")
    eps = _uniform(problem, 1.0)
    verdict = Attack(restarts=2, steps=10).verify(problem, eps)
    assert verdict.status is Status.NOT_ROBUST
    _assert_witness(problem, eps, verdict)


# ---------------------------------------------------------------- searches


@pytest.mark.parametrize("gradient", ["weakest-points+bound", "bound"])
def test_the_guided_search_certifies_every_target_of_a_multi_target_problem(gradient):
    """The bound step takes the minimum over the targets' CROWN bounds (a single-target
    bound would not exist on this problem); the vector it returns is proved for each target
    alone by the exact MILP."""
    from ringcert.search.guided import GuidedSettings
    from ringcert.search.runner import run_search
    from ringcert.vocabulary import Algorithm, GradientSource

    for seed in (1, 2):
        problem = _tiny_problem(seed, 2)
        result = run_search(problem, Crown(), algorithm=Algorithm.GUIDED,
                            settings=GuidedSettings(gradient=GradientSource(gradient)))
        assert result.size > 0
        for single in problem.split():
            assert _exact().verify(single, result.epsilon).status is Status.ROBUST
