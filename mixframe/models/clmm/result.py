"""What the numbers of a fitted cumulative link (mixed) model mean.

Two coefficient blocks, "threshold" (the cut-points α) and "location" (β, multiplying the design
without its intercept); ``P(Y <= k) = F(α_k − η)`` with η the location predictor; category probabilities
as fitted values; z tests; exponentiated estimates; ordinal's summary layout.
"""
from __future__ import annotations

import re

import numpy as np

from ..base import ModelKind


class ClmmKind(ModelKind):
    """A cumulative link mixed model (ordinal response, random effects)."""

    name = "clmm"
    title = "Cumulative link mixed model"
    blocks = ("threshold", "location")
    x_block = "location"
    threshold_block = "threshold"
    predict_types = ("prob", "cum.prob", "linear.predictor", "class")

    def exp_columns(self, raw) -> bool:
        return True

    def latent_residual_variance(self, raw) -> float | None:
        """The variance of the latent logistic (π²/3) or normal (1) error; None for other links."""
        if raw.link == "logit":
            return np.pi ** 2 / 3.0
        if raw.link == "probit":
            return 1.0
        return None

    # ------------------------------------------------------------------ response scale
    def levels(self, raw) -> list:
        return [str(v) for v in raw.design.response_levels]

    def cum_probs(self, raw, eta) -> np.ndarray:
        """P(Y <= k), k = 1..K−1, per row of ``eta`` (n x (K−1))."""
        from mixframe.families import ordinal_cum_probs

        return ordinal_cum_probs(raw, eta)

    def probs(self, raw, eta) -> np.ndarray:
        """Category probabilities (n x K) per row of ``eta``."""
        from mixframe.families import ordinal_probs

        return ordinal_probs(raw, eta)

    def _all_probs(self, raw, eta, used) -> np.ndarray:
        probs = np.full((eta.shape[0], len(raw.design.response_levels)), np.nan)
        probs[used] = self.probs(raw, eta[used])
        return probs

    def class_labels(self, raw, probs, used) -> np.ndarray:
        """The most probable category of each row (None where not ``used``)."""
        levels = np.array(self.levels(raw), dtype=object)
        out = levels[np.argmax(np.where(np.isnan(probs), -np.inf, probs), axis=1)]
        out[~np.asarray(used, dtype=bool)] = None
        return out

    def _columns(self, raw, eta, used, observed=None) -> dict:
        probs = self._all_probs(raw, eta, used)
        cols = {f".prob_{lv}": probs[:, k] for k, lv in enumerate(self.levels(raw))}
        if observed is not None:
            fitted = np.full(eta.shape[0], np.nan)
            rows = np.flatnonzero(used)
            fitted[rows] = probs[rows, observed]
            cols[".fitted"] = fitted
        cols[".predicted"] = list(self.class_labels(raw, probs, used))
        cols[".eta"] = eta
        cols[".used"] = used
        return cols

    def fitted_columns(self, raw) -> dict:
        """``.prob_<level>``, ``.fitted`` (probability of the observed category, as ordinal's ``fitted()``),
        ``.predicted``, ``.eta`` (location predictor), ``.used``."""
        from mixframe.results.predict import expand

        used = np.asarray(raw.design.used, dtype=bool)
        observed = np.asarray(raw.design.y).astype(np.int64)
        return self._columns(raw, expand(raw.eta, used), used, observed)

    def new_columns(self, raw, eta, eta_fixed, used) -> dict:
        return self._columns(raw, eta, used)

    def predict(self, raw, eta, used, type: str) -> np.ndarray:
        if type == "linear.predictor":
            return eta
        if type == "cum.prob":
            out = np.full((eta.shape[0], len(raw.design.response_levels) - 1), np.nan)
            out[used] = self.cum_probs(raw, eta[used])
            return out
        probs = self._all_probs(raw, eta, used)
        if type == "class":
            return self.class_labels(raw, probs, used)
        return probs

    # ------------------------------------------------------------------ text
    def family_label(self, raw) -> str:
        return f"cumulative {raw.link}"

    def method_title(self, raw) -> str:
        agq = re.fullmatch(r"AGQ\((\d+)\)", raw.method)
        if agq:
            return ("Cumulative Link Mixed Model fitted with the adaptive Gauss-Hermite "
                    f"quadrature approximation with {agq.group(1)} quadrature points")
        return "Cumulative Link Mixed Model fitted with the Laplace approximation"

    def summary(self, raw, data_name, threshold) -> str:
        from mixframe.results.summary import ordinal_summary

        return ordinal_summary(raw, data_name, threshold)


class ClmKind(ClmmKind):
    """A cumulative link model without random effects."""

    name = "clm"
    title = "Cumulative link model"

    def method_title(self, raw) -> str:
        return "Cumulative Link Model fitted by maximum likelihood"


CLMM = ClmmKind()
CLM = ClmKind()
