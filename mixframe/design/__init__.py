"""Model design: fixed-effects matrix, response, and random-effect terms (no frames inside)."""
from .terms import RETerm, Design

__all__ = ["RETerm", "Design"]
