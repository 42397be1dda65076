"""The fitted model and its tidy frames, predictions, summaries and likelihood-ratio tests.

One :class:`MixedModel` for every kind and every input: a fit record, its model kind
(:mod:`mixframe.models`), and a row source (:mod:`mixframe.results.rows`).
"""
from .anova import anova
from .call import FitCall
from .model import MixedModel

__all__ = ["FitCall", "MixedModel", "anova"]
