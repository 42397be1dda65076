"""Satterthwaite denominator degrees of freedom for LMM fixed effects, as lmerTest defines them.

For a contrast c, with V(v) = sigma^2 (R_X'R_X)^{-1} the covariance of beta as a function of the variance
parameters v = (theta, sigma), and A = 2 H^{-1} the asymptotic covariance of v (H the Hessian of the
unprofiled (RE)ML deviance at the estimate),

    df = 2 (c'Vc)^2 / (g' A g),   g_i = c' (dV/dv_i) c.

Derivatives are central finite differences with Richardson extrapolation.
"""
from __future__ import annotations

import numpy as np

from ..numerics import fdiff


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
        H = fdiff.hessian(dev, v, 1e-3, floor=0.1, richardson=True)[2]
        A = 2.0 * np.linalg.inv(H)
    except np.linalg.LinAlgError:
        return None
    jac = fdiff.jacobian(vcov, v, 1e-4, floor=0.1, richardson=True)      # (p, p, len(v))
    V = vcov(v)
    objective.deviance_at(theta, sigma)  # leave the factor at the estimate
    p = V.shape[0]
    out = np.empty(p)
    for k in range(p):
        g = jac[k, k]
        denom = float(g @ A @ g)
        out[k] = 2.0 * V[k, k] ** 2 / denom if denom > 0 else np.nan
    return out
