"""The query ringcert answers: rings, boxes and the top-k margin (docs/design.md section 1).

For an image ``x``, a target class ``t`` and the mask ``M`` of the perturbed object, a
pixel's ring is its Chebyshev distance to ``M`` (0 on the object). An epsilon vector
gives one L-infinity bound per ring; its box is ``[max(0, x-eps), min(1, x+eps)]``. The
classifier is robust on the box iff the top-k margin ``m(z) = F_t(z) - kth max_{c != t}
F_c(z)`` is positive everywhere in it. Definitions from Mour & Drachsler-Cohen, "Robustness
of Multi-Label Neural Networks" (2023), section 2.

A problem may name several targets (issue 15, images of more than two objects): it is robust
iff every target is, on the same box, so its margin is the minimum of the targets' margins.
Verifiers see one target at a time (``Verifier.verify`` splits the problem, ``split``); the
attacks and witness checks use the minimum directly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import distance_transform_cdt
from torch import nn

from ringcert.errors import RingcertError
from ringcert.vocabulary import Weighting


def ring_map(mask: np.ndarray) -> np.ndarray:
    """Chebyshev distance of every pixel to the nearest pixel of ``mask`` (int64, H x W)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise RingcertError(f"mask must be 2-D (H x W), got shape {mask.shape}")
    if not mask.any():
        raise RingcertError("the perturbed-object mask is empty")
    if mask.all():
        raise RingcertError("the perturbed-object mask covers the whole image")
    return distance_transform_cdt(~mask, metric="chessboard").astype(np.int64)


def predicted_other(logits: torch.Tensor, target: int) -> int:
    """The highest-scoring class other than ``target``: on an image of two objects whose
    target is in the top-k, the model's reading of the other object."""
    others = logits.detach().clone()
    others[target] = -torch.inf
    return int(others.argmax())


def topk_margin(logits: torch.Tensor, target: int | torch.Tensor, k: int) -> torch.Tensor:
    """``F_t - kth max_{c != t} F_c`` per row of ``logits`` (B, n); > 0 iff t in top-k."""
    target_t = torch.as_tensor(target, device=logits.device).expand(logits.shape[0])
    rows = torch.arange(logits.shape[0], device=logits.device)
    own = logits[rows, target_t]
    others = logits.clone()
    others[rows, target_t] = -torch.inf
    kth = others.topk(k, dim=1).values[:, k - 1]
    return own - kth


@dataclass(frozen=True, eq=False)
class Problem:
    """One layered-neighborhood query family: model, image, targets, perturbed mask, k, w.

    Build it with :meth:`Problem.create`, which validates every input. ``image`` is a
    float32 tensor (C, H, W) in [0, 1]; ``rings`` maps each pixel to its ring; ``mask`` is
    the perturbed objects' pixels (the union of their masks). ``targets`` are the classes
    that must all stay in the top-k. ``perturbed_class`` labels the perturbed object (one
    object); when the caller does not know it, ``create`` fills in the model's reading
    (``predicted_other``) for a single target and leaves it None for several.
    """

    model: nn.Sequential
    image: torch.Tensor
    targets: tuple[int, ...]
    mask: np.ndarray
    k: int
    weights: np.ndarray
    rings: np.ndarray
    perturbed_class: int | None = None

    @classmethod
    def create(
        cls,
        *,
        model: nn.Sequential,
        image: torch.Tensor | np.ndarray,
        target: int | tuple[int, ...] | list[int],
        mask: np.ndarray,
        k: int = 2,
        weights: Weighting | str | np.ndarray | list[float] = Weighting.UNIFORM,
        perturbed_class: int | None = None,
    ) -> Problem:
        image_t = torch.as_tensor(np.asarray(image), dtype=torch.float32)
        if image_t.ndim == 2:
            image_t = image_t[None]
        if image_t.ndim != 3:
            raise RingcertError(f"image must be (C, H, W) or (H, W), got shape {tuple(image_t.shape)}")
        if not torch.isfinite(image_t).all() or image_t.min() < 0 or image_t.max() > 1:
            raise RingcertError("image values must lie in [0, 1]")
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != tuple(image_t.shape[1:]):
            raise RingcertError(
                f"mask shape {mask.shape} does not match image shape {tuple(image_t.shape[1:])}")
        rings = ring_map(mask)
        model.eval()
        try:
            with torch.no_grad():
                logits = model(image_t[None])
        except RuntimeError as error:
            raise RingcertError(f"model does not accept the image: {str(error).splitlines()[0]}") from None
        if logits.ndim != 2 or logits.shape[0] != 1:
            raise RingcertError(f"model output must be (1, classes), got {tuple(logits.shape)}")
        classes = logits.shape[1]
        if not 1 <= k < classes:
            raise RingcertError(f"k must be between 1 and {classes - 1}, got {k}")
        targets = (int(target),) if np.ndim(target) == 0 else tuple(int(t) for t in target)
        if not targets:
            raise RingcertError("the target set is empty")
        if len(set(targets)) != len(targets):
            raise RingcertError(f"target classes {list(targets)} repeat a class")
        if len(targets) > k:
            raise RingcertError(f"{len(targets)} targets cannot all be in the top-{k}")
        for one in targets:
            if not 0 <= one < classes:
                raise RingcertError(f"target class {one} is not in 0..{classes - 1}")
            if topk_margin(logits, one, k).item() <= 0:
                raise RingcertError(f"target class {one} is not in the top-{k} of the model's output")
        if perturbed_class is None and len(targets) == 1:
            perturbed_class = predicted_other(logits[0], targets[0])
        size = int(rings.max()) + 1
        return cls(model=model, image=image_t, targets=targets, mask=mask, k=k,
                   weights=_weights(weights, rings, size), rings=rings,
                   perturbed_class=perturbed_class)

    @property
    def target(self) -> int:
        """The target of a single-target problem (what a verifier's ``_run`` sees); a
        ``ValueError`` on a problem of several targets, which must be ``split`` first."""
        if len(self.targets) != 1:
            raise ValueError(f"a problem of {len(self.targets)} targets has no single target: split it")
        return self.targets[0]

    @property
    def target_classes(self) -> int | tuple[int, ...]:
        """The target class, or the tuple of them for several (what results records hold)."""
        return self.targets[0] if len(self.targets) == 1 else self.targets

    def split(self) -> tuple[Problem, ...]:
        """One single-target problem per target, on the same image, rings and weights."""
        return tuple(replace(self, targets=(one,)) for one in self.targets)

    def weakest_target(self) -> int:
        """The target with the smallest clean top-k margin (the one an attack aims at)."""
        logits = self.logits()
        return min(self.targets, key=lambda one: float(topk_margin(logits, one, self.k)[0]))

    @property
    def num_rings(self) -> int:
        return int(self.rings.max()) + 1

    @property
    def ring_sizes(self) -> np.ndarray:
        return np.bincount(self.rings.ravel(), minlength=self.num_rings)

    @property
    def num_classes(self) -> int:
        return int(self.logits().shape[1])

    def logits(self, z: torch.Tensor | None = None) -> torch.Tensor:
        """Float32 forward pass (no gradient) of ``z`` (B, C, H, W), or of the image."""
        batch = self.image[None] if z is None else z
        with torch.no_grad():
            return self.model(batch.float())

    def margin(self, z: torch.Tensor) -> torch.Tensor:
        """Top-k margin of each input in the batch ``z`` (differentiable in ``z``): the
        smallest over the targets."""
        return self.margin_of(self.model(z))

    def margin_of(self, logits: torch.Tensor) -> torch.Tensor:
        """The problem's margin from a batch of logits (B, n): min over targets."""
        margins = [topk_margin(logits, one, self.k) for one in self.targets]
        return margins[0] if len(margins) == 1 else torch.stack(margins).amin(dim=0)

    def check_eps(self, eps: torch.Tensor | np.ndarray | list[float]) -> torch.Tensor:
        """Validated float64 epsilon tensor (keeps autograd history if ``eps`` has one)."""
        eps_t = eps if isinstance(eps, torch.Tensor) else torch.as_tensor(np.asarray(eps, dtype=np.float64))
        if eps_t.ndim != 1 or eps_t.shape[0] != self.num_rings:
            raise RingcertError(
                f"epsilon vector must have {self.num_rings} entries (one per ring), "
                f"got {tuple(eps_t.shape)}")
        if not torch.isfinite(eps_t).all() or eps_t.min() < 0 or eps_t.max() > 1:
            raise RingcertError("epsilon entries must lie in [0, 1]")
        return eps_t

    def pixel_eps(self, eps: torch.Tensor | np.ndarray | list[float]) -> torch.Tensor:
        """Per-pixel epsilon (C, H, W) float32, differentiable in ``eps``."""
        eps_t = self.check_eps(eps)
        per_pixel = eps_t[torch.as_tensor(self.rings)].float()
        return per_pixel[None].expand_as(self.image)

    def box(self, eps: torch.Tensor | np.ndarray | list[float]) -> tuple[torch.Tensor, torch.Tensor]:
        """Lower and upper corners (C, H, W) of the epsilon box, clipped to [0, 1]."""
        radius = self.pixel_eps(eps)
        return (self.image - radius).clamp(0.0, 1.0), (self.image + radius).clamp(0.0, 1.0)

    def boxes(self, vectors: np.ndarray | list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """``box`` of each epsilon vector, stacked: lower and upper corners (B, C, H, W) (the
        batches ``verify.attack.pgd_boxes`` attacks)."""
        pairs = [self.box(torch.as_tensor(vector)) for vector in vectors]
        return torch.stack([lo for lo, _ in pairs]), torch.stack([hi for _, hi in pairs])

    def size(self, eps: np.ndarray | list[float]) -> float:
        """Weighted size ``w . eps`` of an epsilon vector."""
        return float(np.dot(self.weights, np.asarray(eps, dtype=np.float64)))


def _weights(weights: Weighting | str | np.ndarray | list[float], rings: np.ndarray,
             size: int) -> np.ndarray:
    if isinstance(weights, str) and not isinstance(weights, Weighting):
        try:
            weights = Weighting(weights)
        except ValueError:
            raise RingcertError(f"unknown weighting {weights!r} (uniform, area or a vector)") from None
    if weights is Weighting.UNIFORM:
        return np.ones(size)
    if weights is Weighting.AREA:
        return np.bincount(rings.ravel(), minlength=size) / rings.size
    vector = _checked_vector(np.asarray(weights, dtype=np.float64))
    if vector.shape != (size,):
        raise RingcertError(f"weight vector must have {size} entries (one per ring), got {vector.shape}")
    return vector


def _checked_vector(vector: np.ndarray) -> np.ndarray:
    """A weight vector that is finite, non-negative and not all zero (else a one-line error)."""
    if vector.ndim != 1 or not vector.size:
        raise RingcertError(f"weights must be a non-empty list of numbers, got shape {vector.shape}")
    if not np.isfinite(vector).all() or (vector < 0).any():
        raise RingcertError("weights must be finite and non-negative")
    if not vector.any():
        raise RingcertError("weights are all zero: every neighborhood would have size 0")
    return vector


def parse_weights(text: str) -> Weighting | np.ndarray:
    """``uniform``, ``area``, or a file holding a vector (JSON list or whitespace numbers)."""
    try:
        return Weighting(text)
    except ValueError:
        pass
    path = Path(text)
    if not path.is_file():
        raise RingcertError(f"weights must be uniform, area or a file; {text!r} is none")
    raw = path.read_text()
    try:
        values = json.loads(raw) if raw.lstrip().startswith("[") else raw.split()
        vector = np.asarray([float(value) for value in values], dtype=np.float64)
    except (ValueError, TypeError):
        raise RingcertError(f"weights file {text} does not hold a list of numbers") from None
    try:
        return _checked_vector(vector)
    except RingcertError as error:
        raise RingcertError(f"weights file {text}: {error}") from None
