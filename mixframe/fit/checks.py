"""Checks of a design before a fit: enough observations for the random effects.

The rules are lme4's (``lmerControl``/``glmerControl`` defaults) and ordinal's:

* LMM: every grouping factor needs fewer levels than observations (``check.nobs.vs.nlev``) and every
  term fewer random effects than observations (``check.nobs.vs.nRE``), else the random-effect variances
  and the residual variance cannot be told apart: an error.
* GLMM (no residual variance): a term may have as many random effects as observations, not more.
* CLMM: a term, or the whole model, with at least as many random effects as observations is a warning.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..errors import DataError

__all__ = ["check_random_effect_sizes", "term_label"]


def term_label(term) -> str:
    """The term as the formula wrote it: ``"1 | g"``, ``"Days | Subject"``."""
    return f"{term.expr} | {term.group}"


def _n_obs(design, positive_weights: bool) -> int:
    n = int(design.n_obs)
    if positive_weights and design.weights is not None:
        n = int(np.count_nonzero(np.asarray(design.weights) > 0))
    return n


def check_random_effect_sizes(design, kind: str) -> None:
    """Raise a :class:`~mixframe.errors.DataError` (LMM, GLMM) or warn (CLMM) when the random effects
    outnumber what the observations can identify. ``kind`` is ``"lmm"``, ``"glmm"`` or ``"clmm"``."""
    terms = list(design.terms)
    if not terms:
        return
    if kind == "clmm":
        from ..errors import ConvergenceWarning

        n = _n_obs(design, True)
        for t in terms:
            if t.q >= n:
                warnings.warn(f"no. random effects (={t.q}) >= no. observations (={n}) for term: "
                              f"({term_label(t)})", ConvergenceWarning, stacklevel=4)
        total = sum(t.q for t in terms)
        if total >= n:
            warnings.warn(f"no. random effects (={total}) >= no. observations (={n})", ConvergenceWarning,
                          stacklevel=4)
        return
    n = _n_obs(design, False)
    allow_n = kind != "lmm"
    cmp = "<" if allow_n else "<="
    rest = "" if allow_n else " and the residual variance (or scale parameter)"

    def too_many(count):
        return count > n if allow_n else count >= n

    per_term = [f"number of observations (={n}) {cmp} number of random effects (={t.q}) for term "
                f"({term_label(t)}); the random-effects parameters{rest} are probably unidentifiable"
                for t in terms if too_many(t.q)]
    groups = {}
    for t in terms:
        groups.setdefault(t.group, t.n_levels)
    bad_groups = [g for g, nlev in groups.items() if too_many(nlev)]
    if bad_groups:
        msg = (f"number of levels of each grouping factor must be {'<=' if allow_n else '<'} number of "
               f"observations (problems: {', '.join(bad_groups)})")
        raise DataError("; ".join([msg] + per_term))
    if per_term:
        raise DataError("; ".join(per_term))
