"""The heatmap: per-pixel epsilon from rings, a valid PNG written atomically; with a frontier,
certified and frontier side by side on one colour scale plus the gap per ring; a colour scale
on which a ring at 0.11 and a ring at 1.0 differ, and a strip of each ring's share of the size."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.colors import LogNorm
from matplotlib.image import imread

from ringcert.problem import ring_map
from ringcert.report.heatmap import (
    EPS_FLOOR,
    epsilon_map,
    heatmap_figure,
    heatmap_png,
    ring_gap,
    save_heatmap,
    size_share,
)


def test_epsilon_map_colours_each_pixel_by_its_ring():
    mask = np.zeros((9, 9), dtype=bool)
    mask[4, 4] = True
    rings = ring_map(mask)
    eps = np.array([0.9, 0.5, 0.25, 0.1, 0.0])
    picture = epsilon_map(rings, eps)
    assert picture[4, 4] == 0.9
    assert picture[3, 5] == 0.5 and picture[0, 0] == 0.0 and picture[2, 4] == 0.25
    assert picture.shape == rings.shape


def test_save_heatmap_writes_a_png_and_no_leftovers(tmp_path):
    rng = np.random.default_rng(0)
    mask = np.zeros((16, 16), dtype=bool)
    mask[3:6, 2:5] = True
    target = np.zeros_like(mask)
    target[9:13, 10:14] = True
    rings = ring_map(mask)
    eps = rng.random(int(rings.max()) + 1)
    out = tmp_path / "sub" / "0-right.png"
    save_heatmap(out, image=rng.random((1, 16, 16)), rings=rings, epsilon=eps,
                 perturbed_mask=mask, target_mask=target, title="none #0: size 1.0, 9 queries")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = imread(out)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.std() > 0.05
    assert [p.name for p in out.parent.iterdir()] == ["0-right.png"]
    save_heatmap(out, image=np.zeros((16, 16)), rings=rings, epsilon=np.zeros_like(eps),
                 perturbed_mask=mask, frontier=np.ones_like(eps))  # in place, no target outline
    assert [p.name for p in out.parent.iterdir()] == ["0-right.png"]


def _scene():
    """The issue's case: ring 1 at 0.11, the one-pixel corner ring at 1.0, the rest small or 0;
    a frontier above it (1 = unbreakable on the far rings)."""
    mask = np.zeros((24, 24), dtype=bool)
    mask[2:6, 2:5] = True
    target = np.zeros_like(mask)
    target[14:20, 14:19] = True
    rings = ring_map(mask)
    rings[-1, -1] = rings.max() + 1  # a one-pixel corner ring, as on DOUBLE-MNIST image 0
    count = int(rings.max()) + 1
    eps = np.zeros(count)
    eps[1], eps[3:6], eps[-1] = 0.11, 0.004, 1.0
    upper = np.minimum(eps + np.linspace(0.05, 0.9, count), 1.0)
    upper[-4:] = 1.0
    image = np.random.default_rng(1).random((1, 24, 24))
    return dict(image=image, rings=rings, epsilon=eps, perturbed_mask=mask,
                target_mask=target), upper


def _axes(figure):
    return {axes.get_label(): axes for axes in figure.axes}


def test_frontier_gives_two_panels_on_one_shared_scale():
    scene, upper = _scene()
    single = _axes(heatmap_figure(**scene, title="single"))
    assert sorted(single) == ["certified", "colorbar", "share"]
    figure = heatmap_figure(**scene, frontier=upper, title="both")
    both = _axes(figure)
    assert sorted(both) == ["certified", "colorbar", "frontier", "gap", "share"]
    assert len(figure.axes) == 5  # one colour bar for both panels
    assert "certified" in both["certified"].get_title()
    assert "frontier" in both["frontier"].get_title()
    left, right = (both[name].images[-1] for name in ("certified", "frontier"))
    assert left.norm is right.norm and isinstance(left.norm, LogNorm)
    assert (left.norm.vmin, left.norm.vmax) == (right.norm.vmin, right.norm.vmax) == (EPS_FLOOR, 1.0)
    assert left.cmap.name == right.cmap.name
    np.testing.assert_allclose(right.get_array(), epsilon_map(scene["rings"], upper))
    np.testing.assert_allclose(left.get_array(), epsilon_map(scene["rings"], scene["epsilon"]))
    # both panels keep the object outlines; the legend is drawn once
    from matplotlib.contour import ContourSet

    for name in ("certified", "frontier"):
        outlines = [item for item in both[name].collections if isinstance(item, ContourSet)]
        assert len(outlines) == 2, name
    assert both["certified"].get_legend() is not None
    labels = [text.get_text() for text in both["certified"].get_legend().get_texts()]
    assert labels[:2] == ["perturbed object", "target object"]
    wide = imread(io.BytesIO(heatmap_png(**scene, frontier=upper)))
    narrow = imread(io.BytesIO(heatmap_png(**scene)))
    assert wide.shape[1] > 1.5 * narrow.shape[1]


def test_a_ring_at_0_11_and_one_at_1_differ_in_colour():
    scene, _ = _scene()
    overlay = _axes(heatmap_figure(**scene))["certified"].images[-1]
    colours = overlay.to_rgba(overlay.get_array())  # per pixel, as drawn (before the alpha)
    rings = scene["rings"]
    at_011 = colours[rings == 1][0]
    at_1 = colours[rings == rings.max()][0]
    assert np.abs(at_011[:3] - at_1[:3]).max() > 0.3
    rgba = lambda value: np.asarray(overlay.cmap(overlay.norm(value)))  # noqa: E731
    # each decade its own colour: small values are not lost beside large ones
    for low, high in ((0.002, 0.02), (0.02, 0.11), (0.11, 1.0)):
        assert np.linalg.norm(rgba(low)[:3] - rgba(high)[:3]) > 0.25, (low, high)
    # nothing certified (0, or below the floor) is left uncoloured; the floor itself is not
    assert rgba(0.0)[3] == 0.0 and rgba(EPS_FLOOR / 2)[3] == 0.0 and rgba(EPS_FLOOR)[3] == 1.0
    assert colours[rings == 0][0][3] == 0.0


def test_gap_strip_is_u_minus_eps_per_ring():
    scene, upper = _scene()
    gap_axes = _axes(heatmap_figure(**scene, frontier=upper))["gap"]
    bars = gap_axes.patches
    assert [round(bar.get_x() + bar.get_width() / 2) for bar in bars] == list(range(len(upper)))
    np.testing.assert_allclose([bar.get_height() for bar in bars], upper - scene["epsilon"])
    np.testing.assert_allclose(ring_gap(scene["epsilon"], upper), upper - scene["epsilon"])
    assert f"{float(np.sum(upper - scene['epsilon'])):.3f}" in gap_axes.get_title()
    with pytest.raises(ValueError, match="rings"):
        heatmap_figure(**scene, frontier=upper[:-1])


def test_share_strip_shows_where_the_size_comes_from():
    scene, _ = _scene()
    eps = scene["epsilon"]
    weights = np.linspace(1.0, 2.0, len(eps))
    drawn = _axes(heatmap_figure(**scene, weights=weights))
    share_axes = drawn["share"]
    expected = weights * eps / np.dot(weights, eps)
    np.testing.assert_allclose(size_share(eps, weights), expected)
    np.testing.assert_allclose([bar.get_height() for bar in share_axes.patches], 100 * expected)
    corner = len(eps) - 1
    pixels = int((scene["rings"] == corner).sum())
    assert (f"ring {corner} ({pixels} px, eps 1.00): {100 * expected[corner]:.0f}% of size"
            in share_axes.get_title())
    # the heatmap rings the pixels of the ring that carries the most
    legend = [text.get_text() for text in drawn["certified"].get_legend().get_texts()]
    assert legend[-1] == f"largest share: ring {corner} ({100 * expected[corner]:.0f}% of size)"
    ringed = [item for item in drawn["certified"].collections if isinstance(item, PathCollection)]
    circled = {tuple(np.rint(point).astype(int)) for item in ringed for point in item.get_offsets()}
    rows, cols = np.nonzero(scene["rings"] == corner)
    assert circled == set(zip(cols.tolist(), rows.tolist(), strict=True))
    assert not size_share(np.zeros(3)).any()
    # a size spread over the rings (as on the pgd model) has no ring to point at
    spread = _axes(heatmap_figure(**{**scene, "epsilon": np.full(len(eps), 0.1)}))["certified"]
    assert [text.get_text() for text in spread.get_legend().get_texts()] == [
        "perturbed object", "target object"]
