"""The ``mixed`` namespace on pandas and polars frames: ``df.mixed.lmm(formula, **kw)``.

Stateless: every method forwards to the function of the same name in :mod:`mixframe.api` with the frame as
``data``; nothing is cached on the frame and the frame is never modified.

The methods are generated from the API functions, so they cannot drift from them: each has its function's
signature without ``data`` (``formula`` and the same keyword-only parameters with the same defaults, which is
what ``help``, ``inspect.signature`` and tab completion show) and its docstring without the ``data`` entry.
A polars LazyFrame has only :func:`mixframe.lmm`, the one fit that reads lazy data batch by batch; the other
kinds need the rows in memory (``lf.collect().mixed.glmm(...)``).
"""
from __future__ import annotations

import inspect
import re

from . import api

__all__ = ["LazyMixedNamespace", "MixedNamespace", "register"]

# a numpydoc "data : ..." entry: its line and the more indented lines of its description
_DATA_ENTRY = re.compile(r"^(?P<indent>[ \t]*)data : [^\n]*\n(?:(?P=indent)[ \t]+[^\n]*\n)*", re.MULTILINE)


def method_doc(fn) -> str:
    """The docstring of ``fn`` without its ``data`` parameter entry."""
    return _DATA_ENTRY.sub("", inspect.getdoc(fn) or "", count=1)


def method_signature(fn) -> inspect.Signature:
    """The signature of ``fn`` without its ``data`` parameter (as the bound method shows it)."""
    sig = inspect.signature(fn)
    return sig.replace(parameters=[p for p in sig.parameters.values() if p.name != "data"])


def _method(fn, owner: str):
    """A method ``(self, <fn's parameters but data>)`` calling ``fn`` with ``data=self._frame``.

    The method is compiled from its parameter list, so its signature is a real one (every tool that reads
    signatures or code objects sees the parameters) and its defaults are the very objects ``fn`` has.
    """
    sig = method_signature(fn)
    params, call, defaults = ["self"], [], {}
    star = False
    for p in sig.parameters.values():
        if p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            raise TypeError(f"{fn.__name__}: parameter {p.name!r} of kind {p.kind} cannot be forwarded")
        if p.kind is p.KEYWORD_ONLY and not star:
            params.append("*")
            star = True
        if p.default is p.empty:
            params.append(p.name)
        else:
            defaults[p.name] = p.default
            params.append(f"{p.name}=_defaults[{p.name!r}]")
        call.append(f"{p.name}={p.name}")
    call.insert(1, "data=self._frame")
    src = f"def {fn.__name__}({', '.join(params)}):\n    return _api_function({', '.join(call)})\n"
    namespace = {"_api_function": fn, "_defaults": defaults}
    exec(compile(src, f"<mixframe.accessors: {owner}.{fn.__name__}>", "exec"), namespace)
    method = namespace[fn.__name__]
    method.__qualname__ = f"{owner}.{fn.__name__}"
    method.__module__ = __name__
    method.__doc__ = method_doc(fn)
    method.__annotations__ = dict(getattr(fn, "__annotations__", {}))
    method.__annotations__.pop("data", None)
    return method


class _Namespace:
    def __init__(self, frame):
        self._frame = frame


class MixedNamespace(_Namespace):
    """``df.mixed``: fit mixed models on this frame.

    ``df.mixed.X(formula, **kw)`` is ``mixframe.X(formula, df, **kw)``."""

    lmm = _method(api.lmm, "MixedNamespace")
    glmm = _method(api.glmm, "MixedNamespace")
    clmm = _method(api.clmm, "MixedNamespace")
    clm = _method(api.clm, "MixedNamespace")


class LazyMixedNamespace(_Namespace):
    """``lf.mixed`` on a polars LazyFrame: the streamed linear mixed model, read batch by batch.
    ``lf.mixed.lmm(formula, **kw)`` is ``mixframe.lmm(formula, lf, **kw)``."""

    lmm = _method(api.lmm, "LazyMixedNamespace")


def register() -> None:
    """Register ``mixed`` on pandas.DataFrame, polars.DataFrame and polars.LazyFrame."""
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        pd = None
    if pd is not None and not hasattr(pd.DataFrame, "mixed"):
        pd.api.extensions.register_dataframe_accessor("mixed")(MixedNamespace)
    try:
        import polars as pl
    except ImportError:  # pragma: no cover - polars is a dependency
        return
    if not hasattr(pl.DataFrame, "mixed"):
        pl.api.register_dataframe_namespace("mixed")(MixedNamespace)
    if not hasattr(pl.LazyFrame, "mixed"):
        pl.api.register_lazyframe_namespace("mixed")(LazyMixedNamespace)
