"""The convolution's backward step is the exact adjoint of the layer, on every path it
takes (stride-1 flipped convolution, sub-pixel convolution for strided kernels, torch's
transposed convolution otherwise), checked against autograd's vector-Jacobian product."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ringcert.layers.conv import Conv2dType

CASES = [  # (in, out, kernel, stride, padding, input size)
    (1, 4, 8, 4, 2, 64),  # the seed's first layer: sub-pixel
    (1, 4, 8, 4, 2, 67),  # an input the strides do not tile: output padding
    (4, 6, 5, 1, 2, 16),  # the seed's second layer: flipped stride-1 convolution
    (3, 5, 3, 1, 0, 9),
    (2, 3, (3, 5), (2, 1), (1, 2), 11),  # non-square: sub-pixel
    (2, 3, 7, 2, 3, 15),  # 4 x 4 blocks: torch's transposed convolution
    (2, 2, 2, 3, 0, 10),  # kernel smaller than the stride
]


@pytest.mark.parametrize("case", CASES)
def test_backward_is_the_adjoint(case) -> None:
    in_c, out_c, kernel, stride, padding, size = case
    torch.manual_seed(0)
    layer = nn.Conv2d(in_c, out_c, kernel, stride=stride, padding=padding)
    x = torch.randn(in_c, size, size, requires_grad=True)
    y = layer(x[None])[0]
    coef = torch.randn(3, *y.shape)
    lower = upper = x.detach()
    coef_in, bias = Conv2dType().backward(layer, coef, lower, upper)
    for row in range(3):
        (expected,) = torch.autograd.grad((coef[row] * y).sum(), x, retain_graph=True)
        assert coef_in[row].shape == x.shape
        torch.testing.assert_close(coef_in[row], expected, rtol=1e-4, atol=1e-4)
        value = (coef[row] * y.detach()).sum()
        torch.testing.assert_close((coef_in[row] * x.detach()).sum() + bias[row], value,
                                   rtol=1e-4, atol=1e-3)
