"""Analytic gradient of the profiled (RE)ML deviance for LMMs whose random-effect terms are all scalar.

With Omega(theta) = [[Lambda'Z'WZ Lambda + I, Lambda'Z'W E], [E'WZ Lambda, E'WE]] for E = [X, y], the profiled
deviance is a combination of log|Omega| and log|Omega_{-y}| (Omega without the response column):

    REML: d = (1 - (n - p)) log|Omega_{-y}| + (n - p) log|Omega| + const
    ML:   d = log|M| + n (log|Omega| - log|Omega_{-y}|) + const,   M = the Z block of Omega.

For a scalar term t, Lambda = theta_t I on its block, and d log|Omega| / d theta_t = 2 (q_t - tr_t(Omega^{-1}))
/ theta_t, tr_t the trace of the term's diagonal block. The Z block of Omega^{-1} is M^{-1} + V (L_X L_X')^{-1} V'
with V = L_Z^{-T} L_XZ' from the blocked factor, and the factor of Omega_{-y} is the leading part of the same
factor. A gradient therefore costs about one more dense triangular inversion than a deviance evaluation.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
from scipy.linalg.lapack import dpotri, dtrtri, dtrtrs

#: theta_t below this uses a one-sided difference for its gradient component (the analytic form is 0/0 at 0)
SMALL_THETA = 1e-5


def all_scalar(design) -> bool:
    return all(t.k == 1 for t in design.terms)


def _diag_inv_parts(system):
    """Per-term trace of M^{-1} and the rows of V = L_Z^{-T} L_XZ' (q x ne)."""
    c = system.chol
    q2 = system.q2
    L11 = np.asarray(c.L11)[:, 0, 0]
    F1 = np.asarray(c.F1)
    F2 = np.asarray(c.F2)
    tr_blocks = []
    if q2:
        L22 = np.asarray(c.L22)
        lam_rows = np.repeat(np.asarray(c.lamR), system.r_m)          # scalar terms: one value per row
        S = np.asarray(c.S)[:, 0]
        cols = np.repeat(np.arange(system.m0), np.diff(system.a21_ptr))
        Ssp = sp.csc_matrix((S, (system.a21_row, cols)), shape=(q2, system.m0))
        # diag of M^{-1}: block 2 is diag((L22 L22')^{-1}); block 1 adds x_j' (L22 L22')^{-1} x_j with x_j the
        # level's column of LR' S, all divided by L11_j^2
        P, _ = dpotri(L22, lower=1)
        d2 = np.diag(P).copy()
        quad = np.empty(system.m0)
        c.column_quad_forms(np.ascontiguousarray(P), np.ascontiguousarray(S * lam_rows[system.a21_row]), quad)
        d1 = (1.0 + quad) / L11 ** 2
        V2, _ = dtrtrs(L22, np.ascontiguousarray(F2.T), lower=1, trans=1)   # L22' V2 = F2'
        C = np.asarray(Ssp.T @ (lam_rows[:, None] * V2))               # L21' V2 with L21 = LR' S
        V1 = (F1.T - C) / L11[:, None]
        V = np.vstack([V1, V2])
        diag = np.concatenate([d1, d2])
    else:
        diag = 1.0 / L11 ** 2
        V = F1.T / L11[:, None]
    pos = 0
    for t in system.terms:
        tr_blocks.append((pos, pos + t.q))
        pos += t.q
    return diag, V, tr_blocks


def profiled_gradient(objective, theta) -> np.ndarray:
    """Gradient of ``objective(theta)`` (an LmmObjective over scalar terms) at theta."""
    with objective.system.blas_context():
        return _gradient(objective, np.asarray(theta, dtype=float))


def _gradient(objective, theta) -> np.ndarray:
    current = objective.system.theta
    f0 = objective(theta) if current is None or not np.array_equal(current, theta) else None
    system = objective.system
    diag, V, blocks = _diag_inv_parts(system)
    p = objective.p
    L33 = np.tril(np.asarray(system.chol.L33))
    Lx_inv, _ = dtrtri(L33, lower=1)
    Lx_inv = np.tril(Lx_inv)
    G_full = V @ Lx_inv.T
    extra_full = np.einsum("ij,ij->i", G_full, G_full)
    if p:
        Lp_inv, _ = dtrtri(L33[:p, :p].copy(), lower=1)
        G_p = V[:, :p] @ np.tril(Lp_inv).T
        extra_p = np.einsum("ij,ij->i", G_p, G_p)
    else:
        extra_p = np.zeros_like(extra_full)
    n = objective.n
    grad = np.empty(theta.size)
    for t, (a, b) in enumerate(blocks):
        q_t = b - a
        tr_m = diag[a:b].sum()
        tr_full = tr_m + extra_full[a:b].sum()
        tr_p = tr_m + extra_p[a:b].sum()
        if theta[t] < SMALL_THETA:
            grad[t] = math.nan
            continue
        dfull = 2.0 * (q_t - tr_full) / theta[t]
        dp = 2.0 * (q_t - tr_p) / theta[t]
        if objective.reml:
            nmp = n - p
            grad[t] = (1.0 - nmp) * dp + nmp * dfull
        else:
            dm = 2.0 * (q_t - tr_m) / theta[t]
            grad[t] = dm + n * (dfull - dp)
    for t in np.flatnonzero(np.isnan(grad)):
        h = 1e-7
        e = np.zeros(theta.size)
        e[t] = h
        if f0 is None:
            f0 = objective(theta)
        grad[t] = (objective(theta + e) - f0) / h
        objective(theta)
    return grad
