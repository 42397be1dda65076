"""Gauss-Hermite quadrature in one convention: the standard normal density.

``gauss_hermite(n)`` returns nodes x_k and weights w_k with

    integral f(x) phi(x) dx  ~=  sum_k w_k f(x_k),      phi(x) = exp(-x^2 / 2) / sqrt(2 pi),

exact for polynomials f of degree up to 2n - 1; the weights sum to 1. An integral against exp(-x^2) is the same
rule after x = t / sqrt(2): integral g(t) exp(-t^2) dt = sqrt(pi) * sum_k w_k g(x_k / sqrt(2)).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=64)
def _rule(n: int):
    x, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / np.sqrt(2.0 * np.pi)
    logw = np.log(w)
    for a in (x, w, logw):
        a.setflags(write=False)
    return x, w, logw


def gauss_hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the n-point rule for the standard normal density (read-only arrays).

    Examples
    --------
    >>> x, w = gauss_hermite(3)
    >>> round(float(w @ x ** 2), 12), round(float(w @ x ** 4), 12)      # E X^2 = 1, E X^4 = 3
    (1.0, 3.0)
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"a Gauss-Hermite rule needs at least one node; got {n}")
    x, w, _ = _rule(n)
    return x, w


def gauss_hermite_log(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and log weights of the n-point rule of ``gauss_hermite`` (read-only arrays)."""
    gauss_hermite(n)
    x, _, logw = _rule(int(n))
    return x, logw
