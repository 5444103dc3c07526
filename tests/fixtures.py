"""Shared test fixtures: tiny seeded networks, problems on them, their exact optima, and
the sampled-point soundness checks (one module, imported by the test files that need them).

The exact optimum ``max_box -m(z)`` is found by enumerating every ReLU activation pattern,
every max-pool argmax and every k-set of other classes, and solving one small LP (scipy)
per combination (the network is affine on each piece): ground truth independent of every
verifier.
"""

from __future__ import annotations

import copy
import itertools

import numpy as np
import torch
from scipy.optimize import linprog
from torch import nn

from ringcert.problem import Problem
from ringcert.verify.attack import pgd_attack
from ringcert.verify.bounds import BoundMethod, candidate_sets, network_bounds
from ringcert.verify.bounds.network import NetworkBounds


def mlp(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 3), nn.ReLU(),
                         nn.Linear(3, 4))


def pooled(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 2, (1, 2)), nn.ReLU(), nn.MaxPool2d((1, 2)), nn.Flatten(),
                         nn.Linear(2, 4))


def tiny_problem(network: nn.Sequential, shape: tuple[int, int], seed: int, k: int = 2) -> Problem:
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand((1, *shape), generator=generator)
    mask = np.zeros(shape, dtype=bool)
    mask[0, 0] = True
    logits = network(image[None])[0].detach()
    target = int(torch.argsort(logits, descending=True)[k - 1])
    return Problem.create(model=network, image=image, target=target, mask=mask, k=k)


def _affine_pieces(network: nn.Sequential, image_shape: tuple[int, ...], pattern: list[np.ndarray]
                   ) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Logits ``A z + c`` on one piece, and the piece's constraints ``G z + h >= 0``."""
    n_in = int(np.prod(image_shape))
    a = np.eye(n_in)
    c = np.zeros(n_in)
    shape: tuple[int, ...] = (1, *image_shape)
    constraints: list[tuple[np.ndarray, np.ndarray]] = []
    choices = iter(pattern)
    x_shape = None
    for layer in network:
        if isinstance(layer, nn.ReLU):
            on = next(choices).astype(bool)
            constraints.append((np.where(on[:, None], a, -a), np.where(on, c, -c)))
            a, c = a * on[:, None], c * on
        elif isinstance(layer, nn.MaxPool2d):
            arg = next(choices)
            ch, h, w = x_shape
            index = np.arange(ch * h * w).reshape(ch, h, w)
            windows = index.reshape(ch, h, w // 2, 2).reshape(-1, 2)
            pick = windows[np.arange(windows.shape[0]), arg]
            other = windows[np.arange(windows.shape[0]), 1 - arg]
            constraints.append((a[pick] - a[other], c[pick] - c[other]))
            a, c = a[pick], c[pick]
            x_shape = (ch, h, w // 2)
            shape = (1, *x_shape)
        else:
            exact = copy.deepcopy(layer).double()
            with torch.no_grad():
                inputs = torch.as_tensor(np.vstack([a.T, c[None]]), dtype=torch.float64)
                flat = exact(inputs.reshape(n_in + 1, *shape[1:]))
                x_shape = tuple(flat.shape[1:])
                flat = flat.reshape(n_in + 1, -1).numpy()
                bias = exact(torch.zeros(1, *shape[1:], dtype=torch.float64)).reshape(-1).numpy()
            a = (flat[:n_in] - bias).T
            c = flat[n_in]
            shape = (1, *x_shape)
    return a, c, constraints


def _choice_sizes(network: nn.Sequential, image_shape: tuple[int, ...]) -> list[tuple[int, int]]:
    """(count, options) per ReLU / MaxPool layer."""
    sizes = []
    x = torch.zeros(1, *image_shape)
    for layer in network:
        before = x
        x = layer(x)
        if isinstance(layer, nn.ReLU):
            sizes.append((x[0].numel(), 2))
        elif isinstance(layer, nn.MaxPool2d):
            sizes.append((before[0].numel() // 2, 2))
    return sizes


def exact_optimum(problem: Problem, eps: list[float]) -> float:
    """``max over the box of -m(z)`` by enumerating pieces and k-sets (one LP each)."""
    lo, hi = (t.reshape(-1).double().numpy() for t in problem.box(eps))
    n_in = lo.shape[0]
    sizes = _choice_sizes(problem.model, tuple(problem.image.shape))
    others = [c for c in range(problem.num_classes) if c != problem.target]
    best = -np.inf
    flat_choices = [range(options) for count, options in sizes for _ in range(count)]
    for combo in itertools.product(*flat_choices):
        pattern, start = [], 0
        for count, _ in sizes:
            pattern.append(np.array(combo[start:start + count]))
            start += count
        a, c, constraints = _affine_pieces(problem.model, tuple(problem.image.shape), pattern)
        g = np.vstack([gi for gi, _ in constraints])
        h = np.concatenate([hi_ for _, hi_ in constraints])
        for chosen in itertools.combinations(others, problem.k):
            # max s  s.t. s <= (a_c - a_t) z + (c_c - c_t),  g z + h >= 0
            rows = [np.concatenate([-(a[j] - a[problem.target]), [1.0]]) for j in chosen]
            rhs = [c[j] - c[problem.target] for j in chosen]
            a_ub = np.vstack([*rows, np.hstack([-g, np.zeros((g.shape[0], 1))])])
            b_ub = np.concatenate([rhs, h])
            result = linprog(np.concatenate([np.zeros(n_in), [-1.0]]), A_ub=a_ub, b_ub=b_ub,
                             bounds=[*zip(lo, hi, strict=True), (None, None)], method="highs")
            if result.status == 0:
                best = max(best, -result.fun)
    return best


MILP_CASES = [(mlp, (2, 2), seed) for seed in range(3)] + [(pooled, (1, 3), seed) for seed in range(2)]


# seeds whose networks are not robust on the whole [0, 1] box (checked by enumeration below)
THRESHOLD_CASES = [(mlp, (2, 2), 5), (mlp, (2, 2), 8), (pooled, (1, 3), 6), (pooled, (1, 3), 11)]


def conv_net(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 3, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(3, 4, 3, padding=1),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16, 5))


TOL = 1e-4


def random_bn(channels: int, generator: torch.Generator) -> nn.BatchNorm2d:
    layer = nn.BatchNorm2d(channels)
    with torch.no_grad():
        layer.running_mean.copy_(torch.randn(channels, generator=generator) * 0.3)
        layer.running_var.copy_(torch.rand(channels, generator=generator) + 0.5)
        layer.weight.copy_(torch.randn(channels, generator=generator))
        layer.bias.copy_(torch.randn(channels, generator=generator) * 0.3)
    return layer


def net_a(seed: int) -> tuple[nn.Sequential, tuple[int, int, int]]:
    """Conv(s2,p1) - BN - ReLU - MaxPool(3,s2,p1, overlapping) - Conv(p1) - ReLU - AvgPool
    - Flatten - Linear - ReLU - Linear: 5 classes, input (1, 12, 12)."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    network = nn.Sequential(
        nn.Conv2d(1, 3, 3, stride=2, padding=1), random_bn(3, generator), nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1), nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 5))
    return network.eval(), (1, 12, 12)


def net_b(seed: int) -> tuple[nn.Sequential, tuple[int, int, int]]:
    """Conv(p1) - AvgPool(3,s1,p1) - Conv(4,s2) - ReLU - MaxPool(2,p1) - Flatten - Linear:
    two affine mixing layers in a row, a max-pool fed by a ReLU whose padded windows hold 1,
    2 or 4 inputs, 4 classes, input (2,10,10)."""
    torch.manual_seed(seed)
    network = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), nn.AvgPool2d(3, stride=1, padding=1),
        nn.Conv2d(3, 3, 4, stride=2), nn.ReLU(), nn.MaxPool2d(2, padding=1), nn.Flatten(),
        nn.Linear(27, 4))
    return network.eval(), (2, 10, 10)


def make_problem(network: nn.Sequential, shape: tuple[int, int, int], seed: int, k: int) -> Problem:
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(shape, generator=generator)
    mask = np.zeros(shape[1:], dtype=bool)
    mask[2:5, 3:6] = True
    with torch.no_grad():
        target = int(network(image[None])[0].argmax())
    return Problem.create(model=network, image=image, target=target, mask=mask, k=k)


def random_eps(problem: Problem, seed: int, scale: float) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(problem.num_rings, generator=generator, dtype=torch.float64) * scale


def box_points(problem: Problem, eps: torch.Tensor, seed: int, count: int = 1000) -> torch.Tensor:
    """Uniform samples, random box corners and PGD results inside the box."""
    lo, hi = problem.box(eps)
    generator = torch.Generator().manual_seed(seed)
    uniform = lo + torch.rand((count, *lo.shape), generator=generator) * (hi - lo)
    corners = torch.where(torch.rand((count // 4, *lo.shape), generator=generator) < 0.5, lo, hi)
    attack = pgd_attack(problem, eps, restarts=16, steps=30, step_fraction=0.1, seed=seed).points
    return torch.cat([uniform, corners, attack.detach()])


def layer_outputs(network: nn.Sequential, points: torch.Tensor) -> list[torch.Tensor]:
    outputs, current = [], points
    with torch.no_grad():
        for layer in network:
            current = layer(current)
            outputs.append(current)
    return outputs


def assert_layer_bounds_sound(network: nn.Sequential, points: torch.Tensor, lo: torch.Tensor,
                              hi: torch.Tensor) -> tuple[NetworkBounds, NetworkBounds]:
    """Every layer output of every point lies in the IBP and the CROWN layer bounds, and
    CROWN's are inside IBP's. Returns (IBP, CROWN) bounds."""
    outputs = layer_outputs(network, points)
    ibp = network_bounds(network, lo, hi, method=BoundMethod.IBP)
    crown = network_bounds(network, lo, hi, method=BoundMethod.CROWN)
    for bounds in (ibp, crown):
        for out, (lower, upper) in zip(outputs, bounds.layers, strict=True):
            assert bool((out >= lower - TOL).all()) and bool((out <= upper + TOL).all())
    for (ibp_l, ibp_u), (cr_l, cr_u) in zip(ibp.layers, crown.layers, strict=True):
        assert bool((cr_l >= ibp_l).all()) and bool((cr_u <= ibp_u).all())
    return ibp, crown


def pair_maxima(problem: Problem, points: torch.Tensor) -> torch.Tensor:
    """``max_{c in S} (F_t - F_c)`` per point and candidate set (points, sets)."""
    with torch.no_grad():
        logits = problem.model(points)
    diffs = logits[:, problem.target:problem.target + 1] - logits
    sets = torch.tensor(candidate_sets(logits.shape[1], problem.target, problem.k))
    return diffs[:, sets].amax(dim=2)


