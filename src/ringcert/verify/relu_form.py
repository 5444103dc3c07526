"""A network with its max-pools rewritten into ReLUs, for bounding (``layers/maxpool.as_relus``).

Which of the two forms bounds better depends on the box, measured on the seed classifiers
(benchmarks/README.md, "Max-pool as ReLUs"): on small, local boxes (near the perturbed
digit) the pairwise ReLU tree is far tighter, because CROWN bounds each difference ``a - b``
of neighbouring pool inputs by back-substitution to the input and so sees that most are
stable; on wide boxes the four levels of triangle relaxations compound and the max-pool's
own nested bound wins by a wide margin. Branch and bound picks per query
(``vocabulary.PoolForm``).
"""

from __future__ import annotations

import torch
from torch import nn

from ringcert.errors import RingcertError
from ringcert.layers.maxpool import as_relus


def relu_form(network: nn.Sequential, input_shape: tuple[int, ...]) -> nn.Sequential | None:
    """``network`` on inputs of ``input_shape`` with every max-pool as ``as_relus`` (the same
    function up to float rounding); None when it has no max-pool, or one the rewrite does not
    support."""
    layers: list[nn.Module] = []
    x = torch.zeros(1, *input_shape)
    nonnegative, pooled = False, False  # whether the current activations are >= 0 everywhere
    with torch.no_grad():
        for layer in network:
            if isinstance(layer, nn.MaxPool2d):
                try:
                    layers += as_relus(layer, x.shape[1], nonnegative=nonnegative)
                except RingcertError:
                    return None
                pooled = True
            else:
                layers.append(layer)
                nonnegative = isinstance(layer, nn.ReLU)
            x = layer(x)
    return nn.Sequential(*layers).eval() if pooled else None
