"""The blocked penalized system shared by every model kind.

``BlockedSystem(terms, n_extra)`` builds, once, the structure of

    [Lambda' Z' W Z Lambda + I,  Lambda' Z' W E]
    [E' W Z Lambda,              E' W E        ]

for the random-effect terms of a design (largest term first) and ``n_extra`` dense columns E (for an LMM:
the fixed-effects matrix X and the response y; for PIRLS: the working response alone). ``crossprod(E, w)``
rebuilds the weighted cross-products in one O(n) pass (compiled); ``factor(theta)`` refactors at a new theta
in time independent of n. The factor gives log-determinants, the penalized residual sum of squares, the
solution (beta, u), the conditional covariance blocks of u and the diagonals of the inverse that the gradient
of the profiled deviance needs (:class:`mixframe.linalg.system.PenalizedSystem` names these operations).

This module is the only Python code that touches the compiled kernel (``mixframe._ext.blocked``).
"""
from __future__ import annotations

import contextlib
import functools

import numpy as np
from scipy.linalg.lapack import dtrtri

from .._ext.blocked import BlockedCholesky
from ..design.terms import theta_to_lambdas
from .system import CrossprodBlocks, FactorError

__all__ = ["BlockedSystem", "CrossprodBlocks", "FactorError", "lambdas_for"]

# Below this size of the dense block, BLAS runs on one thread: threads cost more than they save on small
# factorizations, and far more on a machine whose cores are busy.
SINGLE_THREAD_BELOW = 2500
#: ... unless the dense Schur complement (q2^2 q1 multiply-adds) is at least this much work
DENSE_THREADED_FLOPS = 2e9
_BLAS = []       # the BLAS library controllers (threadpoolctl), found once
_DEPTH = [0]     # nesting depth of the one-thread sections


class _OneBlasThread:
    """Run BLAS on one thread inside the block (cheap to enter: two ctypes calls; nested uses are free)."""

    def __enter__(self):
        if _DEPTH[0] == 0:
            for lib in _BLAS[0]:
                lib["saved"] = lib["ctl"].num_threads
                lib["ctl"].set_num_threads(1)
        _DEPTH[0] += 1
        return self

    def __exit__(self, *exc):
        _DEPTH[0] -= 1
        if _DEPTH[0] == 0:
            for lib in _BLAS[0]:
                lib["ctl"].set_num_threads(lib["saved"])
        return False


def _one_blas_thread():
    """A context manager limiting BLAS to one thread (the libraries are looked up once per process)."""
    if not _BLAS:
        import scipy.linalg  # noqa: F401  (loads the BLAS library the controller must see)
        from threadpoolctl import ThreadpoolController

        _BLAS.append([{"ctl": c, "saved": None}
                      for c in ThreadpoolController().select(user_api="blas").lib_controllers])
    return _OneBlasThread()


@functools.lru_cache(maxsize=256)
def _lambda_layout(ks: tuple):
    """For terms of sizes ``ks``: the start of each term's k x k relative factor in the flat Lambda workspace
    (and its end), and the position there of each theta (read-only int64 arrays, made once per shape)."""
    offsets, idx = [0], []
    for k in ks:
        start = offsets[-1]
        idx.extend(start + i * k + j for j in range(k) for i in range(j, k))
        offsets.append(start + k * k)
    out = np.array(offsets, dtype=np.int64), np.array(idx, dtype=np.int64)
    for a in out:
        a.flags.writeable = False
    return out


class BlockedSystem:
    """Structure and workspace of the blocked Cholesky factor for a list of random-effect terms.

    Parameters
    ----------
    terms : list of RETerm
        Ordered by number of levels, largest first (``Design.terms`` is).
    n_extra : int
        Number of dense columns appended after Z (X columns then one response column).
    """

    def __init__(self, terms, n_extra: int):
        if not terms:
            raise ValueError("a blocked system needs at least one random-effect term")
        t0, rterms = terms[0], list(terms[1:])
        self.n_obs = n = t0.Z.shape[0]
        self.code0 = np.ascontiguousarray(t0.codes, dtype=np.int32)
        self.Z0 = np.ascontiguousarray(t0.Z, dtype=np.float64)
        self.rcodes = np.ascontiguousarray(
            np.stack([t.codes for t in rterms], axis=1) if rterms else np.zeros((n, 0)), dtype=np.int32)
        self.ZR = np.ascontiguousarray(
            np.concatenate([t.Z for t in rterms], axis=1) if rterms else np.zeros((n, 0)), dtype=np.float64)
        self.zr_off = np.zeros(len(rterms), dtype=np.int32)
        if rterms:
            self.zr_off[1:] = np.cumsum([t.k for t in rterms])[:-1]
        self._set_structure(terms, n_extra)
        a21_ptr, a21_row, self.pos = self._pattern(self.r_off, self.r_k)
        self._set_pattern(a21_ptr, a21_row)

    def _set_structure(self, terms, n_extra: int) -> None:
        """Block sizes and the theta -> Lambda index maps (everything that depends on the terms' shapes only)."""
        self.terms = list(terms)
        self.n_extra = int(n_extra)
        t0, rterms = self.terms[0], self.terms[1:]
        self.k0, self.m0 = t0.k, t0.n_levels
        self.r_k = np.array([t.k for t in rterms], dtype=np.int32)
        self.r_m = np.array([t.n_levels for t in rterms], dtype=np.int32)
        self.r_off = np.zeros(len(rterms), dtype=np.int32)
        if rterms:
            self.r_off[1:] = np.cumsum(self.r_k * self.r_m)[:-1]
        self.q1 = self.k0 * self.m0
        self.q2 = int(np.sum(self.r_k * self.r_m)) if rterms else 0
        self._lam_offsets, self._theta_idx = _lambda_layout(tuple(t.k for t in self.terms))
        self._lam_all = np.zeros(int(self._lam_offsets[-1]))
        o = int(self._lam_offsets[1])
        self._lam0, self._lamR = self._lam_all[:o], self._lam_all[o:]     # contiguous views
        self._one_thread = 0 < self.q2 < SINGLE_THREAD_BELOW
        self.theta = None
        self._theta_key = None
        self._P = None        # workspace of inverse_m22 and the factor (update count) it belongs to
        self._p_for = -1
        self._factor_id = -1

    def _set_pattern(self, a21_ptr, a21_row) -> None:
        """Install the block-sparse pattern of Z_R' W Z_0 and allocate the compiled factor."""
        self.a21_ptr = np.ascontiguousarray(a21_ptr, dtype=np.int32)
        self.a21_row = np.ascontiguousarray(a21_row, dtype=np.int32)
        self.chol = BlockedCholesky(self.k0, self.m0, self.a21_ptr, self.a21_row, self.r_off, self.r_k,
                                    self.r_m, self.n_extra)
        self.chol.set_theta_positions(self._theta_idx.astype(np.int32))
        self._blocks = None   # views of the cross-products, made on first use
        # a dense Schur complement over many levels of term 0 is a large dsyrk even when block 2 is small
        if self.chol.dense_s and self.q2 * self.q2 * self.q1 >= DENSE_THREADED_FLOPS:
            self._one_thread = False

    def _pattern(self, r_off, r_k):
        """Block-sparse pattern of Z_R' W Z_0: per level of term 0, the sorted scalar rows of block 2."""
        n, nr = self.n_obs, len(r_k)
        if nr == 0:
            return (np.zeros(self.m0 + 1, dtype=np.int32), np.zeros(0, dtype=np.int32),
                    np.zeros((n, 0), dtype=np.int32))
        q2 = max(self.q2, 1)
        code0 = self.code0.astype(np.int64)
        keys = np.concatenate([code0 * q2 + r_off[t] + self.rcodes[:, t].astype(np.int64) * r_k[t]
                               for t in range(nr)])
        uniq, inv = np.unique(keys, return_inverse=True)
        rows0 = uniq % q2
        term_of = np.searchsorted(r_off, rows0, side="right") - 1
        sizes = r_k[term_of].astype(np.int64)
        start = np.zeros(len(uniq), dtype=np.int64)
        start[1:] = np.cumsum(sizes)[:-1]
        within = np.arange(int(sizes.sum())) - np.repeat(start, sizes)
        a21_row = (np.repeat(rows0, sizes) + within).astype(np.int32)
        cols = np.repeat(uniq // q2, sizes)
        a21_ptr = np.searchsorted(cols, np.arange(self.m0 + 1)).astype(np.int32)
        pos = start[inv].reshape(nr, n).T
        return a21_ptr, a21_row, np.ascontiguousarray(pos, dtype=np.int32)

    # ------------------------------------------------------------------
    def crossprod(self, E, w=None, exact: bool = False):
        """Rebuild the weighted cross-products of [Z E] (E: (n, n_extra); w: None or (n,) weights).

        With ``exact`` every cell is summed exactly and rounded once (:mod:`mixframe.linalg.crossprod`), so the
        result does not depend on the order of the rows and equals the cross-products of the same rows
        summed batch by batch. The plain one-pass sums (the default) serve the iterations of PIRLS.
        """
        E = np.ascontiguousarray(E, dtype=np.float64)
        if E.ndim == 1:
            E = E[:, None]
        wv = np.empty(0) if w is None else np.ascontiguousarray(w, dtype=np.float64)
        if exact:
            self._crossprod_exact(E, None if w is None else wv)
        else:
            self.chol.set_crossprod(self.code0, self.Z0, self.rcodes, self.ZR, self.zr_off, self.pos, E, wv)
        self.theta = None

    def _crossprod_exact(self, E, w):
        from .crossprod import Crossprods

        acc = Crossprods(self.terms, self.n_extra, weighted=w is not None, term0_pairs=False)
        nr = len(self.terms) - 1
        codes = [self.code0] + [np.ascontiguousarray(self.rcodes[:, t]) for t in range(nr)]
        Zs = [self.Z0] + [np.ascontiguousarray(self.ZR[:, o:o + k]) for o, k in zip(self.zr_off, self.r_k)]
        k0 = self.k0
        pos = [np.ascontiguousarray(self.pos[:, t], dtype=np.int64) * k0 for t in range(nr)]
        if acc.count:
            cells = np.asarray(self.chol.A21)
            cells[...] = 0.0
        else:
            from .._ext.crossprod import cell_values, new_cells

            cells = new_cells(self.chol.nnz * k0)
        acc.add(codes, Zs, E, w, a21=(pos, cells) if nr else None)
        if not acc.count and nr:
            values = np.empty(cells.shape[0])
            cell_values(cells, values)
            cells = values.reshape(-1, k0)
        self.install_crossprods(acc, cells if nr else None)
        self.log_w = acc.log_weights()

    def install_crossprods(self, blocks, A21=None) -> None:
        """Install cross-products computed elsewhere (e.g. summed over the batches of a stream): a
        :class:`mixframe.linalg.crossprod.Crossprods` (filled into the factor's arrays in place) or a dict with
        A11, A22, AE1, AER, AEE, and A21 on this system's pattern."""
        c = self.chol
        names = ("A11", "A22", "AE1", "AER", "AEE")
        arrays = {name: np.asarray(getattr(c, name)) for name in names}
        if hasattr(blocks, "blocks"):
            blocks.blocks(target=arrays)
        else:
            for name in names:
                if arrays[name].size:
                    arrays[name][...] = blocks[name]
        if A21 is not None and c.nnz:
            A = np.asarray(c.A21)
            if not np.shares_memory(A, A21):
                A[...] = A21
        self.theta = None

    def set_crossprod_blocks(self, A11, A21, A22, AE1, AER, AEE):
        """Install cross-products given block by block."""
        self.install_crossprods({"A11": A11, "A22": A22, "AE1": AE1, "AER": AER, "AEE": AEE}, A21)

    def lambdas_flat(self, theta):
        """(Lambda_0, Lambda_R) at theta, flattened as the kernel takes them (views of one workspace)."""
        self._lam_all[self._theta_idx] = theta
        return self._lam0, self._lamR

    def blas_context(self):
        """A context manager under which this system's dense factorizations should run (one BLAS thread
        for small dense blocks)."""
        if self._one_thread:
            return _one_blas_thread()
        return contextlib.nullcontext()

    def factor(self, theta) -> int:
        """Factor at theta; returns 0 or a positive status when a block is not positive definite."""
        theta = np.array(theta, dtype=np.float64)      # a copy: the caller may reuse its array
        if self._one_thread:
            with _one_blas_thread():
                status = self.chol.update_theta(theta)
        else:
            status = self.chol.update_theta(theta)
        if status == 0:
            self.theta, self._theta_key = theta, theta.tobytes()
        else:
            self.theta = self._theta_key = None
        self._factor_id = self.chol.n_factors
        return status

    def is_factored_at(self, theta) -> bool:
        """True when the current factor is this system's own factor at exactly theta (no refactor needed)."""
        return (self.theta is not None and self._factor_id == self.chol.n_factors
                and np.asarray(theta, dtype=np.float64).tobytes() == self._theta_key)

    def inverse_m22(self):
        """(L22 L22')^{-1} for the current factor, lower triangle only (the rest is not part of it); computed
        once per factor and kept until the next one."""
        if self._p_for != self.chol.n_factors:
            if self._P is None:
                self._P = np.empty((self.q2, self.q2))
            with self.blas_context():
                info = self.chol.inverse_l22(self._P)
            if info != 0:
                raise FactorError("the dense block of the factor is singular")
            self._p_for = self.chol.n_factors
        return self._P

    def logdets(self):
        """(log det(Lambda'Z'WZLambda + I), log det of the fixed-effects block, penalized RSS)."""
        return self.chol.logdets()

    def solve(self):
        """(beta, u): the penalized least-squares solution for the current factor."""
        u = np.zeros(self.q1 + self.q2)
        beta = np.zeros(self.n_extra - 1)
        self.chol.solve(u, beta)
        return beta, u

    # ------------------------------------------------------------------
    def crossprod_blocks(self) -> CrossprodBlocks:
        """The installed cross-products of [Z E], block by block, as read-only views of the factor's arrays
        (they follow every later :meth:`crossprod` or :meth:`install_crossprods`)."""
        if self._blocks is None:
            views = []
            for name in CrossprodBlocks._fields:
                a = np.asarray(getattr(self.chol, name)).view()
                a.flags.writeable = False
                views.append(a)
            self._blocks = CrossprodBlocks(*views)
        return self._blocks

    def scalar_term_crossprods(self):
        """Per term, all terms scalar: (a, C) with a (n_levels,) the diagonal of the term's Z_t'WZ_t block and
        C (n_extra, n_levels) its cross-products E'WZ_t."""
        if self.k0 != 1 or np.any(self.r_k != 1):
            raise ValueError("scalar_term_crossprods needs scalar random-effect terms")
        c = self.chol
        parts = [(np.asarray(c.A11)[:, 0, 0], np.asarray(c.AE1))]
        if self.q2:
            a22 = np.diagonal(np.asarray(c.A22))
            aer = np.asarray(c.AER)
            for off, m in zip(self.r_off, self.r_m):
                parts.append((a22[off:off + m], aer[:, off:off + m]))
        return parts

    def extra_factor(self):
        """L_E, the lower Cholesky factor of the dense columns' block once the random effects are eliminated
        (n_extra x n_extra; the fixed effects first, the response last)."""
        out = np.empty((self.n_extra, self.n_extra))
        self.chol.fixed_factor(out)
        return out

    def dense_factor(self):
        """L22, the lower Cholesky factor of the dense block of the random effects (block 2: every term after
        the first) once the first term is eliminated, q2 x q2, for the current factor."""
        out = np.empty((self.q2, self.q2))
        self.chol.dense_factor(out)
        return np.tril(out)

    def fixed_block(self):
        """The lower-triangular factor of the fixed-effects block (RX' in lme4's notation), p x p."""
        p = self.n_extra - 1
        return self.extra_factor()[:p, :p].copy()

    def z_inverse_diagonals(self):
        """For scalar random-effect terms, at the current factor: (d_m, d_fixed, d_full), each of length
        q1 + q2, with d_m the diagonal of M^{-1} (M = Lambda'Z'WZ Lambda + I), and d_m + d_fixed and d_m + d_full
        the diagonals of the random-effects block of the inverse of the system without its response column and
        of the whole system.

        With V = L_Z^{-T} L_EZ' (compiled, :meth:`BlockedCholesky.z_inverse_parts`), the random-effects block
        of the inverse of the whole system is M^{-1} + V (L_E L_E')^{-1} V', and of the system without the
        response the same with the first p columns of V and the leading p x p part of L_E."""
        with self.blas_context():
            q = self.q1 + self.q2
            diag = np.empty(q)
            V = np.empty((q, self.n_extra))
            P = self.inverse_m22() if self.q2 else np.zeros((0, 0))
            self.chol.z_inverse_parts(P, diag, V)
            L33 = np.tril(self.extra_factor())
            Lx_inv, _ = dtrtri(L33, lower=1)
            G_full = V @ np.tril(Lx_inv).T
            extra_full = np.einsum("ij,ij->i", G_full, G_full)
            p = self.n_extra - 1
            if p:
                Lp_inv, _ = dtrtri(L33[:p, :p].copy(), lower=1)
                G_p = V[:, :p] @ np.tril(Lp_inv).T
                extra_p = np.einsum("ij,ij->i", G_p, G_p)
            else:
                extra_p = np.zeros_like(extra_full)
        return diag, extra_p, extra_full

    def cond_cov_u(self):
        """Diagonal blocks of (L_Z L_Z')^{-1} = M^{-1} per term: list of (n_levels, k, k) arrays.

        These are the conditional covariances of the spherical effects u given beta (up to the scale).
        Computed in the kernel (:meth:`BlockedCholesky.cond_cov_blocks`) from (L22 L22')^{-1}, which is kept
        for the factor."""
        with self.blas_context():
            P = self.inverse_m22() if self.q2 else np.zeros((0, 0))
            out0 = np.empty((self.m0, self.k0, self.k0))
            sizes = (self.r_m * self.r_k * self.r_k).astype(np.int64)
            out_r = np.empty(int(sizes.sum()))
            self.chol.cond_cov_blocks(P, out0, out_r)
        outs, off = [out0], 0
        for m, k, size in zip(self.r_m, self.r_k, sizes):
            outs.append(out_r[off:off + size].reshape(int(m), int(k), int(k)))
            off += size
        return outs


def lambdas_for(terms, theta):
    """Per-term relative factors at theta (convenience re-export)."""
    return theta_to_lambdas(terms, theta)
