"""A progress bar for long fits, shown only where someone is watching.

The bar is a thin wrapper over :mod:`tqdm`. It follows three rules:

* it is **off** in non-interactive runs (standard error is not a terminal and no notebook kernel
  is running: batch jobs, CI, pipes), so logs stay clean;
* where it is on, it stays **hidden for the first ~2 seconds** (``delay``), so quick fits print
  nothing at all;
* the caller can force it either way with ``control={"progress": True}`` or
  ``control={"progress": False}``.

How a fitting routine uses it
-----------------------------
A routine that loops (an optimizer calling the objective, a bootstrap, a profile) opens one bar
for the whole job and ticks it once per step::

    from mixframe.progress import progress_bar, progress_enabled

    def fit_something(design, control):
        enabled = progress_enabled(control)            # None (auto), True or False
        with progress_bar(total=None, desc="LMM (REML)", enabled=enabled) as bar:
            def objective(theta):
                bar.update(1)                          # one function evaluation
                return deviance(design, theta)
            result = minimize(objective, theta0)
            bar.set_postfix(deviance=result.fun)       # optional: show the current value
        return result

``total=None`` suits an optimizer (the number of evaluations is unknown: the bar shows a counter
and a rate); a known total (bootstrap replicates) shows a proper bar. When the bar is disabled
the object is a no-op with the same methods, so the fitting code needs no ``if``.
"""
from __future__ import annotations

import os
import sys
from typing import Self

__all__ = ["ProgressBar", "in_notebook", "is_interactive", "progress_bar", "progress_enabled"]

#: Seconds a bar waits before it first appears; quick work never shows one.
DELAY_SECONDS = 2.0


def in_notebook() -> bool:
    """True inside a Jupyter (IPython kernel) session.

    Examples
    --------
    >>> in_notebook()
    False
    """
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except (AttributeError, ImportError, RuntimeError):  # an IPython without a running shell
        return False
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def is_interactive() -> bool:
    """True when a person is likely watching: a notebook, or standard error on a terminal.

    The environment variable ``MIXFRAME_PROGRESS`` (``"1"``/``"0"``) overrides the guess.
    """
    forced = os.environ.get("MIXFRAME_PROGRESS")
    if forced is not None and forced.strip() != "":
        return forced.strip().lower() not in ("0", "false", "no", "off")
    if in_notebook():
        return True
    stream = sys.stderr
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # closed or unusual stream
        return False


def progress_enabled(control: dict | None) -> bool | None:
    """Read the ``"progress"`` switch from a ``control`` dict.

    Returns
    -------
    bool or None
        True / False when the caller set it, None (decide automatically) otherwise.

    Examples
    --------
    >>> progress_enabled({"progress": False}), progress_enabled(None)
    (False, None)
    """
    if not control or control.get("progress") is None:
        return None
    return bool(control["progress"])


class ProgressBar:
    """A context manager that ticks a tqdm bar, or does nothing when disabled.

    Use :func:`progress_bar` to make one.
    """

    def __init__(self, total=None, desc: str = "", enabled: bool = True, delay: float = DELAY_SECONDS,
                 file=None):
        self.total = total
        self.desc = desc
        self.enabled = bool(enabled)
        self.count = 0
        self._delay = float(delay)
        self._file = file
        self._bar = None

    def __enter__(self) -> Self:
        if self.enabled:
            if in_notebook():
                from tqdm.auto import tqdm
            else:
                from tqdm import tqdm
            self._bar = tqdm(total=self.total, desc=self.desc, delay=self._delay, leave=False,
                             file=self._file, dynamic_ncols=True)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.close()
        return False

    def update(self, n: int = 1) -> None:
        """Advance the bar by ``n`` steps (counted even when the bar is disabled)."""
        self.count += n
        if self._bar is not None:
            self._bar.update(n)

    def set_postfix(self, **values) -> None:
        """Show ``name=value`` pairs after the bar (e.g. the current deviance)."""
        if self._bar is not None:
            shown = {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in values.items()}
            self._bar.set_postfix(shown, refresh=False)

    def close(self) -> None:
        """Remove the bar; safe to call twice."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def progress_bar(total: int | None = None, desc: str = "fitting", enabled: bool | None = None,
                 delay: float = DELAY_SECONDS, file=None) -> ProgressBar:
    """A progress bar for long work, shown only in interactive sessions and only after ``delay``.

    Parameters
    ----------
    total : int, optional
        Number of steps when known; None shows a counter with a rate.
    desc : str
        Label in front of the bar.
    enabled : bool, optional
        True / False force the bar on / off; None (default) turns it on in notebooks and
        terminals and off elsewhere (see :func:`is_interactive`).
    delay : float
        Seconds before the bar first appears (default 2): quick work shows nothing.
    file : file-like, optional
        Where to draw (default: standard error).

    Returns
    -------
    ProgressBar
        A context manager with ``update(n)``, ``set_postfix(**values)`` and ``count``.

    Examples
    --------
    >>> with progress_bar(total=3, desc="demo", enabled=False) as bar:
    ...     for _ in range(3):
    ...         bar.update(1)
    >>> bar.count
    3
    """
    if enabled is None:
        enabled = is_interactive()
    return ProgressBar(total=total, desc=desc, enabled=enabled, delay=delay, file=file)
