"""Benchmark adapter: fits every benchmark task with mixframe's public API.

Loaded by the benchmark runner ``run_python_peers.py`` (always, next to the
peers' adapters) and by ``compare_builds.py``, which import this file, time
``fit(task, data)`` in a worker process of their own and compare the returned
log-likelihood and fixed effects with R's (or, for two builds, with each other).

Two systems are defined:

* ``mixframe``        -- the prepared pandas frame as the runner loads it
  (factors as ``str`` columns; an ordinal response as an ordered Categorical);
* ``mixframe-polars`` -- the same data converted to a polars DataFrame
  (ordinal response as ``polars.Enum``) before timing starts.

The data conversions happen in ``prepare``, which the runner does not time;
the timed call is the fit itself plus reading a few scalars off the result.
"""

from __future__ import annotations

import os
from typing import Any

from run_python_peers import Adapter, Unsupported

# benchmark family name -> mixframe family name
_FAMILY = {
    "binomial": "binomial",
    "poisson": "poisson",
    "nbinom2": "negative_binomial",
}


def _ordinal_labels(values) -> list[str]:
    """Levels of an integer-coded ordinal response, as strings in numeric order."""
    return [str(v) for v in sorted({int(v) for v in values})]


def prepare_pandas(task, df):
    """Untimed: turn an integer-coded ordinal response into an ordered Categorical."""
    if not task.ordinal:
        return df
    import pandas as pd

    df = df.copy()
    labels = _ordinal_labels(df[task.response])
    df[task.response] = pd.Categorical(
        df[task.response].astype(int).astype(str), categories=labels, ordered=True
    )
    return df


def prepare_polars(task, df):
    """Untimed: convert the pandas frame to polars (ordinal response as an Enum)."""
    import polars as pl

    labels = _ordinal_labels(df[task.response]) if task.ordinal else None
    out = pl.from_pandas(df)
    if labels is not None:
        out = out.with_columns(pl.col(task.response).cast(pl.Int64).cast(pl.String).cast(pl.Enum(labels)))
    return out


def supports(task) -> str | None:
    if task.kind == "glmm" and task.family not in _FAMILY:
        return f"family {task.family} has no mixframe counterpart in this adapter"
    if task.kind not in ("lmm", "glmm", "clmm"):
        return f"model kind {task.kind}"
    return None


def _floats(d: Any) -> dict[str, float]:
    return {str(k): float(v) for k, v in dict(d).items()}


def fit(task, data) -> dict:
    """Timed: one mixframe fit of the task's model on already-prepared data."""
    import mixframe as mf

    formula = task.flat_formula  # lme4 syntax; cbind(successes, trials - successes) for counts
    try:
        if task.kind == "lmm":
            m = mf.lmm(formula, data, reml=task.reml)
        elif task.kind == "glmm":
            m = mf.glmm(formula, data, family=_FAMILY[task.family], link=task.link)
        else:
            m = mf.clmm(formula, data, link=task.link)
    except NotImplementedError as exc:  # a model the library says it cannot fit yet
        raise Unsupported(str(exc) or "not implemented") from None

    out: dict[str, Any] = {
        "logLik": float(m.loglik),
        "fixef": _floats(m.fixef),
        "converged": None if m.converged is None else bool(m.converged),
        # the runner looks the version up in the installed metadata, which a
        # source checkout on PYTHONPATH does not have: record it here as well
        "mixframe_version": getattr(mf, "__version__", None),
        "mixframe_path": os.path.dirname(mf.__file__),
    }
    theta = getattr(m, "theta", None)
    if theta is not None:
        out["varcomp"] = {"theta": [float(x) for x in list(theta)]}
    if task.kind == "clmm":
        out["thresholds"] = _floats(m.thresholds)
    if task.family == "nbinom2" and m.sigma is not None:
        out["nb_theta"] = float(m.sigma)  # NB2 size, Var = mu + mu^2 / theta
    return out


ADAPTERS = [
    Adapter(
        name="mixframe",
        fit=fit,
        modules=("mixframe",),
        dist="mixframe",
        supports=supports,
        prepare=prepare_pandas,
    ),
    Adapter(
        name="mixframe-polars",
        fit=fit,
        modules=("mixframe", "polars"),
        dist="mixframe",
        supports=supports,
        prepare=prepare_polars,
    ),
]
