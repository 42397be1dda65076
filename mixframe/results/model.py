"""The fitted model: an immutable view of a :class:`~mixframe.fit.result.RawFit` as tidy frames."""
from __future__ import annotations

from types import MappingProxyType

import numpy as np

from . import tidy
from ._frames import append_columns, make_frame, n_rows
from ._scalars import RawScalars
from .augment import augment_columns, augment_new_columns
from .predict import predict_values
from .summary import summary_text

KIND_NAMES = {"lmm": "LMM", "glmm": "GLMM", "clmm": "CLMM", "clm": "CLM"}


def _read_only(arr):
    out = np.array(arr, dtype=float, copy=True)
    out.flags.writeable = False
    return out


class MixedModel(RawScalars):
    """A fitted LMM, GLMM, CLMM or CLM (immutable).

    Every method that returns a frame answers in the library of the data the model was fitted
    to: pandas in, pandas out; polars in, polars out.

    Parameters
    ----------
    raw : RawFit
        The numbers of the finished fit.
    data : DataFrame
        The user's input frame (every row, including those dropped for missing values).
    call_info : dict, optional
        Facts about the call: ``"formula"``, ``"data_name"``, ``"threshold"`` (ordinal models),
        and ``"refit_ml"`` — a zero-argument callable returning the ML refit of a REML LMM
        (used by :func:`mixframe.anova`).

    Examples
    --------
    >>> import mixframe as mf
    >>> fit = mf.lmm("Reaction ~ Days + (Days | Subject)", mf.datasets.sleepstudy())
    >>> fit.kind, fit.nobs, round(fit.sigma, 3)
    ('lmm', 180, 25.592)
    """

    __slots__ = ("_call_info", "_data", "_raw")

    def __init__(self, raw, data, call_info: dict | None = None):
        if raw.kind not in KIND_NAMES:
            raise ValueError(f"unknown model kind '{raw.kind}'")
        if n_rows(data) != raw.design.n_total:
            raise ValueError(f"the data have {n_rows(data)} rows but the fit was made on "
                             f"{raw.design.n_total}")
        object.__setattr__(self, "_raw", raw)
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_call_info", MappingProxyType(dict(call_info or {})))

    def __setattr__(self, name, value):
        raise AttributeError("a fitted MixedModel is immutable")

    def __delattr__(self, name):
        raise AttributeError("a fitted MixedModel is immutable")

    def __reduce__(self):
        return (self.__class__, (self._raw, self._data, dict(self._call_info)))

    # ------------------------------------------------------------------ plumbing

    @property
    def data(self):
        """The frame the model was fitted to (as given; never modified)."""
        return self._data


    def _frame(self, columns: dict):
        return make_frame(columns, like=self._data)

    def _refit_ml(self) -> MixedModel:
        """The same model refitted by maximum likelihood (REML LMMs; others return themselves)."""
        if self.kind != "lmm" or self._raw.reml_crit is None:
            return self
        refit = self._call_info.get("refit_ml")
        if refit is None:
            raise ValueError("this REML fit cannot be refitted by ML: it was made without a refit "
                             "callback; fit it with reml=False to compare it in anova")
        return refit()

    # ------------------------------------------------------------------ tidy frames
    def coefficients(self, level: float = 0.95):
        """Fixed effects (and thresholds) with standard errors, tests and intervals.

        Returns
        -------
        DataFrame
            ``term, estimate, std_error, statistic, df, p_value, conf_low, conf_high``; ``df`` is
            the Satterthwaite df of an LMM (t-based tests and intervals) and null where z-based.
            Log and logit links and ordinal models add ``exp_estimate, exp_conf_low,
            exp_conf_high``; ordinal models start with ``coef_type`` (threshold / location).

        Examples
        --------
        >>> import mixframe as mf
        >>> fit = mf.lmm("Reaction ~ Days + (Days | Subject)", mf.datasets.sleepstudy())
        >>> fit.coefficients()["term"].tolist()
        ['(Intercept)', 'Days']
        """
        return self._frame(tidy.coefficient_columns(self._raw, level))

    def confint(self, level: float = 0.95, method: str = "wald"):
        """Confidence intervals ``term, conf_low, conf_high`` of the fixed effects and thresholds.

        ``method="wald"`` uses normal quantiles; ``"satterthwaite"`` (LMMs) t quantiles.

        Examples
        --------
        >>> import mixframe as mf
        >>> fit = mf.lmm("Reaction ~ Days + (Days | Subject)", mf.datasets.sleepstudy())
        >>> fit.confint(level=0.9).shape
        (2, 3)
        """
        return self._frame(tidy.confint_columns(self._raw, level, method))

    def variance_components(self):
        """``group, term1, term2, vcov, sdcor`` in the layout of lme4's ``as.data.frame(VarCorr())``.

        Examples
        --------
        >>> import mixframe as mf
        >>> fit = mf.lmm("Reaction ~ Days + (Days | Subject)", mf.datasets.sleepstudy())
        >>> fit.variance_components()["group"].tolist()
        ['Subject', 'Subject', 'Subject', 'Residual']
        """
        return self._frame(tidy.variance_component_columns(self._raw))

    def blups(self):
        """Conditional modes and conditional SDs: ``group, level, term, estimate, std_error``.

        Examples
        --------
        >>> import mixframe as mf
        >>> fit = mf.lmm("Reaction ~ Days + (Days | Subject)", mf.datasets.sleepstudy())
        >>> fit.blups().shape
        (36, 5)
        """
        return self._frame(tidy.blup_columns(self._raw))

    def icc(self):
        """Intraclass correlation per grouping factor (``group, icc``) where it is defined.

        Defined for gaussian-identity models (residual σ²), binomial and ordinal logit (π²/3) and
        probit (1) models; the random-intercept variance of each factor over the total.

        Examples
        --------
        >>> import mixframe as mf
        >>> fit = mf.lmm("Reaction ~ Days + (Days | Subject)", mf.datasets.sleepstudy())
        >>> round(float(fit.icc()["icc"].iloc[0]), 2)
        0.48
        """
        return self._frame(tidy.icc_columns(self._raw))

    def glance(self):
        """One-row frame of fit statistics (see API.md), with ``ngroups_<factor>`` per factor.

        Examples
        --------
        >>> import mixframe as mf
        >>> fit = mf.lmm("Reaction ~ Days + (Days | Subject)", mf.datasets.sleepstudy())
        >>> int(fit.glance()["ngroups_Subject"].iloc[0])
        18
        """
        return self._frame(tidy.glance_columns(self._raw))

    def augment(self, data=None):
        """The input rows with fitted values and residuals appended.

        Parameters
        ----------
        data : DataFrame, optional
            None: every row of the fitted data, in order, with ``.fitted, .fixed, .eta, .resid,
            .pearson_resid, .deviance_resid, .used`` (ordinal: ``.prob_<level>``, ``.fitted``,
            ``.predicted``, ``.eta``, ``.used``); rows dropped for missing values have nulls.
            A frame: new rows, with the prediction columns only (no residuals).

        Examples
        --------
        >>> import mixframe as mf
        >>> fit = mf.lmm("Reaction ~ Days + (Days | Subject)", mf.datasets.sleepstudy())
        >>> fit.augment().shape
        (180, 10)
        """
        if data is None:
            return append_columns(self._data, augment_columns(self._raw))
        return append_columns(data, augment_new_columns(self._raw, data))

    def predict(self, newdata=None, type: str | None = None, re: bool = True) -> np.ndarray:
        """Predictions as a NumPy array.

        Parameters
        ----------
        newdata : DataFrame, optional
            Rows to predict; None predicts every input row (NaN for rows dropped for missing
            values, so the result lines up with the input frame).
        type : str, optional
            LMM/GLMM: ``"response"`` (default) or ``"link"``, offsets included.  CLMM/CLM:
            ``"prob"`` (n x K, default), ``"cum.prob"`` (n x K−1), ``"linear.predictor"`` (the
            location predictor x'β + z'b) or ``"class"`` (the most probable category label).
        re : bool
            Include the random effects (levels the fit never saw get 0); False: population level.

        Examples
        --------
        >>> import mixframe as mf
        >>> fit = mf.lmm("Reaction ~ Days + (Days | Subject)", mf.datasets.sleepstudy())
        >>> fit.predict(re=False)[:2].round(2).tolist()
        [251.41, 261.87]
        """
        return predict_values(self._raw, newdata, type, re)

    def summary(self):
        """Text summary in the layout of lme4's (LMM, GLMM) or ordinal's (CLMM, CLM) summary."""
        threshold = self._call_info.get("threshold") or self._raw.extra.get("threshold") or "flexible"
        return summary_text(self._raw, self._call_info.get("data_name"), threshold)

    def __repr__(self) -> str:
        return str(self.summary())

    def _repr_html_(self) -> str:
        """The notebook view: model line, warnings, fit statistics, coefficients, variances."""
        from .html import model_html

        return model_html(self._raw, self.formula)

    @property
    def plot(self):
        """Diagnostic plots (matplotlib): ``fit.plot.caterpillar()``, ``.residuals()``,
        ``.qq()``, ``.predicted(x)``; each returns the matplotlib Axes."""
        from ..plot import ModelPlots

        return ModelPlots(self)

    # ------------------------------------------------------------------ scalars and small values
    @property
    def kind(self) -> str:
        """``"lmm"``, ``"glmm"``, ``"clmm"`` or ``"clm"``."""
        return self._raw.kind

    @property
    def method(self) -> str:
        """Estimation method: ``"REML"``, ``"ML"``, ``"Laplace"``, ``"AGQ(k)"``, ``"PIRLS (nAGQ=0)"``."""
        return self._raw.method

    @property
    def formula(self) -> str:
        """The formula as given."""
        return self._call_info.get("formula") or self._raw.design.formula

    @property
    def fixef(self) -> dict:
        """Fixed effects ``{term: estimate}`` (ordinal models: location effects only)."""
        types = self._raw.coef_types or [None] * len(self._raw.coef_names)
        return {n: float(c) for n, c, t in zip(self._raw.coef_names, self._raw.coef, types)
                if t != "threshold"}

    @property
    def thresholds(self) -> dict | None:
        """Thresholds ``{"1|2": ...}`` of an ordinal model; None otherwise."""
        if self.kind not in tidy.ORDINAL_KINDS:
            return None
        types = self._raw.coef_types or []
        return {n: float(c) for n, c, t in zip(self._raw.coef_names, self._raw.coef, types)
                if t == "threshold"}

    @property
    def theta(self) -> np.ndarray:
        """The covariance parameters θ (a read-only copy)."""
        return _read_only(self._raw.theta)
