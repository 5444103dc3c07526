"""The receptive-field patch pass for CROWN intermediate bounds equals the full-size pass
(the reference) on random convolutional networks, and is sound on samples."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ringcert.models.architecture import seed_classifier
from ringcert.verify.bounds import patches
from ringcert.verify.bounds.crown import _full_size_bounds, crown_layer_bounds, ibp_layer_bounds
from tests.fixtures import layer_outputs, random_bn

REL_TOL = 1e-4


def conv_net(seed: int, *, pool: bool, size: int = 18) -> tuple[nn.Sequential, tuple[int, int, int]]:
    """A random local chain with every kind of step the patch pass takes: a sub-pixel
    strided conv (k=4, s=2), a conv with k not a multiple of s (k=3, s=2), padding larger and
    smaller than needed, BatchNorm between conv and ReLU, two convs in a row."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    layers: list[nn.Module] = [
        nn.Conv2d(2, 4, 4, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(4, 5, 3, stride=2, padding=1), random_bn(5, generator), nn.ReLU(),
        nn.Conv2d(5, 4, 2, padding=0), nn.Conv2d(4, 6, 3, padding=2), nn.ReLU(),
        nn.Conv2d(6, 3, 3, padding=1), nn.ReLU()]
    if pool:
        layers.append(nn.MaxPool2d(2))
    layers.append(nn.Flatten())
    with torch.no_grad():
        features = nn.Sequential(*layers).eval()(torch.zeros(1, 2, size, size)).shape[1]
    layers.append(nn.Linear(features, 4))
    return nn.Sequential(*layers).eval(), (2, size, size)


def _seed_like(seed: int) -> tuple[nn.Sequential, tuple[int, int, int]]:
    """The seed architecture at a third of the size: Conv(k8, s4, p2) - ReLU - Conv(k5, p2)
    - ReLU - MaxPool - Flatten - Linear on (1, 24, 24)."""
    torch.manual_seed(seed)
    network = nn.Sequential(nn.Conv2d(1, 4, 8, stride=4, padding=2), nn.ReLU(),
                            nn.Conv2d(4, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Flatten(), nn.Linear(6 * 3 * 3, 5))
    return network.eval(), (1, 24, 24)


def _box(shape: tuple[int, int, int], seed: int, radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    centre = torch.rand(shape, generator=generator)
    return (centre - radius).clamp(0, 1), (centre + radius).clamp(0, 1)


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).abs() / a.abs().clamp(min=1)).max())


def test_receptive_windows_of_the_seed_classifier() -> None:
    """A conv2 neuron sees a 5x5 window of conv1 outputs and a 24x24 input patch."""
    network = seed_classifier()
    windows = patches.receptive_windows(network, 2)
    assert [w.size for w in windows] == [(24, 24), (5, 5), (5, 5)]
    assert windows[0].stride == (4, 4) and windows[0].offset == (-10, -10)
    assert windows[2] == patches.Window(size=(5, 5), stride=(1, 1), offset=(-2, -2))
    lo, hi = torch.zeros(1, 64, 64), torch.ones(1, 64, 64)
    assert patches.applies(network, [(lo, hi), *ibp_layer_bounds(network, lo, hi)], 2)


@pytest.mark.parametrize(("builder", "seed", "radius"),
                         [(conv_net, 0, 0.05), (conv_net, 1, 0.2), (_seed_like, 2, 0.1),
                          (_seed_like, 3, 0.3)])
def test_patch_bounds_equal_full_size_bounds_on_every_neuron(builder, seed: int,
                                                             radius: float) -> None:
    network, shape = (builder(seed, pool=False) if builder is conv_net else builder(seed))
    lo, hi = _box(shape, seed, radius)
    with torch.no_grad():
        inputs = [(lo, hi), *crown_layer_bounds(network, lo, hi, use_patches=False)]
        checked = 0
        for index, layer in enumerate(network):
            if not isinstance(layer, nn.Conv2d | nn.BatchNorm2d) or index == len(network) - 1:
                continue
            shape_out = inputs[index + 1][0].shape
            chosen = torch.randperm(shape_out.numel(), generator=torch.Generator().manual_seed(
                index))[: max(1, shape_out.numel() // 2)]
            fast = patches.patch_bounds(network, inputs, index, chosen, shape_out)
            slow = _full_size_bounds(network, inputs, index, chosen, shape_out)
            for a, b in zip(slow, fast, strict=True):
                assert _relative(a, b) < REL_TOL, (index, _relative(a, b))
            assert bool((fast[0] <= fast[1] + 1e-5).all())
            checked += 1
    assert checked >= 2


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_crown_layer_bounds_equal_reference_and_are_sound(seed: int) -> None:
    network, shape = conv_net(seed, pool=seed % 2 == 0, size=48)
    lo, hi = _box(shape, seed, 0.15)
    with torch.no_grad():
        fast = crown_layer_bounds(network, lo, hi)
        slow = crown_layer_bounds(network, lo, hi, use_patches=False)
        ibp = ibp_layer_bounds(network, lo, hi)
    pool_at = next((i for i, layer in enumerate(network) if isinstance(layer, nn.MaxPool2d)),
                   len(network))
    for index, ((fl, fu), (sl, su), (il, iu)) in enumerate(zip(fast, slow, ibp, strict=True)):
        if index < pool_at:  # after a max-pool a near-tie may pick another (sound) relaxation
            assert _relative(sl, fl) < REL_TOL and _relative(su, fu) < REL_TOL, index
        assert bool((fl >= il).all()) and bool((fu <= iu).all()), index
    tighter = sum(int((fu - fl < iu - il - 1e-4).sum())
                  for (fl, fu), (il, iu) in zip(fast, ibp, strict=True))
    assert tighter > 0  # CROWN refined something
    inputs = [(lo, hi), *fast]
    assert any(patches.applies(network, inputs, i) for i in (2, 3, 6))  # ... on patches
    generator = torch.Generator().manual_seed(seed)
    points = lo + torch.rand((600, *shape), generator=generator) * (hi - lo)
    corners = torch.where(torch.rand((400, *shape), generator=generator) < 0.5, lo, hi)
    outputs = layer_outputs(network, torch.cat([points, corners]))
    for out, (lower, upper) in zip(outputs, fast, strict=True):
        assert bool((out >= lower - 1e-4).all()) and bool((out <= upper + 1e-4).all())


def test_patches_do_not_apply_beyond_local_layers() -> None:
    network = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(2, 2, 3),
                            nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))
    lo, hi = torch.zeros(1, 10, 10), torch.ones(1, 10, 10)
    inputs = [(lo, hi), *ibp_layer_bounds(network, lo, hi)]
    assert patches.applies(network, inputs, 0)
    assert not patches.applies(network, inputs, 3)  # a max-pool on the way back
    assert not patches.applies(network, inputs, 6)
