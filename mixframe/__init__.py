"""mixframe: mixed-effects models (LMM, GLMM, CLMM) on pandas and polars DataFrames.

Importing mixframe registers the ``mixed`` namespace: ``df.mixed.lmm("y ~ x + (1 | g)")``.
"""
from . import datasets
from .accessors import register as _register
from .api import clm, clmm, glmm, lmm
from .errors import ConvergenceWarning, DataError, FormulaError, SingularFitWarning
from .results import MixedModel, anova

__version__ = "0.1.0"
__all__ = [
    "ConvergenceWarning",
    "DataError",
    "FormulaError",
    "MixedModel",
    "SingularFitWarning",
    "__version__",
    "anova",
    "clm",
    "clmm",
    "datasets",
    "glmm",
    "lmm",
]

_register()
