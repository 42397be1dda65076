"""Dense algebra for the few-parameter matrices checked after every fit (a Hessian of the variance parameters,
the cross-product of a handful of fixed-effect columns), in plain floats: at these sizes a LAPACK call through
NumPy costs more in overhead than the arithmetic.

>>> L = cholesky([[4.0, 2.0], [2.0, 3.0]])
>>> L
[[2.0, 0.0], [1.0, 1.4142135623730951]]
>>> forward_solve(L, [2.0, 1.0])
[1.0, 0.0]
>>> cholesky([[1.0, 2.0], [2.0, 1.0]]) is None
True
"""
from __future__ import annotations

import math

__all__ = ["cholesky", "forward_solve"]


def cholesky(H):
    """Lower Cholesky factor (lists) of a small symmetric matrix given as nested lists, or None when it is not
    positive definite."""
    n = len(H)
    L = [[0.0] * n for _ in range(n)]
    for j in range(n):
        s = H[j][j] - sum(L[j][k] * L[j][k] for k in range(j))
        if not s > 0.0:
            return None
        d = math.sqrt(s)
        L[j][j] = d
        for i in range(j + 1, n):
            L[i][j] = (H[i][j] - sum(L[i][k] * L[j][k] for k in range(j))) / d
    return L


def forward_solve(L, b):
    """L^{-1} b for a lower-triangular L, as lists."""
    x = []
    for i, row in enumerate(L):
        x.append((b[i] - sum(row[j] * x[j] for j in range(i))) / row[i])
    return x
