"""lme4 formula parsing: random-effect bars (found, stripped, expanded) and the fixed part via formulaic."""
from .bars import Bar, check_parentheses, expand_bar, extract_bars, split_sum
from .parse import ParsedFormula, parse_formula

__all__ = ["Bar", "ParsedFormula", "check_parentheses", "expand_bar", "extract_bars", "parse_formula", "split_sum"]
