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

# The Python API, imported on first use (``ringcert --version`` does not load torch).
_API = {
    "analyze": "ringcert.analysis", "AnalysisResult": "ringcert.analysis",
    "Problem": "ringcert.problem", "Weighting": "ringcert.vocabulary",
    "load_model": "ringcert.models.modelfile", "Side": "ringcert.vocabulary",
    "test_sample": "ringcert.samples", "sample_problem": "ringcert.samples",
    "make_verifier": "ringcert.verify.registry", "Status": "ringcert.vocabulary",
    "Algorithm": "ringcert.vocabulary", "Shrink": "ringcert.vocabulary",
    "RingcertError": "ringcert.errors",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> object:
    if name not in _API:
        raise AttributeError(f"module 'ringcert' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(_API[name]), name)
