"""Scalar members shared by the in-memory and the streamed fitted models (both keep their record in ``_raw``
and build frames with ``_frame``)."""
from __future__ import annotations

from . import tidy


class RawScalars:
    """The fit record, the call, and the log-likelihood, information criteria, counts and flags read off it."""

    __slots__ = ()

    @property
    def raw(self):
        """The underlying :class:`~mixframe.fit.result.RawFit` record."""
        return self._raw

    @property
    def call_info(self):
        """Read-only mapping of facts about the call that made the fit."""
        return self._call_info

    @property
    def sigma(self) -> float | None:
        """The dispersion as glmmTMB's ``sigma()`` defines it; None for binomial, Poisson, ordinal."""
        return None if self._raw.sigma is None else float(self._raw.sigma)

    @property
    def vcov(self):
        """Covariance of the coefficients as a frame: ``term`` then one column per term."""
        return self._frame(tidy.vcov_columns(self._raw))

    @property
    def loglik(self) -> float:
        """Maximised log-likelihood (the REML one for REML fits)."""
        return float(self._raw.loglik)

    @property
    def aic(self) -> float:
        """−2 loglik + 2 n_params."""
        return tidy.information_criteria(self._raw)[0]

    @property
    def bic(self) -> float:
        """−2 loglik + log(nobs) n_params."""
        return tidy.information_criteria(self._raw)[1]

    @property
    def deviance(self) -> float:
        """Deviance as lme4, glmmTMB and ordinal report it."""
        return float(self._raw.deviance)

    @property
    def nobs(self) -> int:
        """Number of rows used."""
        return int(self._raw.design.n_obs)

    @property
    def converged(self) -> bool:
        return bool(self._raw.converged)

    @property
    def singular(self) -> bool:
        return bool(self._raw.singular)

    @property
    def ngroups(self) -> dict:
        """Number of levels per grouping factor ``{factor: n}``."""
        return tidy.ngroups(self._raw)
