"""Model design: the spec learned from a fit's data, the one encoder, and the frozen arrays a fit works on."""
from .spec import DesignData, DesignSpec
from .terms import Design, RETerm

__all__ = ["Design", "DesignData", "DesignSpec", "RETerm"]
