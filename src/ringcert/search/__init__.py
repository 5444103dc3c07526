"""Searches for maximal layered neighborhoods: uniform, naive and guided, plus the
maximality pass; ``run_search`` runs one of them on a problem under a budget."""

from ringcert.search.budget import BudgetSettings
from ringcert.search.guided import GuidedSettings
from ringcert.search.naive import NaiveSettings
from ringcert.search.result import SearchResult
from ringcert.search.runner import default_settings, run_search
from ringcert.search.uniform import UniformSettings
from ringcert.vocabulary import Algorithm, GradientSource, MaximalityStatus, Shrink

__all__ = ["Algorithm", "BudgetSettings", "GradientSource", "GuidedSettings",
           "MaximalityStatus", "NaiveSettings", "SearchResult", "Shrink", "UniformSettings",
           "default_settings", "run_search"]
