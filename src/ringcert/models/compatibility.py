"""Whether a network can answer the queries ringcert asks it, checked before any work.

A forward pass of one blank image of the data's shape must succeed and give at least as
many logits as the data has classes; otherwise a batch would fail image by image (or, for
too few classes, index past the logits) after it started.
"""

from __future__ import annotations

import torch
from torch import nn

from ringcert.errors import RingcertError


def check_accepts(network: nn.Module, *, input_shape: tuple[int, ...], classes: int,
                  name: str = "model") -> None:
    """A one-line ``RingcertError`` unless ``network`` maps (1, *input_shape) to >= ``classes``
    logits."""
    shape = "x".join(str(size) for size in input_shape)
    try:
        with torch.no_grad():
            logits = network(torch.zeros(1, *input_shape))
    except (RuntimeError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RingcertError(f"{name} does not accept {shape} images: {first}") from None
    if logits.ndim != 2 or logits.shape[0] != 1:
        raise RingcertError(f"{name} maps a {shape} image to shape {tuple(logits.shape)}, "
                            "not to one row of logits")
    if logits.shape[1] < classes:
        raise RingcertError(f"{name} has {logits.shape[1]} outputs; the data has {classes} classes")
