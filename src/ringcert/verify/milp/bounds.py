"""Tighter pre-activation bounds for the second convolution (the MILP's big-M constants).

For a network that starts ``Conv2d -> ReLU -> Conv2d`` (the seed classifier), the bound of
one neuron of the second convolution over the triangle relaxation of the first ReLU layer
is a one-hidden-layer problem, where alpha-CROWN with optimized lower slopes reaches the
LP optimum (Salman et al., NeurIPS 2019, "A convex relaxation barrier"; Xu et al., ICLR
2021, "Fast and complete"). CROWN's adaptive slopes are often far from it. Each neuron only
sees a ``k x k`` window of the first ReLU layer and the input patch under it, so the
backward pass is done locally: per row, a window of slopes (e.g. 16 x 5 x 5 = 400) and a
dense ``window -> input patch`` matrix shared by all positions (translation invariance,
padding handled by masks). A few Adam steps on all rows at once, in float64, keep the
best bound of each row. The result is intersected with the CROWN bounds, so bounds only
shrink; both are sound.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from ringcert.errors import RingcertError
from ringcert.layers.base import pair, weight_and_bias
from ringcert.layers.registry import layer_type
from ringcert.layers.relu import relaxation
from ringcert.verify.bounds.ascent import maximize

Interval = tuple[torch.Tensor, torch.Tensor]


def supports_local(network: nn.Sequential) -> bool:
    """True when the network starts ``Conv2d -> ReLU -> Conv2d`` with plain convolutions."""
    if len(network) < 3:
        return False
    first, relu, second = network[0], network[1], network[2]
    if not (isinstance(first, nn.Conv2d) and isinstance(relu, nn.ReLU) and isinstance(second, nn.Conv2d)):
        return False
    return all(_supported(conv) for conv in (first, second))


def _supported(layer: nn.Module) -> bool:
    """Whether the layer's parameters pass its type's check."""
    try:
        layer_type(layer).check(layer)
    except RingcertError:
        return False
    return True


def optimized_second_conv(network: nn.Sequential, lo: torch.Tensor, hi: torch.Tensor,
                          layers: list[Interval], *, steps: int = 30, lr: float = 0.2,
                          select_all: bool = True, chunk: int = 4096) -> tuple[list[Interval], dict]:
    """``layers`` (bounds on every layer output, e.g. CROWN's) with the second convolution's
    bounds tightened by alpha-optimization, and the layers after it re-intersected with
    interval bounds from the new ones. ``select_all``: tighten every neuron whose bounds
    matter (upper > 0), not just the unstable ones (active widths matter for max-pools)."""
    first, second = network[0], network[2]
    dtype = torch.float64
    w1, b1 = (t.to(dtype) for t in weight_and_bias(first))
    w2, b2 = (t.to(dtype) for t in weight_and_bias(second))
    lo64, hi64 = lo.detach().to(dtype), hi.detach().to(dtype)
    (s1h, s1w), (p1h, p1w) = pair(first.stride), pair(first.padding)
    (k1h, k1w) = pair(first.kernel_size)
    (s2h, s2w), (p2h, p2w) = pair(second.stride), pair(second.padding)
    (k2h, k2w) = pair(second.kernel_size)
    # first-layer pre-activation bounds, exact interval arithmetic in float64
    centre, radius = (hi64 + lo64) / 2, (hi64 - lo64) / 2
    mid = functional.conv2d(centre[None], w1, b1, (s1h, s1w), (p1h, p1w))[0]
    rad = functional.conv2d(radius[None], w1.abs(), None, (s1h, s1w), (p1h, p1w))[0]
    slack = 1e-9 * (mid.abs() + rad) + 1e-12
    l1, u1 = mid - rad - slack, mid + rad + slack
    c1, h1, wd1 = l1.shape
    lower2, upper2 = (t.detach().to(dtype) for t in layers[2])
    _, h2, wd2 = lower2.shape
    select = upper2 > lower2
    select &= upper2 > 0 if select_all else (lower2 < 0) & (upper2 > 0)
    chosen = select.flatten().nonzero()[:, 0]
    stats = {"tightened_rows": int(chosen.numel())}
    if chosen.numel() == 0:
        return layers, stats
    # windows of the first ReLU layer (zero padding of the second conv masked out)
    pad_l = functional.pad(l1, (p2w, p2w, p2h, p2h))
    pad_u = functional.pad(u1, (p2w, p2w, p2h, p2h))
    valid = functional.pad(torch.ones(1, h1, wd1, dtype=dtype), (p2w, p2w, p2h, p2h))
    unfold2 = {"kernel_size": (k2h, k2w), "stride": (s2h, s2w)}
    win_l = functional.unfold(pad_l[None], **unfold2)[0]  # (c1*k2h*k2w, positions)
    win_u = functional.unfold(pad_u[None], **unfold2)[0]
    win_valid = functional.unfold(valid.expand(c1, -1, -1)[None], **unfold2)[0]
    # input patch under each window: relu1 rows y1 - p2h .. , input rows s1h*y1 - p1h ..
    patch_h, patch_w = (k2h - 1) * s1h + k1h, (k2w - 1) * s1w + k1w
    off_h, off_w = p2h * s1h + p1h, p2w * s1w + p1w
    channels = lo64.shape[0]
    extra_h = max(0, (h2 - 1) * s2h * s1h + patch_h - off_h - lo64.shape[1])
    extra_w = max(0, (wd2 - 1) * s2w * s1w + patch_w - off_w - lo64.shape[2])
    pad_in = (off_w, extra_w, off_h, extra_h)
    unfold_in = {"kernel_size": (patch_h, patch_w), "stride": (s2h * s1h, s2w * s1w)}
    in_lo = functional.unfold(functional.pad(lo64, pad_in)[None], **unfold_in)[0]
    in_hi = functional.unfold(functional.pad(hi64, pad_in)[None], **unfold_in)[0]
    positions = h2 * wd2
    in_lo, in_hi = in_lo[:, :positions], in_hi[:, :positions]
    # dense map window (c1, dy, dx) -> input patch (channels, py, px), shared by all positions
    dense = w1.new_zeros(c1, k2h, k2w, channels, patch_h, patch_w)
    for dy in range(k2h):
        for dx in range(k2w):
            dense[:, dy, dx, :, dy * s1h:dy * s1h + k1h, dx * s1w:dx * s1w + k1w] = w1
    dense = dense.reshape(c1 * k2h * k2w, channels * patch_h * patch_w)
    bias1 = b1.repeat_interleave(k2h * k2w)
    new_l, new_u = lower2.flatten().clone(), upper2.flatten().clone()
    for start in range(0, chosen.numel(), chunk // 2):
        part = chosen[start:start + chunk // 2]
        rows = torch.cat([part, part])
        sign = torch.cat([torch.ones(part.numel(), dtype=dtype), -torch.ones(part.numel(), dtype=dtype)])
        channel, pos = rows // positions, rows % positions
        g = sign[:, None] * w2[channel].reshape(rows.numel(), -1) * win_valid[:, pos].T
        low, up = win_l[:, pos].T, win_u[:, pos].T
        base_slope, up_slope, up_icpt = relaxation(low, up)
        open_ = (low < 0) & (up > 0)
        const = sign * b2[channel] + (g.clamp(max=0) * up_icpt).sum(1)
        p_lo, p_hi = in_lo[:, pos].T, in_hi[:, pos].T
        best = _optimize(g, base_slope, up_slope, open_, const, bias1, dense, p_lo, p_hi,
                         steps=steps, lr=lr)
        half = part.numel()
        bound_l, bound_u = best[:half], -best[half:]
        tol_l = 1e-9 * bound_l.abs() + 1e-9
        tol_u = 1e-9 * bound_u.abs() + 1e-9
        new_l[part] = torch.maximum(new_l[part], bound_l - tol_l)
        new_u[part] = torch.minimum(new_u[part], bound_u + tol_u)
    new_u = torch.maximum(new_u, new_l)  # empty only by rounding; keep the interval valid
    result = list(layers)
    dtype_out = layers[2][0].dtype
    result[2] = (new_l.reshape(lower2.shape).to(dtype_out), new_u.reshape(upper2.shape).to(dtype_out))
    current = result[2]
    for index in range(3, len(network)):
        layer = network[index]
        ibp = layer_type(layer, "bound propagation").ibp(layer, *current)
        current = (torch.maximum(ibp[0], layers[index][0]), torch.minimum(ibp[1], layers[index][1]))
        result[index] = current
    before = int(((lower2 < 0) & (upper2 > 0)).sum())
    after = int(((result[2][0] < 0) & (result[2][1] > 0)).sum())
    stats.update(unstable2_before=before, unstable2_after=after)
    return result, stats


def _rows_bound(g: torch.Tensor, low_slope: torch.Tensor, up_slope: torch.Tensor, const: torch.Tensor,
                bias1: torch.Tensor, dense: torch.Tensor, p_lo: torch.Tensor, p_hi: torch.Tensor
                ) -> torch.Tensor:
    """Lower bound of each row for the given lower slopes (the CROWN step, done locally)."""
    coef = g.clamp(min=0) * low_slope + g.clamp(max=0) * up_slope
    into = coef @ dense
    return (const + coef @ bias1 + (into.clamp(min=0) * p_lo).sum(1)
            + (into.clamp(max=0) * p_hi).sum(1))


def _optimize(g, base_slope, up_slope, open_, const, bias1, dense, p_lo, p_hi, *, steps, lr):
    """Adam on the lower slopes of unstable first-layer neurons (from CROWN's); the best
    bound per row over the steps (CROWN's own with ``steps`` 0)."""

    def objective(alpha: torch.Tensor) -> torch.Tensor:
        slope = torch.where(open_, alpha, base_slope)
        return _rows_bound(g, slope, up_slope, const, bias1, dense, p_lo, p_hi)

    found = maximize([base_slope], objective, steps=steps, lr=lr,
                     project=lambda alpha: alpha.clamp_(0.0, 1.0))
    return found.best
