"""``nn.MaxPool2d``: spec, ONNX node and bounds with the DeepPoly relaxation (Singh et al.
2019) with linear upper bounds where they pay (the MILP's encoding of the max is in
``verify/milp/encoding.py``).

For each window, lower: ``max >= x_j`` for ``j`` the input with the largest lower bound
(any single input is a valid lower bound). Upper: a nested family of valid bounds. Rank the
window's inputs by upper bound, ``u_(1) >= u_(2) >= ...``; for ``m = 0, 1, ...``,

    max <= sum_{i <= m} (x_(i) - l_(i)) + max(max_{i <= m} l_(i), u_(m+1))

(if one of the first ``m`` inputs is the max it is ``l_(i) + (x_(i) - l_(i))``, at most the
right-hand side since every term of the sum is >= 0; if another input is, it is at most
``u_(m+1)``). ``m = 0`` is DeepPoly's constant ``u_(1)``; ``m = 1`` is
``x_(1) + max(0, u_(2) - l_(1))``, exact when ``x_(1)`` dominates the window. Following
inputs keeps their correlation with the rest of the network, at the price of a looser value
at the box's worst case. CROWN takes the ``m`` (up to ``UPPER_DEPTH``) whose bound is
smallest at the box's centre (for ``m`` in {0, 1} the rule "offset at most half of
``x_(1)``'s width"). alpha-CROWN optimizes a convex combination of the nested bounds per
window, parametrized by how much it follows each ranked input (``follow``, in [0, 1] and
non-increasing down the ranking; ``initial_alpha`` is CROWN's choice). Measured on the 30
boundary queries of ``benchmarks/complete.py``: depth 4 against depth 1 raised alpha-CROWN's
bound on all 30 (mean +0.23 logits, one more proved; depth 2: +0.21, 8 and 16: as 4) and
CROWN's by +0.07 on average (13 higher, 4 lower), at the same time per query.

Windows are cut out with ``unfold`` so overlapping windows and padding are handled; the
coefficients go back to the chosen inputs with a scatter-add.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional
from torch.nn.utils import skip_init

from ringcert.errors import RingcertError
from ringcert.layers.base import LayerSpec, LayerType, OnnxGraphPart, pair, symmetric_pads

if TYPE_CHECKING:
    import onnx


def _check(layer: nn.MaxPool2d) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """``(kernel, stride, padding)`` of a supported max-pool (a ``RingcertError`` otherwise)."""
    if layer.ceil_mode or pair(layer.dilation) != (1, 1) or layer.return_indices:
        raise RingcertError("unsupported MaxPool2d: ceil_mode, dilation or return_indices")
    return pair(layer.kernel_size), pair(layer.stride), pair(layer.padding)


def _windows(layer: nn.MaxPool2d, x: torch.Tensor, fill: float) -> torch.Tensor:
    """(C, H, W) -> (C, kernel area, windows), padding filled with ``fill``."""
    kernel, stride, (ph, pw) = _check(layer)
    padded = functional.pad(x, (pw, pw, ph, ph), value=fill)
    return functional.unfold(padded[:, None], kernel, stride=stride)


def _window_indices(layer: nn.MaxPool2d, lower: torch.Tensor) -> torch.Tensor:
    """(C, kernel area, windows): each window entry's flat index within its channel (-1 for
    padding)."""
    channels, height, width = lower.shape
    positions = torch.arange(height * width, dtype=lower.dtype).reshape(1, height, width)
    return _windows(layer, positions.expand(channels, -1, -1), -1.0).long()


UPPER_DEPTH = 4
"""How many of a window's inputs (those with the largest upper bounds) its linear upper
bounds may follow (``m`` up to this)."""


@dataclass(frozen=True, eq=False)
class PoolRelaxation:
    """Per window (C, L): ``index`` the flat input index (within the channel) of the
    lower-bound input; ``order`` (M, C, L) the indices of the ``M`` inputs with the largest
    upper bounds, largest first (0 for padding); ``valid`` (M, C, L) which of them are real
    inputs; ``base`` (C, L) the constant upper bound ``u_(1)`` and ``increments`` (M, C, L)
    ``c_m - c_(m-1)``, with ``c_m`` the constant of the bound that follows the first ``m``
    inputs; ``follow`` (M, C, L) CROWN's choice: 1 on the first ``m`` entries, for the ``m``
    whose bound is smallest at the box's centre."""

    index: torch.Tensor
    order: torch.Tensor
    valid: torch.Tensor
    base: torch.Tensor
    increments: torch.Tensor
    follow: torch.Tensor


def relax(layer: nn.MaxPool2d, lower: torch.Tensor, upper: torch.Tensor) -> PoolRelaxation:
    low_w = _windows(layer, lower, -torch.inf)
    up_w = _windows(layer, upper, -torch.inf)
    index_w = _window_indices(layer, lower)
    best = low_w.argmax(dim=1, keepdim=True)
    depth = min(UPPER_DEPTH, low_w.shape[1])
    ranked = up_w.argsort(dim=1, descending=True)
    up_r = up_w.gather(1, ranked[:, : depth + 1])  # u_(1), ..., u_(depth + 1)
    if up_r.shape[1] == depth:  # the window has no input after the first depth
        up_r = torch.cat([up_r, torch.full_like(up_r[:, :1], -torch.inf)], dim=1)
    low_r = low_w.gather(1, ranked[:, :depth])
    valid = torch.isfinite(low_r).cummin(dim=1).values  # padding ranks last
    low_r = torch.where(valid, low_r, torch.zeros_like(low_r))
    first = torch.zeros_like(low_r[:, :1])
    # c_m = max(max_{i <= m} l_(i), u_(m+1)) - sum_{i <= m} l_(i), for m = 0..depth
    lead_max = torch.cat([first - torch.inf,
                          torch.where(valid, low_r, -torch.inf).cummax(dim=1).values], dim=1)
    lead_sum = torch.cat([first, low_r.cumsum(dim=1)], dim=1)
    ceiling = torch.maximum(lead_max, up_r)
    constants = ceiling - lead_sum
    half_width = torch.where(valid, up_r[:, :depth] - low_r, torch.zeros_like(low_r)) / 2
    centre = ceiling + torch.cat([first, half_width.cumsum(dim=1)], dim=1)
    usable = torch.cat([torch.ones_like(valid[:, :1]), valid], dim=1)
    chosen = torch.where(usable, centre, torch.inf).argmin(dim=1, keepdim=True)  # ties: fewest
    follow = torch.arange(depth)[None, :, None] < chosen
    increments = torch.where(valid, constants[:, 1:] - constants[:, :-1], torch.zeros_like(low_r))
    return PoolRelaxation(index=index_w.gather(1, best)[:, 0],
                          order=index_w.gather(1, ranked[:, :depth]).clamp(min=0).transpose(0, 1),
                          valid=valid.transpose(0, 1), base=constants[:, 0],
                          increments=increments.transpose(0, 1),
                          follow=follow.to(lower.dtype).transpose(0, 1))


class MaxPoolType(LayerType):
    torch_type = nn.MaxPool2d
    op = "maxpool2d"
    onnx_ops = ("MaxPool",)
    affine = False

    def check(self, layer: nn.Module) -> None:
        _check(layer)

    def spec(self, layer: nn.Module) -> LayerSpec:
        kernel, stride, padding = _check(layer)
        return {"op": self.op, "kernel": list(kernel), "stride": list(stride), "padding": list(padding)}

    def build(self, spec: LayerSpec) -> nn.Module:
        return nn.MaxPool2d(pair(spec["kernel"]), stride=pair(spec.get("stride", spec["kernel"])),
                            padding=pair(spec.get("padding", 0)))

    def onnx_export(self, layer: nn.Module, prefix: str, input_name: str, output_name: str
                    ) -> OnnxGraphPart:
        from onnx import helper

        kernel, stride, padding = _check(layer)
        pad = list(padding)
        return [helper.make_node("MaxPool", [input_name], [output_name], kernel_shape=list(kernel),
                                 strides=list(stride), pads=pad + pad)], []

    def onnx_import(self, node: onnx.NodeProto, attrs: dict[str, object],
                    weights: dict[str, torch.Tensor]) -> nn.Module:
        kernel = tuple(attrs["kernel_shape"])
        stride = tuple(attrs.get("strides", kernel))
        return nn.MaxPool2d(kernel, stride=stride, padding=symmetric_pads(node, attrs))

    def interval(self, layer, lower, upper, *, live):
        kernel, stride, padding = _check(layer)
        return (functional.max_pool2d(lower, kernel, stride, padding),
                functional.max_pool2d(upper, kernel, stride, padding))

    def initial_alpha(self, layer, lower, upper):
        return relax(layer, lower, upper).follow

    def backward(self, layer, coef, lower, upper, *, alpha=None):
        """``alpha`` (M, C, L) or (S, M, C, L) in [0, 1]: how much the upper bound follows
        each of the top-ranked inputs; made non-increasing down the ranking, it is the convex
        combination of the nested bounds with weights ``a_m - a_(m+1)`` (``a_0 = 1``)."""
        relaxed = relax(layer, lower, upper)
        follow = relaxed.follow if alpha is None else alpha.cummin(dim=-3).values
        follow = follow * relaxed.valid
        rows, channels = coef.shape[0], lower.shape[0]
        flat = coef.reshape(rows, channels, -1)
        pos, neg = flat.clamp(min=0), flat.clamp(max=0)
        coef_in = flat.new_zeros(rows, channels, lower[0].numel())
        coef_in = coef_in.scatter_add(2, relaxed.index.expand(rows, -1, -1), pos)
        follow = follow.expand(rows, *relaxed.order.shape) if follow.ndim == 3 else follow
        for m in range(relaxed.order.shape[0]):
            coef_in = coef_in.scatter_add(2, relaxed.order[m].expand(rows, -1, -1),
                                          neg * follow[:, m])
        constant = neg * (relaxed.base + (follow * relaxed.increments).sum(dim=1))
        return coef_in.reshape(rows, *lower.shape), constant.sum(dim=(1, 2))


def split_points(layer: nn.MaxPool2d, lower: torch.Tensor, upper: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where branch and bound can split each window (C, L) to tighten its relaxation: the
    flat input index (within the channel) of the input ``t`` with the largest upper bound,
    the threshold ``u_(2)`` (the second-largest upper bound), and the width ``u_t - u_(2)``
    cut off (0 when no split: ``x_t`` already dominates the window, or another input ties
    with it). Above the threshold ``x_t`` is the max (the relaxation is exact); below it the
    window's upper bound drops to ``u_(2)``. Each split removes a window's strict top, so a
    branch has finitely many of them (a midpoint split could halve ``x_t`` forever without
    ever making the window exact)."""
    low_w, up_w = _windows(layer, lower, -torch.inf), _windows(layer, upper, -torch.inf)
    index_w = _window_indices(layer, lower)
    values, ranked = up_w.topk(min(2, up_w.shape[1]), dim=1)
    top_up = values[:, 0]
    second = values[:, 1] if values.shape[1] > 1 else torch.full_like(top_up, -torch.inf)
    top_low = low_w.gather(1, ranked[:, :1])[:, 0]
    open_ = (second > top_low) & (second < top_up)
    gain = torch.where(open_, top_up - second, torch.zeros_like(top_up))
    return index_w.gather(1, ranked[:, :1])[:, 0].clamp(min=0), second, gain


def as_relus(layer: nn.MaxPool2d, channels: int, *, nonnegative: bool) -> list[nn.Module]:
    """The max-pool over ``channels`` channels as a tree of pairwise maxima,
    ``max(a, b) = b + ReLU(a - b)``: per level, a convolution pairing neighbours along one
    axis (kernel 1x2 or 2x1, stride 2) into the channels ``[b, a - b]``, a ReLU, and a 1x1
    convolution adding them back up; widths first, then heights. With ``nonnegative`` (the
    pool reads a ReLU's output) ``ReLU(b) = b``; otherwise ``b`` passes as ``ReLU(b) -
    ReLU(-b)`` (channels ``[b, -b, a - b]``). The same function up to float rounding, with
    no max-pool left: ReLU relaxations, their slopes and ReLU splits then cover the pooling
    (the rewrite behind max-pool support in ReLU-only verifiers). A ``RingcertError`` unless
    kernel = stride, no padding and each kernel side a power of 2 (floor mode then drops the
    same trailing rows and columns at every level as the pool does)."""
    kernel, stride, padding = _check(layer)
    if kernel != stride or padding != (0, 0) or any(side & (side - 1) for side in kernel):
        raise RingcertError("max-pool as ReLUs needs kernel = stride, no padding and power-of-2 "
                            f"kernel sides, got kernel {kernel}, stride {stride}, padding {padding}")
    parts = 2 if nonnegative else 3
    signs = torch.ones(parts) if nonnegative else torch.tensor([1.0, -1.0, 1.0])
    eye = torch.eye(channels)
    pairing = torch.zeros(parts, channels, channels, 2)  # taps: a first, b second
    pairing[0, :, :, 1] = eye  # b
    if not nonnegative:
        pairing[1, :, :, 1] = -eye  # -b
    pairing[-1, :, :, 0], pairing[-1, :, :, 1] = eye, -eye  # a - b
    adding = (signs[None, :, None] * eye[:, None, :]).reshape(channels, parts * channels, 1, 1)
    levels = [(1, 2)] * (kernel[1].bit_length() - 1) + [(2, 1)] * (kernel[0].bit_length() - 1)
    layers: list[nn.Module] = []
    for shape in levels:
        # skip_init: no random initialization, so building the tree leaves torch's RNG alone
        pair_conv = skip_init(nn.Conv2d, channels, parts * channels, shape, stride=shape)
        add = skip_init(nn.Conv2d, parts * channels, channels, 1)
        with torch.no_grad():
            pair_conv.weight.copy_(pairing.reshape(parts * channels, channels, *shape))
            add.weight.copy_(adding)
            pair_conv.bias.zero_()
            add.bias.zero_()
        layers += [pair_conv, nn.ReLU(), add]
    return layers
