"""Response families and links: the one home of the family arithmetic.

* :mod:`.codes` — the integer codes (:class:`Dist`, :class:`Link`, :class:`CumLink`) shared with the kernels;
* :mod:`.glm` — :class:`Family` (distribution x link) and :func:`get_family`, used by the GLMM fit and by
  the results;
* :mod:`.cumulative` — cumulative links (CDF, density, quantile) and threshold structures of ordinal models.

Adding a GLM link: a member of :class:`Link`, its branch in ``_kernels/family_core.pxi`` (inverse link and
its first two derivatives, link function), regenerate ``_kernels/codes.pxi`` and list it in
``glm.ALLOWED_LINKS``. Adding a cumulative link: a member of :class:`CumLink`, its branch in
``_kernels/cumlink.pxd`` and a quantile function in :mod:`.cumulative`.
"""
from .codes import CumLink, Dist, Link
from .cumulative import (THRESHOLDS, cdf, dpdf, link_code, make_cdf, ordinal_cdf, ordinal_cum_probs,
                         ordinal_probs, ordinal_thresholds, pdf, quantile, threshold_structure)
from .glm import (ALIASES, ALLOWED_LINKS, CANONICAL, FAMILY_CODES, LINK_CODES, Family, family_of, get_family,
                  with_dispersion)

__all__ = [
    "ALIASES", "ALLOWED_LINKS", "CANONICAL", "FAMILY_CODES", "LINK_CODES", "THRESHOLDS", "CumLink", "Dist",
    "Family", "Link", "cdf", "dpdf", "family_of", "get_family", "link_code", "make_cdf", "ordinal_cdf",
    "ordinal_cum_probs", "ordinal_probs", "ordinal_thresholds", "pdf", "quantile", "threshold_structure",
    "with_dispersion",
]
