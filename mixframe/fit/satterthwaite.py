"""Satterthwaite denominator degrees of freedom for LMM fixed effects, as lmerTest defines them.

For a contrast c, with V(v) = sigma^2 (R_X'R_X)^{-1} the covariance of beta as a function of the variance
parameters v = (theta, sigma), and A = 2 H^{-1} the asymptotic covariance of v (H the Hessian of the
unprofiled (RE)ML deviance at the estimate),

    df = 2 (c'Vc)^2 / (g' A g),   g_i = c' (dV/dv_i) c.

Derivatives are central finite differences with Richardson extrapolation.
"""
from __future__ import annotations

import numpy as np


def _richardson(f, x, i, h):
    """d f / d x_i by central differences at steps h and h/2, extrapolated."""
    def central(step):
        e = np.zeros_like(x)
        e[i] = step
        return (f(x + e) - f(x - e)) / (2.0 * step)
    d1, d2 = central(h), central(h / 2.0)
    return (4.0 * d2 - d1) / 3.0


def _second(f, x, fx, i, s):
    e = np.zeros(x.size)
    e[i] = s
    return (f(x + e) - 2.0 * fx + f(x - e)) / (s * s)


def _mixed(f, x, i, j, si, sj):
    ei = np.zeros(x.size)
    ej = np.zeros(x.size)
    ei[i], ej[j] = si, sj
    return (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (4.0 * si * sj)


def _hessian(f, x, rel=1e-3):
    n = x.size
    h = rel * np.maximum(np.abs(x), 0.1)
    H = np.zeros((n, n))
    fx = f(x)
    for i in range(n):
        for j in range(i, n):
            if i == j:
                H[i, i] = (4.0 * _second(f, x, fx, i, h[i] / 2.0) - _second(f, x, fx, i, h[i])) / 3.0
            else:
                H[i, j] = H[j, i] = (4.0 * _mixed(f, x, i, j, h[i] / 2.0, h[j] / 2.0)
                                     - _mixed(f, x, i, j, h[i], h[j])) / 3.0
    return H


def satterthwaite_df(objective, theta, sigma) -> np.ndarray | None:
    """Per-coefficient Satterthwaite df for the fixed effects of an LMM at (theta, sigma).

    Returns None when the Hessian of the deviance is not positive definite (the df are then undefined).
    """
    theta = np.asarray(theta, dtype=float)
    v = np.concatenate([theta, [sigma]])
    nt = theta.size

    def dev(x):
        return objective.deviance_at(x[:nt], x[nt])

    def vcov(x):
        return objective.vcov_beta(x[:nt], x[nt])

    try:
        H = _hessian(dev, v)
        A = 2.0 * np.linalg.inv(H)
    except np.linalg.LinAlgError:
        return None
    h = 1e-4 * np.maximum(np.abs(v), 0.1)
    jac = [_richardson(vcov, v, i, h[i]) for i in range(v.size)]
    V = vcov(v)
    objective.deviance_at(theta, sigma)  # leave the factor at the estimate
    p = V.shape[0]
    out = np.empty(p)
    for k in range(p):
        g = np.array([J[k, k] for J in jac])
        denom = float(g @ A @ g)
        out[k] = 2.0 * V[k, k] ** 2 / denom if denom > 0 else np.nan
    return out
