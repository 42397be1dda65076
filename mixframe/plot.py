"""Diagnostic and effect plots of a fitted model, as ``fit.plot.<name>()``.

matplotlib is an optional dependency (``pip install "mixframe[plot]"``); it is imported only when
a plot is drawn. Every method draws into ``ax=`` when given and returns the matplotlib Axes (an
array of Axes when a plot has several panels).
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from .results import tidy
from .results.augment import augment_columns

__all__ = ["ModelPlots"]

POPULATION_COLOR = "C0"
GROUP_COLOR = "0.65"


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'mixframe[plot]'") from err
    return plt


def _axes(ax, n_panels: int = 1, width: float = 4.0, height: float = 4.0):
    """The Axes to draw into: ``ax`` as given, or a new figure with ``n_panels`` side by side."""
    if ax is not None:
        panels = np.atleast_1d(np.asarray(ax, dtype=object)).ravel()
        if panels.size != n_panels:
            raise ValueError(f"this plot has {n_panels} panel(s) but {panels.size} Axes were given")
        return list(panels)
    plt = _pyplot()
    _, axes = plt.subplots(1, n_panels, figsize=(width * n_panels, height), squeeze=False)
    return list(axes[0])


def _result(panels):
    return panels[0] if len(panels) == 1 else np.array(panels, dtype=object)


def ppoints(n: int) -> np.ndarray:
    """Plotting positions for a normal Q–Q plot, as R's ``ppoints``.

    Examples
    --------
    >>> ppoints(4).round(4).tolist()
    [0.1471, 0.3824, 0.6176, 0.8529]
    """
    a = 0.375 if n <= 10 else 0.5
    return (np.arange(1, n + 1) - a) / (n + 1 - 2 * a)


class ModelPlots:
    """The plots of one fitted model; reached as ``fit.plot``.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import mixframe as mf
    >>> fit = mf.lmm("Yield ~ 1 + (1 | Batch)", mf.datasets.dyestuff())
    >>> ax = fit.plot.caterpillar()
    >>> len(ax.get_yticklabels())
    6
    """

    def __init__(self, model):
        self._model = model
        self._raw = model.raw

    # ------------------------------------------------------------------ random effects
    def _group(self, group):
        groups = list(dict.fromkeys(t.group for t in self._raw.design.terms))
        if not groups:
            raise ValueError("this model has no random effects")
        if group is None:
            return groups[0]
        if group not in groups:
            raise ValueError(f"'{group}' is not a grouping factor of this model; choose from {groups}")
        return group

    def _blups(self, group):
        cols = tidy.blup_columns(self._raw)
        mask = np.array([g == group for g in cols["group"]])
        return {k: np.asarray(v, dtype=object if k in ("group", "level", "term") else float)[mask]
                for k, v in cols.items()}

    def caterpillar(self, group: str | None = None, level: float = 0.95, ax=None):
        """Conditional modes of one grouping factor with intervals, ordered, one panel per term.

        Parameters
        ----------
        group : str, optional
            Grouping factor (default: the first one, the factor with the most levels).
        level : float
            Coverage of the intervals: estimate ± z·SE, z = 1.96 for 0.95.
        ax : Axes or sequence of Axes, optional
            Where to draw: one Axes per random-effect term of ``group``.

        Returns
        -------
        Axes or ndarray of Axes
            One point per level in each panel; levels ordered by the first term's estimate.
        """
        group = self._group(group)
        cols = self._blups(group)
        terms = list(dict.fromkeys(cols["term"]))
        z = stats.norm.ppf(0.5 + level / 2.0)
        first = cols["term"] == terms[0]
        levels = cols["level"][first]
        order = np.argsort(cols["estimate"][first], kind="stable")
        n_levels = len(levels)
        panels = _axes(ax, len(terms), width=3.6, height=max(3.0, 0.16 * n_levels + 1.2))
        for axis, term in zip(panels, terms):
            rows = cols["term"] == term
            position = {lv: i for i, lv in enumerate(cols["level"][rows])}
            idx = np.array([position[lv] for lv in levels[order]])
            est = cols["estimate"][rows][idx]
            half = z * cols["std_error"][rows][idx]
            y = np.arange(n_levels)
            axis.errorbar(est, y, xerr=half, fmt="o", color=POPULATION_COLOR, ecolor=GROUP_COLOR,
                          markersize=4, capsize=0, linewidth=1.2)
            axis.axvline(0.0, color="0.3", linewidth=0.8, linestyle="--")
            axis.set_yticks(y)
            axis.set_yticklabels([str(v) for v in levels[order]],
                                 fontsize=8 if n_levels <= 40 else 5)
            axis.set_xlabel(f"{term} (conditional mode ± {z:.2f}·SE)")
            axis.set_title(f"{group}: {term}")
        panels[0].set_ylabel(group)
        return _result(panels)

    # ------------------------------------------------------------------ residuals
    def _residuals(self):
        if self._raw.kind in tidy.ORDINAL_KINDS:
            raise ValueError("residual plots are not defined for ordinal models; use "
                             "fit.plot.predicted() or fit.plot.qq(which='random')")
        cols = augment_columns(self._raw)
        used = np.asarray(cols[".used"], dtype=bool)
        name = ".resid" if self._raw.kind == "lmm" else ".deviance_resid"
        return (np.asarray(cols[".fitted"], dtype=float)[used],
                np.asarray(cols[name], dtype=float)[used], name)

    def residuals(self, ax=None):
        """Residuals against fitted values (GLMMs: deviance residuals), with a zero line.

        Returns
        -------
        Axes
            One point per used row.
        """
        fitted, resid, name = self._residuals()
        (axis,) = _axes(ax)
        axis.scatter(fitted, resid, s=12, color=POPULATION_COLOR, alpha=0.7)
        axis.axhline(0.0, color="0.3", linewidth=0.8, linestyle="--")
        axis.set_xlabel("fitted values")
        axis.set_ylabel("residuals" if name == ".resid" else "deviance residuals")
        axis.set_title(f"Residuals vs fitted: {self._model.formula}", fontsize=9)
        return axis

    def qq(self, which: str = "residuals", group: str | None = None, term: str | None = None,
           ax=None):
        """Normal Q–Q plot of the residuals or of the conditional modes of one term.

        Parameters
        ----------
        which : {"residuals", "random"}
            ``"residuals"`` (LMM: residuals; GLMM: deviance residuals) or ``"random"`` (the
            conditional modes of ``term`` of ``group``).
        group, term : str, optional
            For ``which="random"``: grouping factor (default the first) and effect (default the
            first, usually ``(Intercept)``).
        ax : Axes, optional

        Returns
        -------
        Axes
            Sorted values against normal quantiles, with a line through the quartiles (as R's
            ``qqline``).
        """
        if which == "residuals":
            values = self._residuals()[1]
            label = "residuals"
        elif which == "random":
            group = self._group(group)
            cols = self._blups(group)
            terms = list(dict.fromkeys(cols["term"]))
            term = terms[0] if term is None else term
            if term not in terms:
                raise ValueError(f"'{term}' is not a term of group '{group}'; choose from {terms}")
            values = cols["estimate"][cols["term"] == term]
            label = f"{group}: {term} (conditional modes)"
        else:
            raise ValueError(f"which must be 'residuals' or 'random', not {which!r}")
        values = np.sort(np.asarray(values, dtype=float))
        theoretical = stats.norm.ppf(ppoints(values.size))
        (axis,) = _axes(ax)
        axis.scatter(theoretical, values, s=12, color=POPULATION_COLOR)
        q_sample = np.quantile(values, [0.25, 0.75])
        q_norm = stats.norm.ppf([0.25, 0.75])
        slope = (q_sample[1] - q_sample[0]) / (q_norm[1] - q_norm[0])
        axis.axline((q_norm[0], q_sample[0]), slope=slope, color="0.3", linewidth=0.8)
        axis.set_xlabel("standard normal quantiles")
        axis.set_ylabel(label)
        axis.set_title("Normal Q–Q plot")
        return axis

    # ------------------------------------------------------------------ effects
    def predicted(self, x: str, group: str | None = None, at: dict | None = None,
                  groups: bool = True, n_points: int = 50, type: str | None = None,
                  max_groups: int = 100, ax=None):
        """Predicted response across one predictor: group curves in grey, population in colour.

        Parameters
        ----------
        x : str
            A predictor column: numeric (a curve over its range) or categorical (its levels).
        group : str, optional
            Grouping factor whose levels give the grey curves (default: the first).
        at : dict, optional
            Values for the other predictors (default: the mean of a numeric column, the first
            level of a categorical one).
        groups : bool
            Draw the group curves (False: the population curve only).
        n_points : int
            Grid size for a numeric ``x``.
        max_groups : int
            At most this many grey curves (the first levels of ``group``).
        type : str, optional
            LMM/GLMM: ``"response"`` (default) or ``"link"``. Ordinal models always show the
            probability of each category, one coloured line per category.
        ax : Axes, optional

        Returns
        -------
        Axes
        """
        model = self._model
        ordinal = self._raw.kind in tidy.ORDINAL_KINDS
        has_groups = bool(self._raw.design.terms)
        group = self._group(group) if has_groups else None
        grid = prediction_grid(model, x, group, at, n_points, max_groups)
        positions, tick_labels = grid["positions"], grid["tick_labels"]
        kind = "prob" if ordinal else (type or "response")
        population = np.asarray(model.predict(grid["population"], type=kind, re=False), dtype=float)
        curves = population.reshape(len(positions), -1)
        (axis,) = _axes(ax, width=5.0, height=4.0)
        style = "-" if tick_labels is None else "o-"
        labels = self._raw.design.response_levels if ordinal else [None]
        if groups and group is not None:
            n_groups = len(grid["group_levels"])
            g = np.asarray(model.predict(grid["groups"], type=kind, re=True), dtype=float)
            g = g.reshape(n_groups, len(positions), -1)
            for i in range(n_groups):
                for j in range(g.shape[2]):
                    axis.plot(positions, g[i, :, j], "-", color=GROUP_COLOR, linewidth=0.7, alpha=0.6)
        for j in range(curves.shape[1]):
            name = None if labels[j] is None else f"{self._raw.design.response}={labels[j]}"
            axis.plot(positions, curves[:, j], style, color=f"C{j}", linewidth=2.0, label=name)
        if tick_labels is not None:
            axis.set_xticks(positions)
            axis.set_xticklabels(tick_labels)
            axis.set_xlim(-0.3, len(positions) - 0.7)
        if ordinal:
            axis.legend(fontsize=8, frameon=False)
            axis.set_ylim(0.0, 1.0)
        axis.set_xlabel(x)
        response = self._raw.design.response
        if ordinal:
            ylabel = "probability"
        elif kind == "link":
            ylabel = f"{response} (link scale)"
        elif self._raw.family == "binomial":
            ylabel = "predicted probability"
        else:
            ylabel = f"{response} (predicted)"
        axis.set_ylabel(ylabel)
        title = "population (colour)"
        if groups and group is not None:
            title += f", {group} levels (grey)"
        axis.set_title(title, fontsize=9)
        return axis


# ---------------------------------------------------------------------- the prediction grid
def _as_pandas(data):
    if hasattr(data, "iloc"):
        return data
    if hasattr(data, "to_pandas"):
        return data.to_pandas()
    raise TypeError(f"cannot build a prediction grid from a {type(data).__name__}")


def _held_value(column):
    """A typical value: the mean of a numeric column, else the first level (or the commonest)."""
    import pandas as pd

    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.categories[0]
    if pd.api.types.is_bool_dtype(column):
        return bool(column.mode().iloc[0])
    if pd.api.types.is_numeric_dtype(column):
        return float(column.mean())
    return column.mode().iloc[0]


def _x_values(column, n_points: int):
    """Grid positions, the values to put in the frame, and tick labels (None for numeric x)."""
    import pandas as pd

    if isinstance(column.dtype, pd.CategoricalDtype):
        levels = list(column.cat.categories)
    elif pd.api.types.is_bool_dtype(column):
        levels = [False, True]
    elif pd.api.types.is_numeric_dtype(column):
        values = np.linspace(float(column.min()), float(column.max()), n_points)
        return values, values, None
    else:
        levels = sorted(column.dropna().unique().tolist())
    return np.arange(len(levels), dtype=float), levels, [str(v) for v in levels]


def _set_column(frame, name, value, like):
    """Put ``value`` (a scalar or a list) in ``frame[name]``, keeping the dtype of ``like``."""
    import pandas as pd

    n = len(frame)
    values = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value] * n
    if isinstance(like.dtype, pd.CategoricalDtype):
        frame[name] = pd.Categorical(values, categories=like.cat.categories, ordered=like.cat.ordered)
        return
    numeric = pd.api.types.is_numeric_dtype(like) and not pd.api.types.is_bool_dtype(like)
    series = pd.Series(values, index=frame.index)
    try:  # numbers as float unless whole numbers for an integer column; others as they were
        if numeric:
            series = series.astype(float)
            whole = pd.api.types.is_integer_dtype(like) and bool(np.all(series == np.round(series)))
            frame[name] = series.astype(like.dtype) if whole else series
        else:
            frame[name] = series.astype(like.dtype)
    except (TypeError, ValueError):
        frame[name] = pd.Series(values, index=frame.index)


def prediction_grid(model, x: str, group, at, n_points: int, max_groups: int) -> dict:
    """Rows to predict for :meth:`ModelPlots.predicted`, as pandas frames.

    Returns a dict with ``population`` (one row per x position), ``groups`` (the population rows
    repeated for each level of ``group``, level by level), ``group_levels``, ``positions`` and
    ``tick_labels`` (None for a numeric x).
    """
    import pandas as pd

    data = _as_pandas(model.data)
    if x not in data.columns:
        raise ValueError(f"'{x}' is not a column of the data; columns: {list(data.columns)}")
    used = np.asarray(model.raw.design.used, dtype=bool)
    rows = data.loc[used].reset_index(drop=True)
    positions, values, tick_labels = _x_values(rows[x], n_points)
    n = len(positions)
    frame = rows.iloc[[0] * n].reset_index(drop=True)
    at = dict(at or {})
    unknown = set(at) - set(data.columns)
    if unknown:
        raise ValueError(f"at= names columns that are not in the data: {sorted(unknown)}")
    for name in rows.columns:
        if name != x:
            _set_column(frame, name, at.get(name, _held_value(rows[name])), rows[name])
    _set_column(frame, x, list(values), rows[x])
    out = {"population": frame, "positions": positions, "tick_labels": tick_labels,
           "group_levels": [], "groups": None}
    if group is None:
        return out
    term = next(t for t in model.raw.design.terms if t.group == group)
    components = list(term.components) or [group]
    levels = list(term.levels)[:max_groups]
    pieces = []
    for level in levels:
        parts = str(level).split(":") if len(components) > 1 else [level]
        piece = frame.copy()
        for name, part in zip(components, parts):
            _set_column(piece, name, part, rows[name])
        pieces.append(piece)
    out["group_levels"] = levels
    out["groups"] = pd.concat(pieces, ignore_index=True)
    return out
