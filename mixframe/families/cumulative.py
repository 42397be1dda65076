"""Cumulative links and threshold structures of ordinal models, ``P(Y <= j) = F(alpha_j - eta)``.

The latent distribution ``F`` of each link is named by :class:`~mixframe.families.codes.CumLink`. Its CDF,
density and density derivative come from the compiled ``link_functions`` of ``mixframe._ext.ordinal``
(the inline functions of ``_kernels/cumlink.pxd`` that the ordinal likelihood kernels use); the quantile
function (for starting thresholds) is NumPy. All are module-level functions of ``(link, x)``, so a fit that
stores ``make_cdf(link)`` pickles.

The thresholds are ``alpha = J @ xi`` for a structure matrix ``J`` (:func:`threshold_structure`).
"""
from __future__ import annotations

from functools import partial
from itertools import pairwise
from statistics import NormalDist

import numpy as np

from .._ext.ordinal import link_functions
from ..errors import DataError
from .codes import CumLink

# name -> kernel code, from the enum of codes.py
LINKS = {m.label: int(m) for m in CumLink}
THRESHOLDS = ("flexible", "equidistant", "symmetric")
_EMPTY = np.empty(0)


def link_code(link) -> CumLink:
    """The kernel code of a cumulative link (a name or a code); ValueError naming the known ones otherwise.

    Examples
    --------
    >>> int(link_code("probit"))
    1
    """
    if isinstance(link, CumLink):
        return link
    if link not in LINKS:
        raise ValueError(f"link {link!r} is not a cumulative link; use one of {sorted(LINKS)}")
    return CumLink(LINKS[link])


def _evaluate(link, x, which: int) -> np.ndarray:
    """One of F (0), f (1), f' (2) of ``link`` at ``x`` (any shape), through the compiled loop."""
    x = np.asarray(x, dtype=float)
    flat = np.ascontiguousarray(x.ravel())
    out = np.empty_like(flat)
    bufs = [_EMPTY, _EMPTY, _EMPTY]
    bufs[which] = out
    link_functions(int(link_code(link)), flat, *bufs)
    return out.reshape(x.shape)


def cdf(link, x) -> np.ndarray:
    """The CDF ``F(x)`` of a cumulative link's distribution, elementwise (any array shape).

    Examples
    --------
    >>> float(cdf(CumLink.LOGIT, 0.0))
    0.5
    """
    return _evaluate(link, x, 0)


def pdf(link, x) -> np.ndarray:
    """The density ``f(x) = F'(x)``, elementwise."""
    return _evaluate(link, x, 1)


def dpdf(link, x) -> np.ndarray:
    """The density derivative ``f'(x)``, elementwise."""
    return _evaluate(link, x, 2)


def _q_logit(p):
    return np.log(p) - np.log1p(-p)


_q_probit = np.vectorize(NormalDist().inv_cdf, otypes=[float])


def _q_cloglog(p):
    return np.log(-np.log1p(-p))


def _q_loglog(p):
    return -np.log(-np.log(p))


def _q_cauchit(p):
    return np.tan(np.pi * (p - 0.5))


_QUANTILE = {CumLink.LOGIT: _q_logit, CumLink.PROBIT: _q_probit, CumLink.CLOGLOG: _q_cloglog,
             CumLink.LOGLOG: _q_loglog, CumLink.CAUCHIT: _q_cauchit}


def quantile(link, p) -> np.ndarray:
    """The inverse CDF ``F^{-1}(p)`` for ``0 < p < 1``.

    Examples
    --------
    >>> float(quantile("logit", np.array([0.5]))[0])
    0.0
    """
    return _QUANTILE[link_code(link)](np.asarray(p, dtype=float))


def make_cdf(link):
    """The CDF ``F`` of a link as a one-argument picklable callable (``partial(cdf, code)``).

    Examples
    --------
    >>> F = make_cdf("logit")
    >>> float(F(np.array([0.0]))[0])
    0.5
    """
    return partial(cdf, link_code(link))


def threshold_structure(levels, threshold: str):
    """The structure matrix ``J`` (K-1, n_xi) with ``alpha = J @ xi``, and the names of ``xi``.

    Flexible thresholds are named ``"1|2"``, ``"2|3"``, ... from the response levels; the structured
    ones ``threshold.1, spacing`` (equidistant) and ``central, spacing.1, ...`` or
    ``central.1, central.2, spacing.1, ...`` (symmetric, odd or even number of thresholds).

    Examples
    --------
    >>> J, names = threshold_structure(["1", "2", "3", "4"], "symmetric")
    >>> J.tolist(), names
    ([[1.0, -1.0], [1.0, 0.0], [1.0, 1.0]], ['central', 'spacing.1'])
    """
    levels = [str(v) for v in levels]
    nthr = len(levels) - 1
    if nthr < 1:
        raise DataError(f"an ordinal response needs at least 2 levels; found {levels}")
    if threshold == "flexible":
        return np.eye(nthr), [f"{a}|{b}" for a, b in pairwise(levels)]
    if threshold not in THRESHOLDS:
        raise ValueError(f"threshold {threshold!r} is not one of {list(THRESHOLDS)}")
    if nthr < 2:
        raise DataError(f"{threshold} thresholds need a response with 3 or more levels; found {levels}")
    if threshold == "equidistant":
        return np.column_stack([np.ones(nthr), np.arange(nthr, dtype=float)]), ["threshold.1", "spacing"]
    m = nthr // 2
    if nthr % 2:   # alpha_m = central; alpha_{m -+ j} = central -+ spacing_j
        J = np.zeros((nthr, m + 1))
        J[:, 0] = 1.0
        for j in range(1, m + 1):
            J[m - j, j] = -1.0
            J[m + j, j] = 1.0
        return J, ["central"] + [f"spacing.{j}" for j in range(1, m + 1)]
    # even: alpha_{m-1} = central.1, alpha_m = central.2, spacings outwards from each
    J = np.zeros((nthr, m + 1))
    J[:m, 0] = 1.0
    J[m:, 1] = 1.0
    for j in range(1, m):
        J[m - 1 - j, j + 1] = -1.0
        J[m + j, j + 1] = 1.0
    return J, ["central.1", "central.2"] + [f"spacing.{j}" for j in range(1, m)]


# --- the cumulative probabilities of a fitted ordinal record -------------------------------------------------

def ordinal_cdf(raw):
    """The CDF F of a fitted cumulative link model: ``raw.extra["cdf"]``, else the one named by ``raw.link``."""
    F = raw.extra.get("cdf")
    return F if F is not None else make_cdf(raw.link)


def ordinal_thresholds(raw) -> np.ndarray:
    """The K-1 cut-points α: ``raw.extra["alpha"]`` when given, else the threshold coefficients."""
    if raw.extra.get("alpha") is not None:
        return np.asarray(raw.extra["alpha"], dtype=float)
    n_levels = len(raw.design.response_levels)
    return np.asarray(raw.coef[: n_levels - 1], dtype=float)


def ordinal_cum_probs(raw, eta) -> np.ndarray:
    """Cumulative probabilities P(Y ≤ k) = F(α_k − η), k = 1..K−1, as an n x (K−1) array."""
    alpha = ordinal_thresholds(raw)
    return ordinal_cdf(raw)(alpha[None, :] - np.asarray(eta, dtype=float)[:, None])


def ordinal_probs(raw, eta) -> np.ndarray:
    """Category probabilities (n x K) from the location predictor η."""
    cum = ordinal_cum_probs(raw, eta)
    n = cum.shape[0]
    full = np.hstack([np.zeros((n, 1)), cum, np.ones((n, 1))])
    return np.diff(full, axis=1)
