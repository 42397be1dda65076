"""Response families of generalized linear (mixed) models: one :class:`Family` = distribution x link.

A :class:`Family` couples a distribution (gaussian, binomial, poisson, gamma, inverse_gaussian,
negative_binomial) with a link. It is the only implementation of the family arithmetic: the GLMM fit
(PIRLS, Laplace, starting values) and the results (fitted values, Pearson and deviance residuals) both
call it. Its vectorized methods run the compiled per-observation loops of ``mixframe._ext.family``
(``_kernels/family.pyx`` over ``family_core.pxi``, the same inline functions the PIRLS kernel uses),
with the integer codes of :mod:`mixframe.families.codes`. The dispersion argument ``disp`` is the parameter mixframe reports as
``sigma``: the residual SD (gaussian), the coefficient of variation 1/sqrt(shape) (gamma), sigma with
Var(y) = sigma^2 mu^3 (inverse Gaussian) and the NB2 size theta with Var(y) = mu + mu^2/theta
(negative binomial). Binomial and Poisson ignore it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._ext import family as _k
from ..errors import DataError
from .codes import Dist, Link

# name -> kernel code, from the enums of codes.py
LINK_CODES = {m.label: int(m) for m in Link}
FAMILY_CODES = {m.label: int(m) for m in Dist}
ALLOWED_LINKS = {
    "gaussian": ("identity", "log", "inverse"),
    "binomial": ("logit", "probit", "cloglog", "log", "cauchit"),
    "poisson": ("log", "identity", "sqrt"),
    "gamma": ("inverse", "log", "identity"),
    "inverse_gaussian": ("inverse_squared", "inverse", "log", "identity"),
    "negative_binomial": ("log",),
}
# the default link of each family (the canonical one, except for NB2, whose default is log)
CANONICAL = {"gaussian": "identity", "binomial": "logit", "poisson": "log", "gamma": "inverse",
             "inverse_gaussian": "inverse_squared", "negative_binomial": "log"}
ALIASES = {"gamma": "gamma", "Gamma": "gamma", "nbinom2": "negative_binomial", "negbin": "negative_binomial",
           "negative.binomial": "negative_binomial", "inverse.gaussian": "inverse_gaussian",
           "1/mu^2": "inverse_squared"}


def _arr(x) -> np.ndarray:
    return np.ascontiguousarray(np.atleast_1d(np.asarray(x, dtype=np.float64)))


def _wt(wt, n) -> np.ndarray:
    return np.ones(n) if wt is None else np.ascontiguousarray(np.broadcast_to(_arr(wt), (n,)), dtype=np.float64)


@dataclass(frozen=True)
class Family:
    """A response distribution with a link function.

    Parameters
    ----------
    name : str
        One of ``FAMILY_CODES``.
    link : str
        One of ``ALLOWED_LINKS[name]``.

    Examples
    --------
    >>> fam = get_family("poisson")
    >>> float(fam.linkinv(np.array([0.0]))[0])
    1.0
    """

    name: str
    link: str
    # the kernel codes, set once (the PIRLS loop reads them on every iteration)
    fcode: int = field(init=False, repr=False, compare=False)
    lcode: int = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "fcode", int(Dist.from_name(self.name)))
        object.__setattr__(self, "lcode", int(Link.from_name(self.link)))

    @property
    def dist(self) -> Dist:
        return Dist(self.fcode)

    @property
    def link_enum(self) -> Link:
        return Link(self.lcode)

    @property
    def has_dispersion(self) -> bool:
        """True when the family has a free dispersion parameter (everything but binomial and Poisson)."""
        return self.name not in ("binomial", "poisson")

    @property
    def canonical(self) -> bool:
        """True for the canonical link (Fisher and observed information agree). NB2's log link is not."""
        return self.name != "negative_binomial" and CANONICAL[self.name] == self.link

    # --- links ---------------------------------------------------------------
    def linkfun(self, mu) -> np.ndarray:
        """eta = g(mu)."""
        mu = _arr(mu)
        out = np.empty_like(mu)
        _k.link_function(self.lcode, mu, out)
        return out

    def linkinv(self, eta) -> np.ndarray:
        """mu = g^{-1}(eta)."""
        eta = _arr(eta)
        mu, d = np.empty_like(eta), np.empty_like(eta)
        _k.link_inverse(self.lcode, eta, mu, d)
        return mu

    def mu_eta(self, eta) -> np.ndarray:
        """d mu / d eta."""
        eta = _arr(eta)
        mu, d = np.empty_like(eta), np.empty_like(eta)
        _k.link_inverse(self.lcode, eta, mu, d)
        return d

    # --- distribution --------------------------------------------------------
    def variance(self, mu, disp: float = 1.0) -> np.ndarray:
        """Variance function V(mu) (NB2: mu + mu^2/disp); Var(y) = phi V(mu) / wt."""
        mu = _arr(mu)
        out = np.empty_like(mu)
        _k.variance(self.fcode, mu, float(disp), out)
        return out

    def phi(self, disp: float | None) -> float:
        """The multiplier phi in Var(y) = phi V(mu) / wt."""
        if self.name in ("gaussian", "gamma", "inverse_gaussian"):
            return float(disp) ** 2
        return 1.0

    def dev_resid(self, y, mu, wt=None, disp: float = 1.0) -> np.ndarray:
        """Squared deviance residuals (unit deviance times prior weight)."""
        y, mu = _arr(y), _arr(mu)
        out = np.empty_like(y)
        _k.dev_resids(self.fcode, y, mu, _wt(wt, len(y)), float(disp), out)
        return out

    def loglik(self, y, mu, wt=None, dispersion: float = 1.0) -> float:
        """Full log-likelihood with every normalising constant (R's ``-aic()/2`` convention)."""
        return float(np.sum(self.loglik_terms(y, mu, wt, dispersion)))

    def loglik_terms(self, y, mu, wt=None, dispersion: float = 1.0) -> np.ndarray:
        """Per-observation log-likelihood terms (binomial: including the log binomial coefficient)."""
        y, mu = _arr(y), _arr(mu)
        out = np.empty_like(y)
        _k.loglik_terms(self.fcode, y, mu, _wt(wt, len(y)), float(dispersion), out)
        return out

    def valid_mu(self, mu) -> bool:
        mu = np.asarray(mu, dtype=float)
        if not np.all(np.isfinite(mu)):
            return False
        if self.name == "binomial":
            return bool(np.all((mu > 0) & (mu < 1)))
        if self.name == "gaussian":
            return True
        return bool(np.all(mu > 0))

    def valid_eta(self, eta) -> bool:
        eta = np.asarray(eta, dtype=float)
        if not np.all(np.isfinite(eta)):
            return False
        if self.link in ("inverse", "inverse_squared"):
            return bool(np.all(eta > 0)) if self.link == "inverse_squared" else bool(np.all(eta != 0))
        if self.link == "sqrt":
            return bool(np.all(eta > 0))
        return True

    # --- PIRLS ----------------------------------------------------------------
    def working(self, y, eta, wt, disp: float = 1.0):
        """(mu, w, r, ll, status) at eta: Fisher working weights w, working residual r = (y - mu)/mu_eta and
        log-likelihood terms ll. status is 0, or 1 when some mean is invalid."""
        y, eta = _arr(y), _arr(eta)
        n = len(y)
        mu, w, r, ll = (np.empty(n) for _ in range(4))
        status = _k.pirls_terms(self.fcode, self.lcode, y, eta, _wt(wt, n), float(disp), mu, w, r, ll)
        return mu, w, r, ll, status

    def observed_weights(self, y, eta, wt=None, disp: float = 1.0) -> np.ndarray:
        """-d^2 loglik_i / d eta_i^2 (observed information; equals the Fisher weights for canonical links)."""
        y, eta = _arr(y), _arr(eta)
        out = np.empty_like(y)
        _k.observed_weights(self.fcode, self.lcode, y, eta, _wt(wt, len(y)), float(disp), out)
        return out

    def mustart(self, y, wt=None) -> np.ndarray:
        """Starting means as R's family ``initialize`` sets them."""
        y = _arr(y)
        wt = _wt(wt, len(y))
        if self.name == "binomial":
            return (wt * y + 0.5) / (wt + 1.0)
        if self.name in ("poisson", "negative_binomial"):
            return y + 0.1
        if self.name == "gaussian" and self.link in ("log", "inverse"):
            return np.maximum(y, 0.1 * max(np.mean(np.abs(y)), 1e-8))
        return y.copy()

    def validate_response(self, y, weights=None, column: str = "response") -> None:
        """Raise DataError (naming ``column``) when y cannot come from this family."""
        y = np.asarray(y, dtype=float)
        if not np.all(np.isfinite(y)):
            raise DataError(f"response {column!r} has non-finite values")
        if self.name == "binomial":
            if np.any((y < 0) | (y > 1)):
                bad = y[(y < 0) | (y > 1)][:3]
                raise DataError(f"binomial response {column!r} must be 0/1 or a proportion in [0, 1] "
                                f"(with the trials as weights, or cbind(successes, failures)); found {bad.tolist()}")
            if weights is not None and not np.all((y == 0) | (y == 1)):
                k = np.asarray(weights, dtype=float) * y
                if np.any(np.abs(k - np.round(k)) > 1e-7):
                    raise DataError(f"binomial response {column!r}: proportion x trials is not a whole number of "
                                    "successes")
        elif self.name in ("poisson", "negative_binomial"):
            if np.any(y < 0) or np.any(np.abs(y - np.round(y)) > 1e-7):
                bad = y[(y < 0) | (np.abs(y - np.round(y)) > 1e-7)][:3]
                raise DataError(f"{self.name} response {column!r} must hold non-negative whole counts; "
                                f"found {bad.tolist()}")
        elif self.name in ("gamma", "inverse_gaussian") and np.any(y <= 0):
            bad = y[y <= 0][:3]
            raise DataError(f"{self.name} response {column!r} must be strictly positive; found {bad.tolist()}")


def get_family(name: str = "binomial", link: str | None = None) -> Family:
    """Look up a family and link by name; ``link=None`` takes the canonical link.

    Raises
    ------
    ValueError
        Unknown family, or a link the family does not take (the message lists the allowed ones).

    Examples
    --------
    >>> get_family("binomial", "probit").link
    'probit'
    """
    if isinstance(name, Family):
        return name if link is None or link == name.link else get_family(name.name, link)
    key = ALIASES.get(name, name)
    key = key.lower() if isinstance(key, str) else key
    if key not in FAMILY_CODES:
        raise ValueError(f"unknown family {name!r}; choose one of {sorted(FAMILY_CODES)}")
    if link is None:
        link = CANONICAL[key]
    link = ALIASES.get(link, link)
    if link not in ALLOWED_LINKS[key]:
        raise ValueError(f"family {key!r} does not take link {link!r}; allowed links: "
                         f"{', '.join(ALLOWED_LINKS[key])}")
    return Family(key, link)


def family_of(raw) -> Family:
    """The :class:`Family` of a fitted record.

    A GLMM record carries the one it was fitted with (``raw.extra["family_obj"]``); an LMM is gaussian with
    the identity link; any other record (a GLMM record without that entry) gets the family named by
    ``raw.family`` and ``raw.link``.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> family_of(SimpleNamespace(kind="lmm", extra={}, family="gaussian", link="identity"))
    Family(name='gaussian', link='identity')
    """
    if raw.kind == "glmm" and raw.extra.get("family_obj") is not None:
        return raw.extra["family_obj"]
    if raw.kind == "lmm":
        return get_family("gaussian", "identity")
    return get_family(raw.family, raw.link)


def with_dispersion(method, *args, disp=None):
    """``method(*args, disp)``, or ``method(*args)`` (the method's own default dispersion) when ``disp`` is None.

    Every :class:`Family` method that depends on the dispersion takes it as its last argument.
    """
    return method(*args) if disp is None else method(*args, disp)
