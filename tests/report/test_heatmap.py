"""The heatmap: per-pixel epsilon from rings, a valid PNG written atomically."""

from __future__ import annotations

import numpy as np
from matplotlib.image import imread

from ringcert.problem import ring_map
from ringcert.report.heatmap import epsilon_map, save_heatmap


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
                 perturbed_mask=mask)  # overwrite in place, without a target outline
    assert [p.name for p in out.parent.iterdir()] == ["0-right.png"]
