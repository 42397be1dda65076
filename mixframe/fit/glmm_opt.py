"""Starting values for GLMM fits: the GLM without random effects and a moment estimate of the dispersion."""
from __future__ import annotations

import numpy as np


def glm_start(obj, maxit: int = 50) -> np.ndarray:
    """Fixed effects of the GLM without random effects (IRLS from the family's starting means)."""
    fam, y, wt, X, off = obj.family, obj.y, obj.wt, obj.X, obj.off
    eta = fam.linkfun(fam.mustart(y, wt))
    disp = 1.0 if not fam.has_dispersion else (np.std(y) if fam.name == "gaussian" else 1.0)
    beta = np.zeros(obj.p)
    dev_old = np.inf
    for _ in range(maxit):
        _, w, r, _, status = fam.working(y, eta, wt, disp)
        if status != 0:
            break
        z = eta - off + r
        sw = np.sqrt(w)
        beta_new = np.linalg.lstsq(X * sw[:, None], z * sw, rcond=None)[0]
        eta_new = off + X @ beta_new
        step = 1.0
        for _ in range(30):
            _, _, _, ll_new, st = fam.working(y, eta_new, wt, disp)
            if st == 0:
                break
            step *= 0.5
            eta_new = eta + step * (off + X @ beta_new - eta)
        if st != 0:
            break
        beta, eta = beta_new, eta_new
        dev = -2.0 * np.sum(ll_new)
        if abs(dev - dev_old) < 1e-10 * (abs(dev) + 1.0):
            break
        dev_old = dev
    if not np.any(beta):
        beta = np.linalg.lstsq(X, eta - off, rcond=None)[0]
    return _valid_start(obj, beta, disp)


def _valid(fam, y, eta, wt, disp) -> bool:
    return bool(np.all(np.isfinite(eta))) and fam.working(y, eta, wt, disp)[4] == 0


def _valid_start(obj, beta, disp) -> np.ndarray:
    """``beta`` if its linear predictor gives valid means for every row, else the nearest valid point on
    the segment to the constant fit (the family's link of the weighted mean response): a link with a
    restricted range (the inverse Gaussian's 1/mu^2, the gamma's inverse) can leave a GLM step outside it,
    and penalized IRLS must start inside."""
    fam, y, wt, X, off = obj.family, obj.y, obj.wt, obj.X, obj.off
    if _valid(fam, y, off + X @ beta, wt, disp):
        return beta
    w = np.ones_like(y) if wt is None else np.asarray(wt, dtype=float)
    ybar = float(np.sum(w * y) / np.sum(w))
    const = fam.linkfun(np.full(1, ybar))[0]
    base = np.linalg.lstsq(X, np.full(len(y), const) - off, rcond=None)[0]
    if not _valid(fam, y, off + X @ base, wt, disp):
        return beta
    t = 1.0
    for _ in range(60):
        t *= 0.5
        trial = base + t * (beta - base)
        if _valid(fam, y, off + X @ trial, wt, disp):
            return trial
    return base


def initial_dispersion(obj, beta) -> float:
    """A moment estimate of the dispersion parameter from the GLM fit (mixframe's ``sigma`` scale)."""
    fam, y = obj.family, obj.y
    mu = fam.linkinv(obj.off + obj.X @ beta)
    if fam.name == "negative_binomial":
        excess = np.sum((y - mu) ** 2 - mu)
        size = np.sum(mu ** 2) / excess if excess > 0 else 100.0
        return float(np.clip(size, 0.05, 1e4))
    if fam.name == "gaussian":
        return float(max(np.sqrt(np.mean((y - mu) ** 2)), 1e-8))
    if fam.name == "gamma":
        return float(max(np.sqrt(np.mean(((y - mu) / mu) ** 2)), 1e-4))
    return float(max(np.sqrt(np.mean((y - mu) ** 2 / mu ** 3)), 1e-4))
