"""The relative covariance factor Lambda(theta) and the map from spherical u to b = Lambda u.

theta holds, term after term (in ``Design.terms`` order), the lower triangle of each term's k x k
relative Cholesky factor in column-major order, as lme4 does: for k = 2, (l11, l21, l22).
The random effects of term t for level j are ``b[t][j] = lam_t @ u[t][j]``; their covariance is
``scale**2 * lam_t @ lam_t.T`` (scale = sigma for an LMM, 1 for a GLMM without dispersion).
"""
from __future__ import annotations

import numpy as np


def theta_to_lambdas(terms, theta) -> list[np.ndarray]:
    """Per-term lower-triangular relative factors (k x k) from the stacked theta vector."""
    out = []
    pos = 0
    theta = np.asarray(theta, dtype=float)
    for t in terms:
        k = t.k
        lam = np.zeros((k, k))
        for j in range(k):
            for i in range(j, k):
                lam[i, j] = theta[pos]
                pos += 1
        out.append(lam)
    return out


def lambdas_to_theta(lambdas) -> np.ndarray:
    out = []
    for lam in lambdas:
        k = lam.shape[0]
        for j in range(k):
            for i in range(j, k):
                out.append(lam[i, j])
    return np.asarray(out, dtype=float)


def split_u(terms, u) -> list[np.ndarray]:
    """Split the stacked spherical effects u (length q; term-major, level-major, effect-minor) per term,
    each as an (n_levels, k) array."""
    out = []
    pos = 0
    for t in terms:
        out.append(np.asarray(u[pos:pos + t.q]).reshape(t.n_levels, t.k))
        pos += t.q
    return out


def u_to_b(terms, theta, u) -> list[np.ndarray]:
    """Conditional modes on the scale of the random effects: b_t[j] = lam_t @ u_t[j]."""
    lams = theta_to_lambdas(terms, theta)
    return [ut @ lam.T for ut, lam in zip(split_u(terms, u), lams)]


def z_times_b(terms, bs) -> np.ndarray:
    """The random-effect contribution to the linear predictor, sum_t rowsum(Z_t * b_t[codes_t])."""
    n = terms[0].Z.shape[0] if terms else 0
    out = np.zeros(n)
    for t, b in zip(terms, bs):
        b = np.asarray(b, dtype=float).reshape(t.n_levels, t.k)
        for c in range(t.k):        # one gather of a level-sized column per effect, no (n, k) temporary
            out += t.Z[:, c] * np.ascontiguousarray(b[:, c]).take(t.codes)
    return out
