"""The fitted model and its tidy frames, predictions, summaries and likelihood-ratio tests."""
from .anova import anova
from .model import MixedModel

__all__ = ["MixedModel", "anova"]
