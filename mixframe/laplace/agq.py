"""Adaptive Gauss-Hermite quadrature of the marginal likelihood for one scalar random-effect term.

Group j's integral over its spherical effect u_j ~ N(0, 1) is centred at the conditional mode u_hat_j and scaled
by s_j = h_j^(-1/2), h_j the curvature of the penalized log-likelihood there. With the standard-normal rule of
``numerics.quadrature`` (nodes z_k, weights w_k) and u_jk = u_hat_j + s_j z_k,

    log L_j = log s_j + logsumexp_k(log w_k + z_k^2 / 2 + l_j(u_jk) - u_jk^2 / 2),

l_j the group's conditional log-likelihood. One node (z = 0, w = 1) gives the Laplace approximation. The same
formula serves every row model (``node_loglik``); the cumulative-link kernel ``_ext.ordinal_laplace.agq_scalar``
evaluates it in compiled code from the same nodes and log weights.
"""
from __future__ import annotations

import numpy as np

from ..numerics.quadrature import gauss_hermite_log


def log_integrals(llg, U, nodes, log_weights, log_s):
    """Per-group log integrals from the group log-likelihoods ``llg`` (K, m) at the node effects ``U`` (K, m)."""
    nodes = np.asarray(nodes, dtype=float)
    terms = np.asarray(log_weights, dtype=float)[:, None] + 0.5 * nodes[:, None] ** 2 + llg - 0.5 * U * U
    mx = np.max(terms, axis=0)
    with np.errstate(invalid="ignore"):
        return mx + np.log(np.sum(np.exp(terms - mx), axis=0)) + log_s


def agq_loglik(model, term, lam, eta_other, u_hat, h, n_nodes=None, nodes=None, log_weights=None):
    """Adaptive Gauss-Hermite log marginal likelihood of one scalar term.

    Parameters
    ----------
    model : row model (``laplace.modes``) with ``node_loglik``
    term : RETerm (k = 1)
    lam : float
        Its relative factor.
    eta_other : (n,) the linear predictor without this term's part
    u_hat, h : (m,) the conditional modes and the curvatures of the penalized log-likelihood there
    n_nodes or (nodes, log_weights) : the standard-normal rule (``numerics.quadrature``)
    """
    if nodes is None:
        nodes, log_weights = gauss_hermite_log(n_nodes)
    nodes = np.asarray(nodes, dtype=float)
    codes = term.codes
    zcol = term.Z[:, 0]
    s = 1.0 / np.sqrt(h)
    U = u_hat[None, :] + s[None, :] * nodes[:, None]                       # (K, m) effects at the nodes
    eta = eta_other[None, :] + lam * zcol[None, :] * U[:, codes]           # (K, n), all nodes at once
    llg = model.node_loglik(eta, codes, term.n_levels)
    return float(np.sum(log_integrals(llg, U, nodes, log_weights, np.log(s))))
