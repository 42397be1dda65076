"""The fitted model: an immutable view of a fit record as tidy frames, over a row source.

One class for every kind and every input: the record (:class:`~mixframe.fit.result.FitResult`) holds the
numbers, its model kind (:mod:`mixframe.models`) says what they mean, and the row source
(:mod:`mixframe.results.rows`) gives the per-row outputs, from a private copy of an in-memory frame or
lazily over a stream.
"""
from __future__ import annotations

from types import MappingProxyType

import numpy as np

from mixframe.models.base import kind_of

from . import tidy
from ._frames import make_frame
from ._scalars import RawScalars
from .rows import FrameRows, StreamRows
from .summary import summary_text


def _read_only(arr):
    out = np.array(arr, dtype=float, copy=True)
    out.flags.writeable = False
    return out


class MixedModel(RawScalars):
    """A fitted LMM, GLMM, CLMM or CLM (immutable), in memory or streamed.

    Every method that returns a frame answers in the library of the data the model was fitted
    to: pandas in, pandas out; polars in, polars out (a streamed fit: polars for a LazyFrame,
    pyarrow for Arrow sources, pandas for Dask).

    Parameters
    ----------
    raw : FitResult
        The numbers of the finished fit.
    data : DataFrame, optional
        The user's input frame (every row, including those dropped for missing values); the model
        keeps a private copy of it. Omitted when ``rows`` is given.
    call_info : dict, optional
        Facts about the call: ``"formula"``, ``"data_name"``, ``"threshold"`` (ordinal models),
        and ``"call"`` — a :class:`~mixframe.results.call.FitCall` recording the fitting function and
        its arguments, with which :func:`mixframe.anova` refits a REML LMM by ML.
    rows : FrameRows or StreamRows, optional
        The row source (:mod:`mixframe.results.rows`); by default one over ``data``.

    Examples
    --------
    >>> import mixframe as mf
    >>> fit = mf.lmm("Reaction ~ Days + (Days | Subject)", mf.datasets.sleepstudy())
    >>> fit.kind, fit.nobs, round(fit.sigma, 3)
    ('lmm', 180, 25.592)
    """

    __slots__ = ("_call_info", "_kind", "_raw", "_rows")

    def __init__(self, raw, data=None, call_info: dict | None = None, rows=None):
        kind = kind_of(raw)
        if rows is None:
            rows = FrameRows(data, raw.design.n_total)
        object.__setattr__(self, "_raw", raw)
        object.__setattr__(self, "_kind", kind)
        object.__setattr__(self, "_rows", rows)
        object.__setattr__(self, "_call_info", MappingProxyType(dict(call_info or {})))

    @classmethod
    def from_stream(cls, raw, data, like, columns, weights=None, call_info: dict | None = None):
        """The model of a streamed fit: per-row outputs lazily over ``data`` (see :class:`StreamRows`)."""
        return cls(raw, None, call_info, rows=StreamRows(data, like, columns, weights))

    def __setattr__(self, name, value):
        raise AttributeError("a fitted MixedModel is immutable")

    def __delattr__(self, name):
        raise AttributeError("a fitted MixedModel is immutable")

    def __reduce__(self):
        return (self.__class__, (self._raw, None, dict(self._call_info), self._rows))

    # ------------------------------------------------------------------ plumbing

    @property
    def data(self):
        """The frame (the model's own copy of it) or the stream the model was fitted to."""
        return self._rows.data

    def _frame(self, columns: dict):
        return make_frame(columns, like=self._rows.like)

    def _refit_ml(self) -> MixedModel:
        """The same model refitted by maximum likelihood (REML LMMs; others return themselves)."""
        if not self._kind.needs_ml_refit(self._raw):
            return self
        refit = self._call_info.get("refit_ml")
        if callable(refit):
            return refit()
        call = self._call_info.get("call")
        if call is None:
            raise ValueError("this REML fit cannot be refitted by ML: it was made without a record of its "
                             "call; fit it with reml=False to compare it in anova")
        return call.refit(self._rows.data, reml=False)

    # ------------------------------------------------------------------ tidy frames
    def coefficients(self, level: float = 0.95):
        """Fixed effects (and thresholds) with standard errors, tests and intervals.

        Returns
        -------
        DataFrame
            ``coef_type, term, estimate, std_error, statistic, df, p_value, conf_low, conf_high``; ``df`` is
            the Satterthwaite df of an LMM (t-based tests and intervals) and null where z-based.
            Log and logit links and ordinal models add ``exp_estimate, exp_conf_low,
            exp_conf_high``. The first column, ``coef_type``, names each coefficient's block:
            ``fixed`` (LMM, GLMM), ``threshold`` or ``location`` (CLMM, CLM).

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

        A streamed fit answers lazily: a LazyFrame for a LazyFrame, a Dask DataFrame for a Dask
        DataFrame, a pyarrow RecordBatchReader for an Arrow source (an eager ``data`` gets the
        prediction columns, and the residuals when it has the response).

        Raises
        ------
        ValueError
            A streamed fit over a LazyFrame whose model has a fixed-effect or random-effect column
            that cannot be written as a polars expression (supported: numeric columns,
            treatment-coded factors, products).
        """
        return self._rows.augment(self._raw, data)

    def predict(self, newdata=None, type: str | None = None, re: bool = True) -> np.ndarray:
        """Predictions as a NumPy array.

        Parameters
        ----------
        newdata : DataFrame, optional
            Rows to predict; None predicts every input row (NaN for rows dropped for missing
            values, so the result lines up with the input frame). A streamed fit predicts a
            stream lazily (a LazyFrame / Dask Series / Arrow reader of ``.fitted`` or ``.fixed``).
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
        return self._rows.predict(self._raw, newdata, type, re)

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
        return self._kind.name

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
        """Fixed effects ``{term: estimate}``: the block multiplying the fixed-effects design (ordinal
        models: the location effects)."""
        return self._raw.block(self._kind.x_block)

    @property
    def thresholds(self) -> dict | None:
        """Thresholds ``{"1|2": ...}`` of an ordinal model; None otherwise."""
        block = self._kind.threshold_block
        return None if block is None else self._raw.block(block)

    @property
    def theta(self) -> np.ndarray:
        """The covariance parameters θ (a read-only copy)."""
        return _read_only(self._raw.theta)
