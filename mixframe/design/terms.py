"""The frozen design objects every fitting routine works on.

A random-effect term is stored as MixedModels.jl stores it: int32 level codes (one per used row),
the sorted level labels, and a small dense model matrix ``Z`` of shape (n_obs, k) (its columns are
the term's effects, e.g. intercept and slope).  The full sparse Z is never formed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


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
    """

    group: str
    codes: np.ndarray
    levels: list
    Z: np.ndarray
    col_names: list
    expr: str = "1"
    spec: Any = None
    components: tuple = ()

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
        out = []
        for t in self.terms:
            for j in range(t.k):          # column-major lower triangle, as lme4
                for i in range(j, t.k):
                    out.append(0.0 if i == j else -np.inf)
        return np.asarray(out)

    def theta_start(self) -> np.ndarray:
        """lme4's start: identity relative factors."""
        out = []
        for t in self.terms:
            for j in range(t.k):
                for i in range(j, t.k):
                    out.append(1.0 if i == j else 0.0)
        return np.asarray(out)
