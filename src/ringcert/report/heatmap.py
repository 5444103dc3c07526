"""Heatmap of a layered neighborhood: each pixel coloured by its ring's epsilon.

The image is drawn in grey underneath, the epsilon of every pixel's ring on top (a
sequential colour map with a colour bar), and both objects outlined: the perturbed
object (where the rings grow from) and the target. The seed's figures 3-4 show the same
picture. With an attack frontier ``u`` (docs/design.md section 3.7) the figure has two
heatmaps side by side, the certified ``eps*`` on the left and the frontier ``u`` on the
right, under one shared colour scale, and below the frontier a strip of the gap
``u_d - eps*_d`` per ring against ring distance: where the model takes more than is
certified. Without one, the certified heatmap alone.

The colour scale, decided (issue: a one-pixel corner ring at eps 1.0 supplied 73% of a size
and was drawn in the same top colour as a ring at 0.11, because the old scale ran linearly
to the 99th percentile and clipped everything above it):

- **logarithmic, fixed from 1e-3 to 1** (``EPS_FLOOR``, ``vmax``), the same for every
  analysis and for both panels. Each decade gets a third of the colour map, so 0.002, 0.02,
  0.11 and 1.0 are four clearly different colours (viridis: purple, blue, green, yellow),
  nothing above 1 exists to clip, and two heatmaps of different models or images are read
  on one scale. A linear scale cannot do both: to 1 it hides the typical 0.001-0.05, to a
  percentile it clips the large rings that carry the size;
- epsilons **below 1e-3 (including 0) are not coloured** (transparent: the grey image shows
  as it is, the colour bar's lower arrow), so "nothing certified" differs from "a little";
- colour shows epsilon, not size: a ring's share of the size ``w . eps`` also scales with
  its weight. So a strip under the certified heatmap plots each ring's **share of the
  size**, ``w_d eps*_d / (w . eps*)`` against ring distance, and names the largest share
  with its ring's pixel count and epsilon (``ring 43 (1 px, eps 1.00): 73% of size``);
  when one ring supplies at least a quarter of the size, the heatmap rings its pixels in
  magenta (a circle per pixel when it has at most 8, else a dashed outline), so a one-pixel
  corner that carries the size cannot be overlooked.

Reads results only; never verifies. The PNG is written atomically.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.colors import Colormap, LogNorm
    from matplotlib.figure import Figure

EPS_FLOOR = 1e-3
"""The lowest epsilon the colour scale shows; below it a ring is left uncoloured."""
OVERLAY_ALPHA = 0.65
HIGHLIGHT = "magenta"
HIGHLIGHT_SHARE = 0.25
"""A ring that supplies at least this share of the size is ringed on the heatmap."""


def epsilon_map(rings: np.ndarray, epsilon: np.ndarray) -> np.ndarray:
    """Per-pixel epsilon (H, W): ``epsilon[ring(p)]``."""
    return np.asarray(epsilon, dtype=np.float64)[np.asarray(rings)]


def colour_norm(vmax: float | None = None) -> LogNorm:
    """The shared scale: logarithmic from ``EPS_FLOOR`` to ``vmax`` (1)."""
    from matplotlib.colors import LogNorm

    top = 1.0 if vmax is None else float(vmax)
    if not top > EPS_FLOOR:
        raise ValueError(f"vmax {top} must exceed the colour scale's floor {EPS_FLOOR}")
    return LogNorm(vmin=EPS_FLOOR, vmax=top)


def colour_map() -> Colormap:
    """viridis, transparent below the floor (and for 0, which a log scale masks)."""
    from matplotlib import colormaps

    clear = (0.0, 0.0, 0.0, 0.0)
    return colormaps["viridis"].with_extremes(under=clear, bad=clear)


def _weights(weights: np.ndarray | None, eps: np.ndarray) -> np.ndarray:
    w = np.ones_like(eps) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != eps.shape:
        raise ValueError(f"{len(w)} weights for {len(eps)} rings")
    return w


def size_share(epsilon: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Each ring's share of the size: ``w_d eps_d / (w . eps)`` (all 0 if the size is 0)."""
    eps = np.asarray(epsilon, dtype=np.float64)
    parts = _weights(weights, eps) * eps
    total = float(parts.sum())
    return parts / total if total > 0 else np.zeros_like(parts)


def ring_gap(epsilon: np.ndarray, frontier: np.ndarray) -> np.ndarray:
    """``u_d - eps*_d`` per ring: how much more the attack needed than is certified."""
    eps = np.asarray(epsilon, dtype=np.float64)
    upper = np.asarray(frontier, dtype=np.float64)
    if upper.shape != eps.shape:
        raise ValueError(f"the frontier has {len(upper)} rings, the certificate {len(eps)}")
    return upper - eps


def save_heatmap(path: str | Path, *, image: np.ndarray, rings: np.ndarray,
                 epsilon: np.ndarray, perturbed_mask: np.ndarray,
                 target_mask: np.ndarray | None = None, title: str = "",
                 vmax: float | None = None, frontier: np.ndarray | None = None,
                 weights: np.ndarray | None = None) -> Path:
    """Write the heatmap PNG to ``path`` (temp file + ``os.replace``); returns the path."""
    from ringcert.batch.store import write_atomic

    path = Path(path)
    write_atomic(path, heatmap_png(image=image, rings=rings, epsilon=epsilon,
                                   perturbed_mask=perturbed_mask, target_mask=target_mask,
                                   title=title, vmax=vmax, frontier=frontier, weights=weights))
    return path


def _draw_panel(axes, picture: np.ndarray, per_pixel: np.ndarray, *, norm, cmap, masks,
                legend: bool, highlight: tuple[np.ndarray, str] | None = None):
    axes.imshow(picture, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    shown = axes.imshow(per_pixel, cmap=cmap, norm=norm, alpha=OVERLAY_ALPHA,
                        interpolation="nearest")
    from matplotlib.lines import Line2D

    handles = []
    for mask, colour, label in masks:
        if mask is not None and np.asarray(mask).any():
            axes.contour(np.asarray(mask, dtype=float), levels=[0.5], colors=colour,
                         linewidths=1.2)
            handles.append(Line2D([], [], color=colour, label=label))
    if highlight is not None:
        # the ring that supplies the largest share of the size, ringed even if it is one pixel
        where, label = highlight
        rows, cols = np.nonzero(where)
        if len(rows) <= 8:
            axes.scatter(cols, rows, s=90, facecolors="none", edgecolors=HIGHLIGHT,
                         linewidths=1.3, clip_on=False, zorder=4)
        else:
            axes.contour(where.astype(float), levels=[0.5], colors=HIGHLIGHT, linewidths=1.0,
                         linestyles="dashed")
        handles.append(Line2D([], [], color=HIGHLIGHT, linestyle="none", marker="o",
                              markerfacecolor="none", label=label))
    if handles and legend:
        box = axes.legend(handles=handles, loc="lower left", fontsize=7, framealpha=0.6,
                          facecolor="black", labelcolor="white")
        box.get_frame().set_edgecolor("none")
    axes.set_xticks([])
    axes.set_yticks([])
    return shown


def _share_strip(axes, share: np.ndarray, epsilon: np.ndarray, pixels: np.ndarray) -> None:
    distance = np.arange(len(share))
    axes.bar(distance, 100 * share, width=0.8, color="tab:blue")
    axes.set_xlim(-0.6, len(share) - 0.4)
    axes.set_ylim(0, max(1.0, 115 * float(share.max())))  # a spread-out size stays readable
    axes.set_ylabel("% of size", fontsize=7)
    axes.set_xlabel("ring distance", fontsize=7)
    axes.tick_params(labelsize=6)
    if share.any():
        top = int(np.argmax(share))
        note = (f"ring {top} ({int(pixels[top])} px, eps {epsilon[top]:.2f}): "
                f"{100 * share[top]:.0f}% of size")
    else:
        note = "size 0: nothing certified"
    axes.set_title(f"share of size w·eps* per ring; {note}", fontsize=7)


def _gap_strip(axes, gap: np.ndarray, w: np.ndarray) -> None:
    distance = np.arange(len(gap))
    axes.bar(distance, gap, width=0.8, color="tab:orange")
    axes.axhline(0.0, color="black", linewidth=0.6)
    axes.set_xlim(-0.6, len(gap) - 0.4)
    axes.set_ylim(min(0.0, float(gap.min()) * 1.05), max(1.0, float(gap.max()) * 1.05))
    axes.set_ylabel("u − eps*", fontsize=7)
    axes.set_xlabel("ring distance", fontsize=7)
    axes.tick_params(labelsize=6)
    axes.set_title(f"gap per ring (u = 1: unbreakable); w·gap {float(np.dot(w, gap)):.3f}",
                   fontsize=7)


def heatmap_figure(*, image: np.ndarray, rings: np.ndarray, epsilon: np.ndarray,
                   perturbed_mask: np.ndarray, target_mask: np.ndarray | None = None,
                   title: str = "", vmax: float | None = None,
                   frontier: np.ndarray | None = None,
                   weights: np.ndarray | None = None) -> Figure:
    """The heatmap as a matplotlib Figure. Its axes carry labels: ``certified`` (and
    ``frontier``) heatmaps, ``colorbar``, ``share`` (share of size per ring) and, with a
    frontier, ``gap`` (``u - eps*`` per ring)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    eps = np.asarray(epsilon, dtype=np.float64)
    w = _weights(weights, eps)
    rings = np.asarray(rings)
    picture = np.asarray(image, dtype=np.float64)
    if picture.ndim == 3:
        picture = picture.mean(axis=0)
    gap = None if frontier is None else ring_gap(eps, frontier)
    share = size_share(eps, w)
    pixels = np.bincount(rings.ravel(), minlength=len(eps))
    norm, cmap = colour_norm(vmax), colour_map()
    masks = ((perturbed_mask, "tab:red", "perturbed object"),
             (target_mask, "white", "target object"))

    columns = 1 if gap is None else 2
    figure = Figure(figsize=(5.2 if gap is None else 9.2, 5.9), dpi=110, layout="constrained")
    grid = figure.add_gridspec(2, columns, height_ratios=[4.0, 1.1])
    panels = [figure.add_subplot(grid[0, 0])]
    panels[0].set_label("certified")
    highlight = None
    if share.max() >= HIGHLIGHT_SHARE:
        largest = int(np.argmax(share))
        highlight = (rings == largest,
                     f"largest share: ring {largest} ({100 * share[largest]:.0f}% of size)")
    shown = _draw_panel(panels[0], picture, epsilon_map(rings, eps), norm=norm, cmap=cmap,
                        masks=masks, legend=True, highlight=highlight)
    if gap is None:
        panels[0].set_title("certified eps*", fontsize=8)
    else:
        panels[0].set_title(f"certified eps* (size w·eps* {float(np.dot(w, eps)):.3f})", fontsize=8)
        panels.append(figure.add_subplot(grid[0, 1]))
        panels[1].set_label("frontier")
        upper = np.asarray(frontier, dtype=np.float64)
        _draw_panel(panels[1], picture, epsilon_map(rings, upper), norm=norm, cmap=cmap,
                    masks=masks, legend=False)
        panels[1].set_title(f"attack frontier u (w·u {float(np.dot(w, upper)):.3f})", fontsize=8)
    top = norm.vmax
    shown_max = float(eps.max() if frontier is None else max(eps.max(), np.max(frontier)))
    bar = figure.colorbar(shown, ax=panels, fraction=0.046, pad=0.02,
                          extend="both" if shown_max > top else "min",
                          label=f"ring epsilon (log scale; uncoloured: < {EPS_FLOOR:g})")
    bar.ax.set_label("colorbar")
    ticks = [tick for tick in (1e-3, 1e-2, 1e-1, 1.0) if tick <= top] + ([top] if top > 1.0 else [])
    bar.set_ticks(ticks, labels=[f"{tick:g}" for tick in ticks])
    bar.ax.tick_params(labelsize=7)
    bar.ax.yaxis.label.set_fontsize(8)
    share_axes = figure.add_subplot(grid[1, 0])
    share_axes.set_label("share")
    _share_strip(share_axes, share, eps, pixels)
    if gap is not None:
        gap_axes = figure.add_subplot(grid[1, 1])
        gap_axes.set_label("gap")
        _gap_strip(gap_axes, gap, w)
    if title:
        figure.suptitle(title, fontsize=8)
    return figure


def heatmap_png(*, image: np.ndarray, rings: np.ndarray, epsilon: np.ndarray,
                perturbed_mask: np.ndarray, target_mask: np.ndarray | None = None,
                title: str = "", vmax: float | None = None,
                frontier: np.ndarray | None = None,
                weights: np.ndarray | None = None) -> bytes:
    """The heatmap as PNG bytes (``heatmap_figure``): with ``frontier`` (``u`` per ring, 1
    where unbreakable) certified and frontier side by side plus the gap strip."""
    figure = heatmap_figure(image=image, rings=rings, epsilon=epsilon,
                            perturbed_mask=perturbed_mask, target_mask=target_mask, title=title,
                            vmax=vmax, frontier=frontier, weights=weights)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
