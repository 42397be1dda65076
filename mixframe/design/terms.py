"""The frozen design objects every fitting routine works on, and the layout of theta.

A random-effect term is stored as MixedModels.jl stores it: int32 level codes (one per used row),
the sorted level labels, and a small dense model matrix ``Z`` of shape (n_obs, k) (its columns are
the term's effects, e.g. intercept and slope).  The full sparse Z is never formed.

theta holds, term after term (in ``Design.terms`` order), the lower triangle of each term's k x k
relative Cholesky factor Lambda_t in column-major order, as lme4 does: for k = 2, (l11, l21, l22).
The spherical effects u are stacked term-major, level-major, effect-minor; the random effects of
term t for level j are ``b[t][j] = Lambda_t @ u[t][j]``, with covariance ``scale**2 * Lambda_t
Lambda_t'`` (scale = sigma for an LMM, 1 for a GLMM without dispersion). The functions of this module
are the only code that knows this layout: bounds and start of theta, theta <-> Lambda, Lambda v,
u -> b, and Z b / Z Lambda u.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Design",
    "RETerm",
    "lambda_times",
    "lambdas_to_theta",
    "split_u",
    "theta_lower_bounds",
    "theta_start",
    "theta_to_lambdas",
    "u_to_b",
    "z_lambda_u",
    "z_times_b",
]


@dataclass(frozen=True, eq=False)
class RETerm:
    """One random-effect term ``(expr | group)``.

    Attributes
    ----------
    group : str
        Grouping factor name as the user wrote it (``"Subject"``, ``"batch:cask"``).
    codes : ndarray of int32, shape (n_obs,)
        Level index of every used row, 0-based, into ``levels``.
    levels : list of str
        Level labels (R order: sorted, or the categorical's own order). Interaction levels are
        the component labels joined by ``":"``.
    Z : ndarray of float64, shape (n_obs, k), C-contiguous
        The term's model matrix (one column per effect).
    col_names : list of str
        Effect names, R style: ``"(Intercept)"``, ``"Days"``.
    expr : str
        Left-hand side of the bar as written (``"1"``, ``"Days"``, ``"0 + Days"``).
    spec : Any
        What is needed to rebuild ``Z`` on new data (a formulaic ModelSpec, or None for ``1``).
    components : tuple of str
        Column names whose labels make up the grouping factor (``("batch", "cask")``).
    level_values : ndarray or None
        The levels as the grouping column's own values (integer or floating, of the column's dtype),
        one per label; None when the labels are the values (strings, factors) or for an interaction.
    """

    group: str
    codes: np.ndarray
    levels: list
    Z: np.ndarray
    col_names: list
    expr: str = "1"
    spec: Any = None
    components: tuple = ()
    level_values: Any = None

    @property
    def k(self) -> int:
        return self.Z.shape[1]

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def n_theta(self) -> int:
        """Number of covariance parameters: the lower triangle of the k x k relative factor."""
        return self.k * (self.k + 1) // 2

    @property
    def q(self) -> int:
        """Number of random effects (columns of this term's block of Z)."""
        return self.k * self.n_levels


@dataclass(frozen=True, eq=False)
class Design:
    """Everything a fit needs, as NumPy arrays, for the rows used (complete cases).

    Attributes
    ----------
    X : ndarray (n_obs, p) float64, C-contiguous
    x_names : list of str (R names: ``(Intercept)``, ``tempwarm``)
    y : ndarray (n_obs,) float64. Binomial: the success proportion; ordinal: 0-based category codes.
    weights : ndarray (n_obs,) float64 or None — prior weights (binomial cbind: the trials).
    offset : ndarray (n_obs,) float64 or None
    terms : list of RETerm, ordered by number of levels, largest first (the kernels rely on this).
    used : ndarray (n_total,) bool — which input rows are used (False: dropped for missing values).
    n_total : int — rows in the input.
    response : str — response expression as written (``"rating"``, ``"cbind(incidence, size - incidence)"``).
    response_levels : list or None — level labels of a factor/ordinal response.
    fixed_spec : Any — formulaic ModelSpec of the fixed part (rebuilds X on new data).
    formula : str — the formula as given.
    fixed_formula : str — the fixed part (random bars stripped).
    extra : dict — plain data about the build (kind, family, levels, columns, missing counts).
    spec : DesignSpec or None — what encodes other rows as these were (:mod:`mixframe.design.spec`).
    """

    X: np.ndarray
    x_names: list
    y: np.ndarray
    weights: np.ndarray | None
    offset: np.ndarray | None
    terms: list
    used: np.ndarray
    n_total: int
    response: str
    response_levels: list | None = None
    fixed_spec: Any = None
    formula: str = ""
    fixed_formula: str = ""
    extra: dict = field(default_factory=dict)
    spec: Any = None

    @property
    def n_obs(self) -> int:
        return self.X.shape[0]

    @property
    def p(self) -> int:
        return self.X.shape[1]

    @property
    def n_theta(self) -> int:
        return sum(t.n_theta for t in self.terms)

    @property
    def q(self) -> int:
        return sum(t.q for t in self.terms)

    def theta_lower_bounds(self) -> np.ndarray:
        """0 for diagonal elements of each relative factor, -inf for off-diagonal ones."""
        return theta_lower_bounds(self.terms)

    def theta_start(self) -> np.ndarray:
        """lme4's start: identity relative factors."""
        return theta_start(self.terms)


# ---------------------------------------------------------------------------------- the theta layout
@functools.lru_cache(maxsize=64)
def _tri(k: int):
    """(rows, cols) of a k x k lower triangle in column-major order: theta's order within a term."""
    cols, rows = np.triu_indices(k)   # row-major upper triangle of the transpose = column-major lower
    rows.flags.writeable = False
    cols.flags.writeable = False
    return rows, cols


def theta_lower_bounds(terms) -> np.ndarray:
    """0 for the diagonal elements of each relative factor, -inf for the off-diagonal ones.

    Examples
    --------
    >>> t = RETerm("g", np.zeros(0, dtype=np.int32), ["a", "b"], np.zeros((0, 2)), ["(Intercept)", "x"])
    >>> theta_lower_bounds([t]).tolist()
    [0.0, -inf, 0.0]
    """
    return _diagonal_pattern(tuple(t.k for t in terms), 0.0, -np.inf).copy()


def theta_start(terms) -> np.ndarray:
    """lme4's start: identity relative factors.

    Examples
    --------
    >>> t = RETerm("g", np.zeros(0, dtype=np.int32), ["a", "b"], np.zeros((0, 2)), ["(Intercept)", "x"])
    >>> theta_start([t]).tolist()
    [1.0, 0.0, 1.0]
    """
    return _diagonal_pattern(tuple(t.k for t in terms), 1.0, 0.0).copy()


@functools.lru_cache(maxsize=256)
def _diagonal_pattern(ks: tuple, on: float, off: float) -> np.ndarray:
    """theta's layout for terms of sizes ``ks``: ``on`` at the diagonal elements, ``off`` elsewhere (read-only)."""
    out = [np.where(rows == cols, on, off) for rows, cols in map(_tri, ks)]
    values = np.concatenate(out) if out else np.zeros(0)
    values.flags.writeable = False
    return values


def theta_to_lambdas(terms, theta) -> list[np.ndarray]:
    """Per-term lower-triangular relative factors (k x k) from the stacked theta vector.

    Examples
    --------
    >>> t = RETerm("g", np.zeros(0, dtype=np.int32), ["a", "b"], np.zeros((0, 2)), ["(Intercept)", "x"])
    >>> theta_to_lambdas([t], [1.0, 0.5, 2.0])[0].tolist()
    [[1.0, 0.0], [0.5, 2.0]]
    """
    out = []
    pos = 0
    theta = np.asarray(theta, dtype=float)
    for t in terms:
        k = t.k
        lam = np.zeros((k, k))
        for j in range(k):              # column-major lower triangle (a loop: k is small)
            for i in range(j, k):
                lam[i, j] = theta[pos]
                pos += 1
        out.append(lam)
    return out


def lambdas_to_theta(lambdas) -> np.ndarray:
    """The stacked theta vector of per-term relative factors (the inverse of :func:`theta_to_lambdas`)."""
    out = []
    for lam in lambdas:
        lam = np.asarray(lam, dtype=float)
        rows, cols = _tri(lam.shape[0])
        out.append(lam[rows, cols])
    return np.concatenate(out) if out else np.zeros(0)


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


def lambda_times(terms, theta, v) -> np.ndarray:
    """Lambda v for a stacked vector v of length q (Lambda block-diagonal: one Lambda_t per level)."""
    return np.concatenate([b.ravel() for b in u_to_b(terms, theta, v)]) if terms else np.zeros(0)


def z_times_b(terms, bs) -> np.ndarray:
    """The random-effect contribution to the linear predictor, sum_t rowsum(Z_t * b_t[codes_t])."""
    n = terms[0].Z.shape[0] if terms else 0
    out = np.zeros(n)
    for t, b in zip(terms, bs):
        b = np.asarray(b, dtype=float).reshape(t.n_levels, t.k)
        for c in range(t.k):        # one gather of a level-sized column per effect, no (n, k) temporary
            out += t.Z[:, c] * np.ascontiguousarray(b[:, c]).take(t.codes)
    return out


def z_lambda_u(terms, theta, u) -> np.ndarray:
    """Z Lambda u: the random-effect part of the linear predictor from the spherical effects.

    Examples
    --------
    >>> t = RETerm("g", np.array([0, 1, 1], dtype=np.int32), ["a", "b"], np.ones((3, 1)), ["(Intercept)"])
    >>> z_lambda_u([t], [2.0], np.array([1.0, -1.0])).tolist()
    [2.0, -2.0, -2.0]
    """
    return z_times_b(terms, u_to_b(terms, theta, u))
