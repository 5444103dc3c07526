"""CROWN intermediate bounds computed on receptive-field patches.

A neuron of a convolutional layer depends on a small window of every earlier layer, its
receptive field: a conv2 neuron of the seed classifier sees a 16x5x5 window of the conv1
outputs and a 24x24 patch of the input, against 16x16x16 and 64x64 for the whole layers.
Pushing its one-hot row backward at full size (``crown.backward``) spends almost all the
work on zeros. Here every row carries only its window: the same backward steps (CROWN /
DeepPoly, Zhang et al. 2018; Singh et al. 2019) in window coordinates, with each row's
windows of relaxation slopes and input bounds cut out with ``unfold`` (the patch view of
convolutions that auto_LiRPA calls "patches mode", Xu et al. 2020, "Automatic perturbation
analysis for scalable certified robustness and beyond"). The rows are the same linear
bounds, so the result equals the full-size pass up to float rounding.

It applies when every layer up to the refined one is a Conv2d, ReLU or BatchNorm2d (a
spatially local chain, the layer types with rules in ``LOCAL_RULES``) and the windows are
clearly smaller than the layers; otherwise ``crown`` falls back to the full-size pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import torch
from torch import nn
from torch.nn import functional

from ringcert.layers.base import LayerType, pair
from ringcert.layers.batchnorm import BatchNormType, folded
from ringcert.layers.conv import Conv2dType, checked_params, transpose
from ringcert.layers.registry import layer_type
from ringcert.layers.relu import ReluType, relaxation

Interval = tuple[torch.Tensor, torch.Tensor]
Cut = tuple[torch.Tensor, ...]

CHUNK_ELEMENTS = 1 << 20
"""Rows per batch: their largest windows hold at most this many numbers (a few MB: small
enough to stay in cache and out of fresh page-faulting allocations)."""

MAX_WINDOW_SHARE = 0.5
"""Use patches only when the windows hold at most this share of the layers' elements."""


@dataclass(frozen=True)
class Window:
    """The part of one layer's input that an output neuron at spatial position ``(i, j)``
    of the refined layer depends on: rows ``offset[0] + i * stride[0]`` onwards, ``size[0]``
    of them (likewise for columns); it may reach into the zero padding."""

    size: tuple[int, int]
    stride: tuple[int, int]
    offset: tuple[int, int]


def receptive_windows(network: nn.Sequential, index: int) -> list[Window]:
    """``windows[j]``: the window of layer ``j``'s input, for ``j`` in ``0..index``."""
    window = Window(size=(1, 1), stride=(1, 1), offset=(0, 0))
    windows = [window]
    for j in range(index, -1, -1):
        layer = network[j]
        window = _rules(layer).window(layer, window)
        windows.append(window)
    return windows[::-1][: index + 1]


def _conv_window(layer: nn.Module, window: Window) -> Window:
    """A convolution's input window: the output window grown by the kernel, strided."""
    kernel, stride, padding = pair(layer.kernel_size), pair(layer.stride), pair(layer.padding)
    return Window(size=tuple((window.size[d] - 1) * stride[d] + kernel[d] for d in range(2)),
                  stride=tuple(window.stride[d] * stride[d] for d in range(2)),
                  offset=tuple(window.offset[d] * stride[d] - padding[d] for d in range(2)))


def _same_window(layer: nn.Module, window: Window) -> Window:
    """An elementwise layer's input window is its output window."""
    return window


def applies(network: nn.Sequential, inputs: Sequence[Interval], index: int) -> bool:
    """Whether the patch pass fits layer ``index`` (local chain, small windows)."""
    if not all(type(_kind(network[j])) in LOCAL_RULES for j in range(index + 1)):
        return False
    if inputs[0][0].ndim != 3 or any(isinstance(network[j].padding, str) for j in range(index + 1)
                                     if isinstance(_kind(network[j]), Conv2dType)):
        return False
    windows = receptive_windows(network, index)
    patch = sum(inputs[j][0].shape[0] * w.size[0] * w.size[1] for j, w in enumerate(windows))
    full = sum(inputs[j][0].numel() for j in range(index + 1))
    return patch <= MAX_WINDOW_SHARE * full


def _cut(tensor: torch.Tensor, window: Window, out_size: tuple[int, int]) -> torch.Tensor:
    """Every output position's window of ``tensor`` (C, H, W), zero outside it:
    (positions, C, *window.size)."""
    channels, height, width = tensor.shape
    (wh, ww), (sh, sw), (oh, ow) = window.size, window.stride, window.offset
    bottom, right = oh + (out_size[0] - 1) * sh + wh, ow + (out_size[1] - 1) * sw + ww
    top_pad, left_pad = max(0, -oh), max(0, -ow)
    padded = functional.pad(tensor, (left_pad, max(0, right - width), top_pad,
                                     max(0, bottom - height)))
    crop = padded[:, oh + top_pad:bottom + top_pad, ow + left_pad:right + left_pad]
    columns = functional.unfold(crop[None], (wh, ww), stride=(sh, sw))[0]
    return columns.T.reshape(-1, channels, wh, ww).contiguous()  # rows gathered whole later


def patch_bounds(network: nn.Sequential, inputs: Sequence[Interval], index: int,
                 chosen: torch.Tensor, shape: torch.Size) -> Interval:
    """CROWN lower and upper bounds of the neurons ``chosen`` (flat indices into the output
    of layer ``index``, of shape ``shape``); ``inputs[j]`` bound layer ``j``'s input."""
    windows = receptive_windows(network, index)
    out_size = (shape[1], shape[2])
    cuts: dict[int, Cut] = {}
    for j in range(index + 1):
        cut = _rules(network[j]).cut(network, j, inputs[j], windows[j], out_size)
        if cut is not None:
            cuts[j] = cut
    low_in, up_in = inputs[0]
    centre, radius = (_cut(t, windows[0], out_size) for t in ((up_in + low_in) / 2,
                                                               (up_in - low_in) / 2))
    count = chosen.numel()
    area = out_size[0] * out_size[1]
    channel, position = (chosen // area).repeat(2), (chosen % area).repeat(2)
    sign = torch.cat([torch.ones(count), -torch.ones(count)]).to(centre.dtype)
    largest = max(inputs[j][0].shape[0] * w.size[0] * w.size[1] for j, w in enumerate(windows))
    chunk = max(1, CHUNK_ELEMENTS // largest)
    found = []
    for start in range(0, 2 * count, chunk):
        part = slice(start, start + chunk)
        coef, bias, below = _start(network[index], channel[part], sign[part], cuts.get(index),
                                   position[part], shape[0], index)
        for j in range(below, -1, -1):
            coef, step_bias = _rules(network[j]).step(network[j], coef, cuts.get(j), position[part],
                                                      windows[j])
            bias = bias + step_bias
        # the minimum over the box: A . centre - |A| . radius
        rows = position[part]
        found.append((coef * _rows(centre, rows) - coef.abs() * _rows(radius, rows)).flatten(1).sum(1)
                     + bias)
    values = torch.cat(found)
    return values[:count], -values[count:]


def _rows(cut: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
    """Each row's window of a cut (``cut[position]``, with ``index_select`` on a flat view:
    faster on CPU than advanced indexing, which dominated the patch pass)."""
    return cut.flatten(1).index_select(0, position).view(-1, *cut.shape[1:])


def _start(layer: nn.Module, channel: torch.Tensor, sign: torch.Tensor, cut: Cut | None,
           position: torch.Tensor, channels: int, index: int
           ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Rows ``sign * e_channel`` on the refined layer's output, pushed through it when it is
    a convolution (a one-hot row's window is the kernel itself); returns the coefficients,
    the bias and the next layer to step through."""
    if isinstance(_kind(layer), Conv2dType):
        weight, bias = checked_params(layer)
        coef = sign[:, None, None, None] * weight[channel]
        if cut is not None:
            coef = coef * _rows(cut[0], position)
        return coef, sign * bias[channel], index - 1
    coef = sign.new_zeros(sign.shape[0], channels, 1, 1)
    coef[torch.arange(sign.shape[0]), channel, 0, 0] = sign
    return coef, sign.new_zeros(sign.shape[0]), index


def _relu_cut(network: nn.Sequential, j: int, bounds: Interval, window: Window,
              out_size: tuple[int, int]) -> Cut:
    """Each row's window of the ReLU's lower slope, extra upper slope and upper intercept."""
    low_slope, up_slope, up_icpt = relaxation(*bounds)
    return tuple(_cut(t, window, out_size) for t in (low_slope, up_slope - low_slope, up_icpt))


def _conv_cut(network: nn.Sequential, j: int, bounds: Interval, window: Window,
              out_size: tuple[int, int]) -> Cut | None:
    """Each row's window of ones over the conv's input (zero over its padding), unless a
    ReLU before it zeroes the padding already."""
    if j > 0 and not isinstance(_kind(network[j - 1]), ReluType):
        # the conv's zero padding is no neuron of the layer before: cut the rows there
        return (_cut(torch.ones_like(bounds[0]), window, out_size),)
    return None


def _no_cut(network: nn.Sequential, j: int, bounds: Interval, window: Window,
            out_size: tuple[int, int]) -> None:
    return None


def _relu_step(layer: nn.Module, coef: torch.Tensor, cut: Cut | None, position: torch.Tensor,
               window: Window) -> tuple[torch.Tensor, torch.Tensor]:
    low_slope, extra_slope, up_icpt = (_rows(t, position) for t in cut)
    neg = coef.clamp(max=0)  # negative coefficients take the upper line
    return coef * low_slope + neg * extra_slope, (neg * up_icpt).flatten(1).sum(1)


def _batchnorm_step(layer: nn.Module, coef: torch.Tensor, cut: Cut | None, position: torch.Tensor,
                    window: Window) -> tuple[torch.Tensor, torch.Tensor]:
    scale, shift = folded(layer)
    return coef * scale[:, None, None], coef.sum(dim=(2, 3)) @ shift


def _conv_step(layer: nn.Module, coef: torch.Tensor, cut: Cut | None, position: torch.Tensor,
               window: Window) -> tuple[torch.Tensor, torch.Tensor]:
    weight, bias = checked_params(layer)
    coef_in = transpose(coef, weight, pair(layer.stride), (0, 0), window.size, (0, 0))
    if cut is not None:
        coef_in = coef_in * _rows(cut[0], position)
    return coef_in, coef.sum(dim=(2, 3)) @ bias


@dataclass(frozen=True)
class LocalRules:
    """The patch pass's rules for one local layer type. ``window``: the window of the
    layer's input from that of its output; ``cut``: per-row windows of what the backward
    step multiplies by (``(network, j, bounds on layer j's input, its window, out_size)``,
    None: nothing); ``step``: one backward step in window coordinates (``(layer, coef, cut,
    positions, the layer's input window)``)."""

    window: Callable[[nn.Module, Window], Window]
    cut: Callable[[nn.Sequential, int, Interval, Window, tuple[int, int]], Cut | None]
    step: Callable[[nn.Module, torch.Tensor, Cut | None, torch.Tensor, Window],
                   tuple[torch.Tensor, torch.Tensor]]


LOCAL_RULES: MappingProxyType[type[LayerType], LocalRules] = MappingProxyType({
    Conv2dType: LocalRules(window=_conv_window, cut=_conv_cut, step=_conv_step),
    ReluType: LocalRules(window=_same_window, cut=_relu_cut, step=_relu_step),
    BatchNormType: LocalRules(window=_same_window, cut=_no_cut, step=_batchnorm_step),
})
"""The layer types whose backward step maps a window to a window, and their rules."""


def _kind(layer: nn.Module) -> LayerType:
    return layer_type(layer, "bound propagation")


def _rules(layer: nn.Module) -> LocalRules:
    return LOCAL_RULES[type(_kind(layer))]
