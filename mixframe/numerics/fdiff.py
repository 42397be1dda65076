"""Finite differences: gradients, Jacobians and Hessians of functions of a few parameters.

One step policy serves every function here (:func:`step_sizes`): the step of coordinate i is ``step_i``
(absolute steps, ``floor=None``) or ``step_i * max(|x_i|, floor)`` (relative steps that do not vanish at 0).
Differences are central unless a caller supplies the value (or gradient) at x and asks for forward ones;
``richardson=True`` combines central differences at h and h/2 as (4 D(h/2) - D(h)) / 3, which cancels their
O(h^2) error.
"""
from __future__ import annotations

import numpy as np

__all__ = ["gradient", "hessian", "hessian_from_gradient", "jacobian", "step_sizes"]


def step_sizes(x, step, floor=None) -> np.ndarray:
    """The difference step of each coordinate of ``x``.

    Parameters
    ----------
    x : array_like
        The point.
    step : float or array_like
        The step (``floor=None``) or the relative step per coordinate.
    floor : float or None
        None: ``step`` is absolute; else the step is ``step * max(|x_i|, floor)``.

    Examples
    --------
    >>> step_sizes([0.0, 20.0], 1e-3, floor=1.0).tolist()
    [0.001, 0.02]
    >>> step_sizes([0.0, 20.0], 1e-3).tolist()
    [0.001, 0.001]
    """
    x = np.asarray(x, dtype=float)
    h = np.broadcast_to(np.asarray(step, dtype=float), x.shape)
    if floor is not None:
        h = h * np.maximum(np.abs(x), floor)
    return np.array(h, dtype=float)


def gradient(f, x, step=1e-5, floor=None, f0=None) -> np.ndarray:
    """Gradient of a scalar function by central differences (2 n evaluations), or by forward differences
    when ``f0 = f(x)`` is given (n evaluations).

    Examples
    --------
    >>> g = gradient(lambda z: z[0] ** 2 + 3.0 * z[1], np.array([1.0, 2.0]))
    >>> np.round(g, 8).tolist()
    [2.0, 3.0]
    """
    x = np.asarray(x, dtype=float)
    h = step_sizes(x, step, floor)
    g = np.empty(x.size)
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = h[i]
        if f0 is None:
            g[i] = (f(x + e) - f(x - e)) / (2.0 * h[i])
        else:
            g[i] = (f(x + e) - f0) / h[i]
    return g


def jacobian(fun, x, step=1e-5, floor=None, richardson=False) -> np.ndarray:
    """Central-difference derivatives of an array-valued function: ``J[..., i] = d fun / d x_i``.

    Examples
    --------
    >>> J = jacobian(lambda z: np.array([z[0] * z[1], z[1] ** 2]), np.array([2.0, 3.0]))
    >>> np.round(J, 8).tolist()
    [[3.0, 2.0], [0.0, 6.0]]
    """
    x = np.asarray(x, dtype=float)
    h = step_sizes(x, step, floor)
    cols = []
    for i in range(x.size):
        def central(s, i=i):
            e = np.zeros(x.size)
            e[i] = s
            return (np.asarray(fun(x + e), dtype=float) - np.asarray(fun(x - e), dtype=float)) / (2.0 * s)
        d = central(h[i])
        if richardson:
            d = (4.0 * central(0.5 * h[i]) - d) / 3.0
        cols.append(d)
    return np.stack(cols, axis=-1)


def hessian(f, x, step=1e-4, floor=None, richardson=False):
    """Value, central-difference gradient and Hessian of a scalar function.

    The diagonal uses f(x +- h_i e_i); an off-diagonal entry the symmetric formula
    [f(x+ei+ej) - f(x+ei) - f(x+ej) + 2 f(x) - f(x-ei) - f(x-ej) + f(x-ei-ej)] / (2 h_i h_j), exact for
    quadratics, O(h^2) like the four-point formula at half its cost: 1 + n^2 + n evaluations in all (twice
    that less one with ``richardson``).

    Returns
    -------
    (f(x), gradient, Hessian)

    Examples
    --------
    >>> f0, g, H = hessian(lambda z: z[0] ** 2 * z[1] + z[1] ** 3, np.array([1.0, 2.0]))
    >>> round(f0, 12), np.round(g, 6).tolist(), np.round(H, 6).tolist()
    (10.0, [4.0, 13.0], [[4.0, 2.0], [2.0, 12.0]])
    """
    x = np.asarray(x, dtype=float)
    h = step_sizes(x, step, floor)
    f0 = float(f(x))
    g, H = _second_differences(f, x, f0, h)
    if richardson:
        g2, H2 = _second_differences(f, x, f0, 0.5 * h)
        g, H = (4.0 * g2 - g) / 3.0, (4.0 * H2 - H) / 3.0
    return f0, g, H


def _second_differences(f, x, f0, h):
    n = x.size
    E = np.diag(h)
    fp = np.array([f(x + E[i]) for i in range(n)], dtype=float)
    fm = np.array([f(x - E[i]) for i in range(n)], dtype=float)
    g = (fp - fm) / (2.0 * h)
    H = np.diag((fp - 2.0 * f0 + fm) / (h * h))
    for i in range(n):
        for j in range(i):
            fpp = f(x + E[i] + E[j])
            fmm = f(x - E[i] - E[j])
            H[i, j] = H[j, i] = (fpp - fp[i] - fp[j] + 2.0 * f0 - fm[i] - fm[j] + fmm) / (2.0 * h[i] * h[j])
    return g, H


def hessian_from_gradient(grad, x, step=1e-4, floor=None, g0=None) -> np.ndarray:
    """Hessian from an analytic gradient, symmetrised: central differences (2 n gradient evaluations), or
    forward ones when ``g0``, the gradient at x, is given (n evaluations).

    Examples
    --------
    >>> A = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> np.round(hessian_from_gradient(lambda z: A @ z, np.zeros(2)), 8).tolist()
    [[2.0, 1.0], [1.0, 3.0]]
    """
    x = np.asarray(x, dtype=float)
    n = x.size
    h = step_sizes(x, step, floor)
    H = np.empty((n, n))
    for i in range(n):
        e = np.zeros(n)
        e[i] = h[i]
        if g0 is None:
            H[:, i] = (np.asarray(grad(x + e), dtype=float) - np.asarray(grad(x - e), dtype=float)) / (2.0 * h[i])
        else:
            H[:, i] = (np.asarray(grad(x + e), dtype=float) - g0) / h[i]
    return 0.5 * (H + H.T)
