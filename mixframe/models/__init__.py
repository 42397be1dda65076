"""Model kinds: what a fitted LMM, GLMM, CLMM or CLM's numbers mean (see :mod:`mixframe.models.base`)."""
from .base import ModelKind, kind_of

__all__ = ["ModelKind", "kind_of"]
