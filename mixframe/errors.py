"""Exceptions and warnings raised by mixframe."""


class FormulaError(ValueError):
    """The formula cannot be parsed, or names a column that does not exist.

    The message names the offending term or column and how to fix it.
    """


class DataError(ValueError):
    """The data cannot support the model (response type, one-level factor, no complete rows, ...).

    The message names the column and what was found.
    """


class ConvergenceWarning(UserWarning):
    """The optimizer stopped without meeting its convergence criteria."""


class SingularFitWarning(UserWarning):
    """A variance component was estimated at zero or a correlation at +-1 (boundary fit)."""
