"""A picklable record of the call that made a fit: the fitting function's name and its arguments.

The data are not part of the record: a refit takes them from the model's row source (the model's own
copy of the frame, or the stream), so a stored or shipped model carries its rows once.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FitCall:
    """``function(data, **arguments)`` with ``function`` one of :mod:`mixframe.api`'s fitting functions.

    Examples
    --------
    >>> import mixframe as mf
    >>> call = FitCall("lmm", {"formula": "Reaction ~ Days + (Days | Subject)"})
    >>> fit = call.refit(mf.datasets.sleepstudy(), reml=False)
    >>> fit.method
    'ML'
    """

    function: str
    arguments: dict = field(default_factory=dict)

    def refit(self, data, **changes):
        """Fit again to ``data`` with some arguments changed (e.g. ``reml=False``)."""
        from mixframe import api

        if self.function not in api.__all__:
            raise ValueError(f"unknown fitting function {self.function!r}; known: {sorted(api.__all__)}")
        return getattr(api, self.function)(data=data, **{**self.arguments, **changes})
