"""Optimizer, finite-difference Hessian and starting values for GLMM fits."""
from __future__ import annotations

import nlopt
import numpy as np


def bobyqa(f, x0, lower, step, ctl):
    """Minimise ``f`` by BOBYQA (nlopt) subject to lower bounds.

    Parameters
    ----------
    f : callable
        Objective of one 1-D array.
    x0, lower, step : ndarray
        Start, lower bounds (-inf allowed) and initial step per coordinate.
    ctl : dict
        ``maxeval``, ``ftol_rel``, ``ftol_abs``, ``xtol_rel``, ``xtol_abs``.

    Returns
    -------
    (x, f(x), evaluations, nlopt result code) for the best point seen; the code is negative on failure.
    """
    from ..progress import progress_bar, progress_enabled

    with progress_bar(total=None, desc=ctl.get("desc", "GLMM"), enabled=progress_enabled(ctl)) as bar:
        return _bobyqa(f, x0, lower, step, ctl, bar)


def _bobyqa(f, x0, lower, step, ctl, bar):
    x0 = np.maximum(np.asarray(x0, dtype=float), lower)
    n = len(x0)
    best = {"x": x0.copy(), "f": np.inf, "n": 0}

    def wrapped(x, grad):
        bar.update(1)
        val = float(f(np.asarray(x)))
        best["n"] += 1
        if not np.isfinite(val):
            val = 1e10
        if val < best["f"]:
            best["f"], best["x"] = val, np.array(x, copy=True)
        return val

    if n == 1:
        return _minimize_1d(f, x0, lower, step, ctl)
    opt = nlopt.opt(nlopt.LN_BOBYQA, n)
    opt.set_min_objective(wrapped)
    opt.set_lower_bounds(np.where(np.isfinite(lower), lower, -np.inf))
    opt.set_initial_step(np.asarray(step, dtype=float))
    opt.set_ftol_rel(ctl["ftol_rel"])
    opt.set_ftol_abs(ctl["ftol_abs"])
    opt.set_xtol_rel(ctl["xtol_rel"])
    opt.set_xtol_abs(np.full(n, ctl["xtol_abs"]))
    opt.set_maxeval(int(ctl["maxeval"]))
    try:
        opt.optimize(x0)
        code = int(opt.last_optimize_result())
    except nlopt.RoundoffLimited:
        code = 3  # treated as converged: the best point is as good as floating point allows
    except (RuntimeError, ValueError):
        code = -1
    return best["x"], best["f"], best["n"], code


def _minimize_1d(f, x0, lower, step, ctl):
    """One-dimensional bounded minimisation (Brent's method on a bracket found by stepping from x0)."""
    from scipy.optimize import minimize_scalar

    lo = float(lower[0]) if np.isfinite(lower[0]) else -np.inf
    count = {"n": 0}

    def g(t):
        count["n"] += 1
        return float(f(np.array([t])))

    a = float(x0[0])
    h = float(step[0]) if step is not None else 0.1
    fa = g(a)
    # walk downhill to bracket a minimum
    b = a + h
    fb = g(b)
    if fb > fa:
        h = -h
        b = max(a + h, lo) if np.isfinite(lo) else a + h
        fb = g(b)
    while fb < fa and count["n"] < 200:
        a, fa = b, fb
        h *= 2.0
        b = a + h
        if np.isfinite(lo) and b < lo:
            b = lo
        fb = g(b)
        if b == lo:
            break
    left, right = min(a - abs(h), b), max(a + abs(h), b)
    if np.isfinite(lo):
        left = max(left, lo)
    res = minimize_scalar(g, bounds=(left, right), method="bounded",
                          options={"xatol": max(ctl["xtol_rel"] * abs(a), 1e-10), "maxiter": 500})
    x, fx = float(res.x), float(res.fun)
    if np.isfinite(lo) and g(lo) < fx:
        x, fx = lo, g(lo)
    code = 4 if res.success else 5
    return np.array([x]), fx, count["n"], code


def fd_hessian(f, x, h=1e-4):
    """Central finite-difference Hessian of ``f`` at ``x`` with absolute step ``h``."""
    x = np.asarray(x, dtype=float)
    n = len(x)
    f0 = f(x)
    H = np.empty((n, n))
    fp, fm = np.empty(n), np.empty(n)
    for i in range(n):
        e = np.zeros(n)
        e[i] = h
        fp[i], fm[i] = f(x + e), f(x - e)
        H[i, i] = (fp[i] - 2.0 * f0 + fm[i]) / (h * h)
    # mixed terms from two more evaluations per pair: exact for quadratics, O(h^2) error like the
    # four-point formula, at half its cost
    for i in range(n):
        for j in range(i):
            e = np.zeros(n)
            e[i] = e[j] = h
            v = (f(x + e) + f(x - e) - fp[i] - fm[i] - fp[j] - fm[j] + 2.0 * f0) / (2.0 * h * h)
            H[i, j] = H[j, i] = v
    return H


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
    return beta


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


def fd_hessian_from_gradient(grad, x, h=1e-4, g0=None):
    """Finite-difference Hessian from an analytic gradient, symmetrised.

    ``h`` is a step per coordinate (or one for all). With ``g0`` (the gradient at x) the differences are forward
    (n gradient evaluations, error O(h)), else central (2n evaluations, error O(h^2)).
    """
    x = np.asarray(x, dtype=float)
    n = len(x)
    steps = np.broadcast_to(np.asarray(h, dtype=float), (n,))
    H = np.empty((n, n))
    for i in range(n):
        e = np.zeros(n)
        e[i] = steps[i]
        if g0 is None:
            H[:, i] = (grad(x + e) - grad(x - e)) / (2.0 * steps[i])
        else:
            H[:, i] = (grad(x + e) - g0) / steps[i]
    return 0.5 * (H + H.T)


def _trust_step(H, g, dscale, radius):
    """Minimiser of g'd + d'Hd/2 subject to ||dscale * d|| <= radius, from the eigen-decomposition of the
    scaled Hessian: the Newton step when it is inside, else the shifted step (H + mu I) whose length is the
    radius, mu found by Newton's method on the secular equation 1/||z(mu)|| = 1/radius (More and Sorensen);
    an indefinite H is handled by the shift. Returns (d, predicted decrease)."""
    Hs = H / np.outer(dscale, dscale)
    gs = g / dscale
    vals, vecs = np.linalg.eigh(Hs)
    gt = vecs.T @ gs
    top = max(float(np.max(np.abs(vals))), 1e-300)
    lo = max(0.0, -float(vals[0])) + 1e-12 * top
    mu = 0.0 if vals[0] > 0 else lo
    z = -gt / (vals + mu)
    zz = float(z @ z)
    if vals[0] < 0 and zz < radius ** 2:
        # the hard case (g has no component along the most negative curvature): go along it to the boundary
        z = z.copy()
        z[0] += np.sqrt(radius ** 2 - zz)
    elif zz > radius ** 2:
        for _ in range(50):
            den = vals + mu
            z = -gt / den
            nz = np.sqrt(float(z @ z))
            if abs(nz - radius) <= 1e-6 * radius:
                break
            dnz = -float(z @ (z / den)) / nz          # d||z|| / d mu
            step = (nz - radius) / radius * nz / dnz   # Newton on 1/||z|| - 1/radius
            mu = mu - step if mu - step > lo else 0.5 * (mu + lo)
        z = -gt / (vals + mu)
    d = (vecs @ z) / dscale
    pred = -float(g @ d + 0.5 * d @ H @ d)
    return d, pred


def newton_bounded(fun_grad, x0, lower, h=1e-4, tol=1e-9, max_iter=200, probe=None):
    """Minimise ``fun_grad`` (returning (f, gradient)) subject to lower bounds by a trust-region quasi-Newton
    method.

    The first model Hessian is the forward-difference Hessian of the gradient at x0 (step ``h``) and BFGS
    updates follow; steps are limited to a trust region in the norm scaled by the square roots of that Hessian's
    diagonal, and coordinates at their bound with an outward-pointing gradient stay fixed. Convergence is
    declared only when the Newton decrement g'H^{-1}g (about twice the distance to the minimum in objective
    units) is below ``tol`` under a freshly differenced Hessian, which is then returned (for standard errors);
    those later differences take the step ``h`` in the scaled coordinates, so every parameter moves by the
    same fraction of its curvature scale.

    ``probe(z)``, if given, returns the gradient at a finite-difference point near the current iterate (it may
    be cheaper than ``fun_grad``, e.g. by not preparing for long steps).

    Returns
    -------
    (x, f, H, evaluations, converged)
    """
    x = np.maximum(np.asarray(x0, dtype=float), lower)
    n = len(x)
    count = [0]

    def fg(z):
        count[0] += 1
        f, g = fun_grad(z)
        return float(f), np.asarray(g, dtype=float)

    def scale_of(H):
        d = np.abs(np.diag(H))
        return np.sqrt(np.maximum(d, 1e-8 * max(float(np.max(d)), 1e-300)))

    def probe_grad(z):
        count[0] += 1
        return np.asarray(probe(z) if probe is not None else fun_grad(z)[1], dtype=float)

    def fresh_hessian(z, gz):
        # forward differences of the gradient, each step a fixed fraction of the coordinate's curvature scale
        return fd_hessian_from_gradient(probe_grad, z, h / dscale, g0=gz)

    f, g = fg(x)
    dscale = np.ones(n)
    H = fresh_hessian(x, g)
    dscale = scale_of(H)
    radius = None
    fresh = True
    converged = False
    for _ in range(max_iter):
        free = ~((x <= lower) & (g > 0))
        if not np.any(free):
            converged = fresh
            if fresh:
                break
            H, fresh = fresh_hessian(x, g), True
            continue
        Hf, gf = H[np.ix_(free, free)], g[free]
        vals = np.linalg.eigvalsh(Hf)
        if vals[0] > 0:
            dec = float(gf @ np.linalg.solve(Hf, gf))
            if dec < tol:
                if fresh:
                    converged = True
                    break
                H, fresh = fresh_hessian(x, g), True
                continue
        if radius is None:
            radius = 2.0 * np.sqrt(n)
        d = np.zeros(n)
        d[free], pred = _trust_step(Hf, gf, dscale[free], radius)
        # stop at the first bound the step meets (the model decreases all along the segment)
        hit = (d < 0) & np.isfinite(lower)
        if np.any(hit):
            alpha = float(np.min((x[hit] - lower[hit]) / -d[hit]))
            if alpha < 1.0:
                d = alpha * d
        xn = np.maximum(x + d, lower)
        d = xn - x
        pred = -float(g @ d + 0.5 * d @ H @ d)
        if pred <= 0 or not np.any(d):
            if fresh:
                converged = True     # no model decrease left under a fresh Hessian
                break
            H, fresh = fresh_hessian(x, g), True
            continue
        fn, gn = fg(xn)
        rho = (f - fn) / pred if np.isfinite(fn) else -np.inf
        step_norm = float(np.linalg.norm(dscale * d))
        if rho < 0.25:
            radius = 0.25 * step_norm
        elif rho > 0.75 and step_norm > 0.9 * radius:
            radius *= 2.0
        if rho > 1e-4:
            s, y = d, gn - g
            sy = float(s @ y)
            if sy > 1e-12 * float(np.linalg.norm(s) * np.linalg.norm(y)):
                Hs = H @ s
                H = H + np.outer(y, y) / sy - np.outer(Hs, Hs) / float(s @ Hs)
            x, f, g = xn, fn, gn
            fresh = False
        elif radius < 1e-12:
            if fresh:
                converged = True
                break
            H, fresh = fresh_hessian(x, g), True
            radius = 1.0
    if not fresh:
        H = fresh_hessian(x, g)
    return x, f, H, count[0], converged
