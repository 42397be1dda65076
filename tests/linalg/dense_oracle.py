"""Dense NumPy oracles for the penalized system: random terms, Z, Lambda(theta) and the whole matrix."""
import numpy as np
from scipy.linalg import block_diag

from mixframe.design.terms import theta_to_lambdas
from mixframe.design.terms import RETerm


def make_term(rng, n, m, k, name):
    codes = rng.integers(0, m, size=n).astype(np.int32)
    codes[:m] = np.arange(m)  # every level present
    Z = np.ones((n, k))
    if k > 1:
        Z[:, 1:] = rng.normal(size=(n, k - 1))
    return RETerm(group=name, codes=codes, levels=[str(i) for i in range(m)], Z=np.ascontiguousarray(Z),
                  col_names=["(Intercept)"] + [f"x{i}" for i in range(1, k)])


def random_theta(rng, terms, off_scale):
    """A random theta for ``terms``: diagonal entries uniform on [0.3, 1.5], the others normal with SD
    ``off_scale`` (in the θ layout's order, column by column)."""
    return np.concatenate([
        np.array([rng.uniform(0.3, 1.5) if i == j else rng.normal(scale=off_scale)
                  for j in range(t.k) for i in range(j, t.k)]) for t in terms])


def dense_Z(terms, n):
    blocks = []
    for t in terms:
        Zt = np.zeros((n, t.q))
        for j in range(t.k):
            Zt[np.arange(n), t.codes * t.k + j] = t.Z[:, j]
        blocks.append(Zt)
    return np.hstack(blocks)


def dense_lambda(terms, theta):
    lams = theta_to_lambdas(terms, theta)
    return block_diag(*[np.kron(np.eye(t.n_levels), lam) for t, lam in zip(terms, lams)])


def dense_system(terms, X, y, w, theta):
    """The penalized system [Lambda'Z'WZ Lambda + I, Lambda'Z'W E; E'WZ Lambda, E'WE] for E = [X y], whole.

    Returns (Omega, q): the (q + p + 1)-square matrix and the number of random effects q."""
    n = X.shape[0]
    ZL = dense_Z(terms, n) @ dense_lambda(terms, theta)
    E = np.column_stack([X, y])
    wv = np.ones(n) if w is None else w
    q = ZL.shape[1]
    ZE = np.column_stack([ZL, E])
    Omega = ZE.T @ (ZE * wv[:, None])
    Omega[:q, :q] += np.eye(q)
    return Omega, q
