"""Analytic gradient of the Laplace deviance for GLMMs with a canonical link and scalar random-effect terms.

With eta = offset + X beta + Z Lambda u, e = wt (y - mu), Fisher weights w = wt dmu/deta (the observed
information too, the link being canonical) and M = Lambda'Z'WZ Lambda + I, the Laplace deviance is

    D(theta, beta) = g(u_hat) + log det M(u_hat),     g(u) = sum_i dev_i(eta_i) + u'u,

with u_hat the conditional mode (Lambda'Z'e = u_hat). g is stationary in u at u_hat, so only the log-determinant
needs the sensitivity of the mode, d u_hat / d phi = M^{-1} (Lambda_phi'Z'e - Lambda'Z'W deta_phi), where
deta_phi = X_phi + Z Lambda_phi u_hat is the direct change of eta. Writing h_i for the diagonal of
Z Lambda M^{-1} Lambda'Z' (a leverage), a_i = h_i dw_i/deta_i, c = M^{-1} Lambda'Z'a and s = a - W Z Lambda c,

    dD/dbeta    = X'(s - 2e)
    dD/dtheta_k = (s - 2e)' Z E_k u_hat + (Z E_k c)' e + 2 (q_k - tr_k(M^{-1})) / theta_k

for a scalar term k (Lambda_k = E_k, the indicator of the term's block; the last part is 0 at theta_k = 0).
Everything comes from the factor PIRLS leaves at the mode: the diagonal of M^{-1} and the entries of M^{-1} on
the pattern of Z'Z, from the inverse of the dense block-2 factor (one dpotri) and the sparse block-1 columns.
A gradient costs about one more dense inversion of block 2 than a deviance evaluation.
"""
from __future__ import annotations

import numpy as np

#: block-1 levels x block-2 rows above which the dense M^{-1}_{12} is not formed (the gradient is not offered)
MAX_CROSS_CELLS = 20_000_000


def gradient_available(obj) -> bool:
    """True when the analytic Laplace gradient applies to this objective (canonical binomial/Poisson, no
    dispersion parameter, every term scalar, a block-2 inverse of moderate size)."""
    fam = obj.family
    sys = obj.sys_u
    return (fam.canonical and not fam.has_dispersion and fam.name in ("binomial", "poisson")
            and all(t.k == 1 for t in obj.terms) and len(obj.terms) <= 65
            and sys.m0 * max(sys.q2, 1) <= MAX_CROSS_CELLS)


def _dw_deta(fam, mu, wt):
    """Derivative of the Fisher weight in eta for the canonical links: wt d^2 mu / d eta^2."""
    if fam.name == "binomial":
        return wt * mu * (1.0 - mu) * (1.0 - 2.0 * mu)
    return wt * mu                                  # poisson, log link


def laplace_gradient(obj, theta, beta, state=None) -> np.ndarray:
    """Gradient of the Laplace deviance over (theta, beta) at the mode of the last ``obj.laplace(theta, beta)``
    call (the u-system still holds the factor at that mode, as it does right after the call)."""
    fast = obj._fast()
    n_theta = len(theta)
    r = np.empty(obj.n)
    g_theta = np.empty(n_theta)
    with obj.sys_u.blas_context():
        info = fast.scalar_gradient(1.0, r, g_theta)
    if info != 0:
        raise np.linalg.LinAlgError("the block-2 factor is singular")
    return np.concatenate([g_theta, obj.X.T @ r])


def mode_sensitivity(obj) -> np.ndarray:
    """d u_hat / d (theta, beta), one row per parameter, at the mode of the last ``laplace_gradient`` call.

    From the mode's equation Lambda'Z'e(eta) = u: M du/dphi = Lambda_phi'Z'e - Lambda'Z'W deta_phi. Used to
    predict the next mode (u_hat + J' dx) so that PIRLS starts within O(|dx|^2) of it.
    """
    J = np.zeros((len(obj.terms) + obj.p, obj.q))
    obj._fast().mode_sensitivity(obj.X, J)
    return J
