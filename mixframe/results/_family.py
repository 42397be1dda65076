"""The few family functions the results need: inverse link, variance, deviance residuals, ordinal CDFs.

A GLMM fit carries its own family object in ``raw.extra["family_obj"]`` (methods ``linkinv``,
``variance``, ``dev_resid``); :func:`family_of` returns it.  LMMs, and GLMM records without that
object, get the small value object below, built from the family and link names.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

_LINKINV = {
    "identity": lambda eta: eta,
    "log": np.exp,
    "logit": special.expit,
    "probit": stats.norm.cdf,
    "cloglog": lambda eta: -np.expm1(-np.exp(eta)),
    "inverse": lambda eta: 1.0 / eta,
    "sqrt": lambda eta: eta * eta,
    "inverse_squared": lambda eta: 1.0 / np.sqrt(eta),
}

_CDF = {
    "logit": special.expit,
    "probit": stats.norm.cdf,
    "cloglog": lambda x: -np.expm1(-np.exp(x)),
    "loglog": lambda x: np.exp(-np.exp(-x)),
    "cauchit": stats.cauchy.cdf,
}


def _ylogy(y, mu):
    """y * log(y / mu) with the limit 0 at y = 0."""
    y = np.asarray(y, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = y * np.log(y / mu)
    return np.where(y > 0, out, 0.0)


@dataclass(frozen=True)
class NamedFamily:
    """A response family given by name, with the functions augment and predict use.

    Parameters
    ----------
    family : str
        ``"gaussian"``, ``"binomial"``, ``"poisson"``, ``"gamma"``, ``"inverse_gaussian"`` or
        ``"negative_binomial"``.
    link : str
        Link name, e.g. ``"logit"``.
    nb_size : float, optional
        NB2 size θ (Var = μ + μ²/θ), for the negative binomial only.

    Examples
    --------
    >>> fam = NamedFamily("poisson", "log")
    >>> float(fam.linkinv(np.array([0.0]))[0])
    1.0
    """

    family: str
    link: str
    nb_size: float | None = None

    def linkinv(self, eta):
        if self.link not in _LINKINV:
            raise ValueError(f"unknown link '{self.link}'")
        return _LINKINV[self.link](np.asarray(eta, dtype=float))

    def variance(self, mu, disp: float | None = None):
        """V(μ); ``disp`` is the NB2 size θ for the negative binomial (else unused)."""
        mu = np.asarray(mu, dtype=float)
        fam = self.family
        if fam == "gaussian":
            return np.ones_like(mu)
        if fam == "binomial":
            return mu * (1.0 - mu)
        if fam == "poisson":
            return mu
        if fam == "gamma":
            return mu * mu
        if fam == "inverse_gaussian":
            return mu ** 3
        if fam == "negative_binomial":
            return mu + mu * mu / (self.nb_size if disp is None else disp)
        raise ValueError(f"unknown family '{fam}'")

    def dev_resid(self, y, mu, wt, disp: float | None = None):
        """Squared deviance residuals (unit deviance times prior weight)."""
        y = np.asarray(y, dtype=float)
        mu = np.asarray(mu, dtype=float)
        wt = np.asarray(wt, dtype=float)
        fam = self.family
        if fam == "gaussian":
            return wt * (y - mu) ** 2
        if fam == "binomial":
            return 2.0 * wt * (_ylogy(y, mu) + _ylogy(1.0 - y, 1.0 - mu))
        if fam == "poisson":
            return 2.0 * wt * (_ylogy(y, mu) - (y - mu))
        if fam == "gamma":
            return -2.0 * wt * (np.log(y / mu) - (y - mu) / mu)
        if fam == "inverse_gaussian":
            return wt * (y - mu) ** 2 / (y * mu * mu)
        if fam == "negative_binomial":
            th = self.nb_size if disp is None else disp
            return 2.0 * wt * (_ylogy(y, mu) - (y + th) * np.log((y + th) / (mu + th)))
        raise ValueError(f"unknown family '{fam}'")


def with_dispersion(method, *args, disp=None):
    """Call a family method with the dispersion as last argument when the method takes one."""
    if disp is None:
        return method(*args)
    try:
        return method(*args, disp)
    except TypeError:
        return method(*args)


def family_of(raw):
    """The family object of a fit: the GLMM's own one, else one built from the names."""
    if raw.kind == "glmm" and raw.extra.get("family_obj") is not None:
        return raw.extra["family_obj"]
    if raw.kind == "lmm":
        return NamedFamily("gaussian", "identity")
    nb_size = raw.sigma if raw.family == "negative_binomial" else None
    return NamedFamily(raw.family, raw.link, nb_size)


def ordinal_cdf(raw):
    """The CDF F of a cumulative link model: ``raw.extra["cdf"]`` or the one named by the link."""
    cdf = raw.extra.get("cdf")
    if cdf is not None:
        return cdf
    if raw.link not in _CDF:
        raise ValueError(f"unknown cumulative link '{raw.link}'")
    return _CDF[raw.link]


def ordinal_thresholds(raw) -> np.ndarray:
    """The K-1 cut-points α: ``raw.extra["alpha"]`` when given, else the threshold coefficients."""
    if raw.extra.get("alpha") is not None:
        return np.asarray(raw.extra["alpha"], dtype=float)
    n_levels = len(raw.design.response_levels)
    return np.asarray(raw.coef[: n_levels - 1], dtype=float)


def ordinal_cum_probs(raw, eta) -> np.ndarray:
    """Cumulative probabilities P(Y ≤ k) = F(α_k − η), k = 1..K−1, as an n x (K−1) array."""
    alpha = ordinal_thresholds(raw)
    return ordinal_cdf(raw)(alpha[None, :] - np.asarray(eta, dtype=float)[:, None])


def ordinal_probs(raw, eta) -> np.ndarray:
    """Category probabilities (n x K) from the location predictor η."""
    cum = ordinal_cum_probs(raw, eta)
    n = cum.shape[0]
    full = np.hstack([np.zeros((n, 1)), cum, np.ones((n, 1))])
    return np.diff(full, axis=1)
