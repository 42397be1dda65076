"""mixframe: mixed-effects models (LMM, GLMM, CLMM) on pandas and polars DataFrames.

Importing mixframe registers the ``mixed`` namespace: ``df.mixed.lmm("y ~ x + (1 | g)")``. The import is
light: the fitting code, scipy, the formula machinery and the compiled kernels load with the first fit, and
``MixedModel``, ``anova``, ``datasets`` and ``__version__`` when first used.
"""
from .accessors import register as _register
from .api import clm, clmm, glmm, lmm
from .errors import ConvergenceWarning, DataError, FormulaError, SingularFitWarning

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

# name -> (module, attribute or None for the module itself), imported on first access
_LAZY = {
    "MixedModel": (".results", "MixedModel"),
    "anova": (".results", "anova"),
    "datasets": (".datasets", None),
}


def _version() -> str:
    """The installed distribution's version; for a source tree that was never installed, pyproject's."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mixframe")
    except PackageNotFoundError:
        import tomllib
        from pathlib import Path

        pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
        with open(pyproject, "rb") as fh:
            return tomllib.load(fh)["project"]["version"]


def __getattr__(name: str):
    if name == "__version__":
        value = _version()
    elif name in _LAZY:
        from importlib import import_module

        module, attr = _LAZY[name]
        mod = import_module(module, __name__)
        value = mod if attr is None else getattr(mod, attr)
    else:
        raise AttributeError(f"module 'mixframe' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


_register()
