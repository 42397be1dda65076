"""What every model kind needs from its penalized system, whatever factor stands behind it.

For random-effect terms with model matrix Z, relative covariance factor Lambda(theta), weights W and ``n_extra``
dense columns E (an LMM: the fixed-effects matrix X then the response y; PIRLS: the working response alone),
the penalized system is

    Omega(theta) = [ Lambda'Z'WZ Lambda + I    Lambda'Z'W E ]   =  L L',    L = [ L_Z   0  ]
                   [ E'WZ Lambda               E'W E        ]                   [ L_EZ  L_E ]

M = Lambda'Z'WZ Lambda + I is the random-effects block and L_Z its Cholesky factor. The cross-products
[Z E]'W[Z E] are installed once per set of weights (summed over rows here, or over the batches of a stream
elsewhere); a factor at a new theta then costs nothing in the number of rows.

:class:`PenalizedSystem` names the operations; :class:`mixframe.linalg.blocked.BlockedSystem` is the
implementation (the blocked Cholesky kernel), and the only code that reads the factor's arrays.
"""
from __future__ import annotations

from typing import ContextManager, NamedTuple, Protocol, runtime_checkable

import numpy as np

#: statuses of :meth:`PenalizedSystem.factor`
FACTOR_OK = 0
#: the block of the term with most levels (block 1 of the blocked factor) is not positive definite
FACTOR_BLOCK1 = 1
#: the block of the other terms (block 2) is not positive definite
FACTOR_BLOCK2 = 2
#: the dense columns' block is not positive definite (collinear fixed effects, or an exact fit)
FACTOR_FIXED = 3


class FactorError(ArithmeticError):
    """The penalized system is not positive definite at this theta."""


class CrossprodBlocks(NamedTuple):
    """The installed weighted cross-products of [Z E], block by block (read-only views).

    A11 (m0, k0, k0): Z_0'WZ_0 level by level (block diagonal); A21 (nnz, k0): Z_R'WZ_0 on the block-sparse
    pattern; A22 (q2, q2): Z_R'WZ_R; AE1 (ne, q1) and AER (ne, q2): E'WZ_0 and E'WZ_R; AEE (ne, ne): E'WE.
    """

    A11: np.ndarray
    A21: np.ndarray
    A22: np.ndarray
    AE1: np.ndarray
    AER: np.ndarray
    AEE: np.ndarray


@runtime_checkable
class PenalizedSystem(Protocol):
    """The penalized system of one design: cross-products in, factor at theta, and what the factor gives."""

    #: the terms, largest first; number of dense columns; sizes of the two random-effect blocks
    terms: list
    n_extra: int
    q1: int
    q2: int
    #: theta of the factor held, or None when there is none (or it failed)
    theta: np.ndarray | None

    # -- cross-products ------------------------------------------------------------------------------
    def crossprod(self, E, w=None, exact: bool = False) -> None:
        """Build the weighted cross-products of [Z E] from the rows (w: None or per-row weights)."""

    def install_crossprods(self, blocks, A21=None) -> None:
        """Install cross-products computed elsewhere (summed over the batches of a stream)."""

    def crossprod_blocks(self) -> CrossprodBlocks:
        """The installed cross-products, block by block."""

    def scalar_term_crossprods(self) -> list:
        """Per scalar term: (the diagonal of its Z_t'WZ_t block, its cross-products E'WZ_t (ne x levels))."""

    # -- the factor ----------------------------------------------------------------------------------
    def factor(self, theta) -> int:
        """Factor at theta: FACTOR_OK, or the status of the block that is not positive definite."""

    def is_factored_at(self, theta) -> bool:
        """True when the factor held is this system's own at exactly theta."""

    def blas_context(self) -> ContextManager:
        """The context dense work on this system's factor should run under (BLAS threads)."""

    def logdets(self) -> tuple:
        """(log det M, log det of the fixed-effects block R_X'R_X, penalized residual sum of squares)."""

    def solve(self) -> tuple:
        """(beta, u): the penalized least-squares solution (the last dense column is the response)."""

    def fixed_block(self) -> np.ndarray:
        """The lower factor of the fixed-effects block after the random effects are eliminated (R_X')."""

    # -- pieces of the inverse -----------------------------------------------------------------------
    def cond_cov_u(self) -> list:
        """Diagonal blocks of M^{-1} per term, (n_levels, k, k) each: the conditional covariances of the
        spherical effects u (up to the residual variance)."""

    def z_inverse_diagonals(self) -> tuple:
        """Scalar terms: (diag M^{-1}, the part the fixed effects add, the part the fixed effects and the
        response add) -- the diagonals of the random-effects block of the inverse of M, of Omega without
        its response column (M^{-1} + the second) and of Omega (M^{-1} + the third)."""
