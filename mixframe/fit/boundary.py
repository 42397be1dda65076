"""Boundary estimates: a variance parameter the optimizer leaves a hair above its bound is put on it.

An optimizer approaches a bound 0 of a diagonal element of a relative factor only asymptotically (a
trust-region search on an even function stops at 1e-16, BOBYQA at 1e-8). When the criterion at the
bound is no worse than at the optimizer's point, within the optimizer's own tolerance, the estimate *is*
the bound: theta is set to exactly 0 there, so a singular fit reports a zero variance as lme4 does.
"""
from __future__ import annotations

import math

import numpy as np

#: only parameters below this are tried at their bound (a larger one changes the criterion visibly)
SNAP_BELOW = 1e-4


def snap_to_bounds(fun, x, candidates, fmin: float | None = None, tol_abs: float = 1e-10, tol_rel: float = 1e-12,
                   below: float = SNAP_BELOW, margins: dict | None = None):
    """Put each of ``x[candidates]`` (parameters with bound 0) that is below ``below`` in absolute value on
    0 when ``fun`` there is at most ``tol_abs + tol_rel |fmin|`` above ``fmin`` (the optimizer's point).

    Returns ``(x, fmin)``: ``x`` itself when nothing moved, else a changed copy, and its criterion.
    ``margins``, a dict, receives for each parameter tried how far ``fun`` at its bound lay above ``fmin``
    then.
    """
    values = np.asarray(x, dtype=float).tolist()
    tried = [i for i in np.asarray(candidates, dtype=np.int64).tolist()
             if values[i] != 0.0 and abs(values[i]) < below]
    if not tried:
        return x, fmin
    point = np.array(x, dtype=float)
    for i in tried:
        if fmin is None:        # evaluated only when some parameter is near its bound
            fmin = float(fun(point))
        trial = point.copy()
        trial[i] = 0.0
        try:
            f_trial = float(fun(trial))
        except (ArithmeticError, np.linalg.LinAlgError):
            continue
        if margins is not None:
            margins[i] = f_trial - fmin
        if math.isfinite(f_trial) and f_trial <= fmin + tol_abs + tol_rel * abs(fmin):
            point, fmin = trial, min(fmin, f_trial)
    return (x if all(a == b for a, b in zip(point.tolist(), values)) else point), fmin
