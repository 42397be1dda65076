"""The fit record every fitting routine returns; ``mixframe.results`` turns it into tidy frames.

The record is plain data: arrays, lists, strings and numbers, plus the :class:`Design` that was fitted. It
pickles, so a fitted model can be stored, sent to another process or shipped to a Dask worker. Quantities
that cost extra work and that many uses never read (an LMM's conditional SDs and Satterthwaite df) are
held as :class:`Deferred` values: a picklable recipe of the record's own numbers, computed on first use.
Compiled helpers a fit may keep for reuse in the same process (the LMM objective) sit in ``extra`` under
the keys of :data:`TRANSIENT_EXTRA` and are left out when the record is pickled.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: ``extra`` keys that hold process-local objects (compiled systems), dropped when a record is pickled
TRANSIENT_EXTRA = ("objective",)


@dataclass(frozen=True, eq=False)
class RawFit:
    """Numbers of a finished fit, on the used rows (``design.used``).

    kind : "lmm" | "glmm" | "clmm" | "clm" (the model kind; see :mod:`mixframe.models`)
    design : the Design that was fitted
    coef_names : names of ``coef`` in order. LMM/GLMM: the fixed effects (= design.x_names).
        CLMM/CLM: thresholds first ("1|2", ...), then the location effects (x_names without intercept).
    coef : estimates in ``coef_names`` order (link scale)
    vcov : joint covariance of ``coef`` (same order)
    coef_types : the coefficient block of each coefficient: "fixed" (LMM/GLMM), "threshold" and
        "location" (CLMM/CLM); when not given, every coefficient is in the kind's design block. A further
        linear predictor (zero inflation, dispersion, scale, nominal effects) is a further block name; see
        :meth:`block`.
    theta : the optimizer's covariance parameters (see mixframe.design.terms)
    lambdas : per-term relative factor (k x k); the covariance of term t's effects is
        ``re_scale**2 * lam @ lam.T``
    re_scale : sigma for an LMM, 1.0 otherwise
    sigma : LMM residual SD; GLMM dispersion as API.md defines (NB2 size, Gamma CV, inverse
        Gaussian/gaussian SD); None for binomial, Poisson, ordinal
    b : per-term conditional modes, (n_levels, k) arrays
    b_sd : per-term conditional SDs, (n_levels, k) arrays (a list, or a :class:`Deferred` list)
    eta : linear predictor with random effects and offset, on used rows (CLMM: x'beta + z'b, no thresholds)
    eta_fixed : the same without random effects
    loglik : maximised log-likelihood (REML one for REML fits)
    deviance : as lme4/glmmTMB/ordinal report it (see reference README)
    reml_crit : REML criterion or None
    n_params : number of estimated parameters (for AIC/BIC)
    df : Satterthwaite denominator df per coefficient (LMM), a :class:`Deferred` value computing them on
        first use (read them through ``ddf()``), or None
    family, link : strings
    method : "REML", "ML", "Laplace", "AGQ(k)", "PIRLS (nAGQ=0)"
    converged, singular : bool
    iterations : optimizer function evaluations
    messages : warnings raised / optimizer messages
    extra : kind-specific extras (e.g. GLMM Pearson dispersion ratio, CLMM cond_H)
    """

    kind: str
    design: Any
    coef_names: list
    coef: np.ndarray
    vcov: np.ndarray
    theta: np.ndarray
    lambdas: list
    re_scale: float
    sigma: float | None
    b: list
    b_sd: list
    eta: np.ndarray
    eta_fixed: np.ndarray
    loglik: float
    deviance: float
    n_params: int
    family: str
    link: str
    method: str
    converged: bool
    singular: bool
    iterations: int
    coef_types: list | None = None
    reml_crit: float | None = None
    df: np.ndarray | None = None
    messages: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.coef_types is None:
            from ..models.base import kind_of

            object.__setattr__(self, "coef_types", [kind_of(self).x_block] * len(self.coef_names))

    # ------------------------------------------------------------------ coefficient blocks
    @property
    def block_names(self) -> list:
        """The blocks in order of first appearance: ``["fixed"]``, ``["threshold", "location"]``."""
        return list(dict.fromkeys(self.coef_types))

    def block_index(self, name: str) -> np.ndarray:
        """Positions in ``coef`` of the coefficients of block ``name`` (empty when the fit has none)."""
        return np.array([i for i, t in enumerate(self.coef_types) if t == name], dtype=np.int64)

    def block(self, name: str) -> dict:
        """``{coefficient name: estimate}`` of one block, in coefficient order."""
        coef = np.asarray(self.coef, dtype=float)
        return {self.coef_names[i]: float(coef[i]) for i in self.block_index(name)}

    # ------------------------------------------------------------------ lazy quantities
    def ddf(self):
        """The Satterthwaite df as an array (computed once, on first use), or None."""
        if isinstance(self.df, Deferred):
            return self.df.value()
        if callable(self.df):
            cache = self.__dict__.get("_ddf_cache")
            if cache is None:
                cache = self.__dict__["_ddf_cache"] = (self.df(),)
            return cache[0]
        return self.df

    # ------------------------------------------------------------------ pickling
    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_ddf_cache", None)
        if any(k in state["extra"] for k in TRANSIENT_EXTRA):
            state["extra"] = {k: v for k, v in state["extra"].items() if k not in TRANSIENT_EXTRA}
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)


FitResult = RawFit


class Deferred(Sequence):
    """A value computed on first use from a picklable recipe (a zero-argument callable object).

    Used as a list (the conditional SDs of the random effects, which cost a dense inverse of the factor and
    which a fit read only for its coefficients never needs) or through :meth:`value` (the Satterthwaite df).
    Pickling an unevaluated value pickles its recipe; the recipe decides what it keeps (see
    :class:`mixframe.models.lmm.result.LmmDeferred`).
    """

    __slots__ = ("_make", "_value")

    def __init__(self, make):
        self._make, self._value = make, None

    def value(self):
        if self._make is not None:
            self._value = self._make()
            self._make = None
        return self._value

    def _list(self) -> list:
        if self._make is not None:
            self._value = list(self._make())
            self._make = None
        return self._value

    def __getitem__(self, i):
        return self._list()[i]

    def __len__(self) -> int:
        return len(self._list())

    def __iter__(self):
        return iter(self._list())

    def __repr__(self) -> str:
        return repr(self._list())

    def __getstate__(self):
        return (self._make, self._value)

    def __setstate__(self, state):
        self._make, self._value = state
