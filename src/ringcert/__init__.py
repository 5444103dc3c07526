"""ringcert: certified layered neighborhoods for multi-label top-k classifiers.

Given a classifier, an image showing two objects, a target class and the mask of the
other (perturbed) object, ringcert computes the largest per-ring L-infinity epsilon
vector (rings by Chebyshev distance from the perturbed object) inside which the target
provably stays in the top-k. Method: Mour & Drachsler-Cohen, "Robustness of Multi-Label
Neural Networks" (thesis proposal, Technion 2023), building on MaRVeL (Kabaha &
Drachsler-Cohen, VMCAI 2023).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ringcert")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

__all__ = ["__version__"]
