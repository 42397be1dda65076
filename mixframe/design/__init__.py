"""Model design: fixed-effects matrix, response, and random-effect terms (no frames inside)."""
from .terms import Design, RETerm

__all__ = ["Design", "RETerm"]
