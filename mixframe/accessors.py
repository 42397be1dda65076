"""The ``mixed`` namespace on pandas and polars DataFrames: ``df.mixed.lmm(formula, **kw)``.

Stateless: every method forwards to the function of the same name in :mod:`mixframe.api` with the frame as
``data``; nothing is cached on the frame and the frame is never modified.
"""
from __future__ import annotations

from . import api


class MixedNamespace:
    """``df.mixed``: fit mixed models on this frame. ``df.mixed.X(formula, **kw) == mixframe.X(formula, df, **kw)``."""

    def __init__(self, frame):
        self._frame = frame

    def lmm(self, formula, **kw):
        """Linear mixed model on this frame; see :func:`mixframe.lmm`."""
        return api.lmm(formula, self._frame, **kw)

    def glmm(self, formula, **kw):
        """Generalized linear mixed model on this frame; see :func:`mixframe.glmm`."""
        return api.glmm(formula, self._frame, **kw)

    def clmm(self, formula, **kw):
        """Cumulative link mixed model on this frame; see :func:`mixframe.clmm`."""
        return api.clmm(formula, self._frame, **kw)

    def clm(self, formula, **kw):
        """Cumulative link model (no random effects) on this frame; see :func:`mixframe.clm`."""
        return api.clm(formula, self._frame, **kw)


def register() -> None:
    """Register ``mixed`` on pandas.DataFrame and polars.DataFrame/LazyFrame (whichever is installed)."""
    try:
        import pandas as pd
        if not hasattr(pd.DataFrame, "mixed"):
            pd.api.extensions.register_dataframe_accessor("mixed")(MixedNamespace)
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    try:
        import polars as pl
        if not hasattr(pl.DataFrame, "mixed"):
            pl.api.register_dataframe_namespace("mixed")(MixedNamespace)
        if not hasattr(pl.LazyFrame, "mixed"):
            pl.api.register_lazyframe_namespace("mixed")(MixedNamespace)
    except ImportError:  # pragma: no cover
        pass
