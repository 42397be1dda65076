"""The integer codes of distributions and links: the one table Python and the compiled kernels share.

Three code spaces:

* :class:`Dist` — the response distribution of a generalized linear (mixed) model;
* :class:`Link` — the link function ``eta = g(mu)`` of a generalized linear (mixed) model;
* :class:`CumLink` — the latent distribution ``F`` of a cumulative link model, ``P(Y <= j) = F(alpha_j - eta)``.

:class:`Link` and :class:`CumLink` are different spaces on purpose: the GLM kernels and the cumulative link
kernels are separate loops, so a cumulative probit is ``CumLink.PROBIT`` and a binomial probit ``Link.PROBIT``.
The Cython kernels read these codes from ``_kernels/codes.pxi``, which is generated from this module::

    python -c "from mixframe.families.codes import write_kernel_include; write_kernel_include()"

and a test checks that the generated file is up to date.

Examples
--------
>>> Link.from_name("probit"), CumLink.from_name("probit")
(<Link.PROBIT: 3>, <CumLink.PROBIT: 1>)
>>> Dist.NEGATIVE_BINOMIAL.label
'negative_binomial'
"""
from __future__ import annotations

from enum import IntEnum
from pathlib import Path


class _Code(IntEnum):
    """An IntEnum whose members are named after the lower-case labels users write."""

    @property
    def label(self) -> str:
        """The user-facing name (``"inverse_gaussian"`` for ``INVERSE_GAUSSIAN``)."""
        return self.name.lower()

    @classmethod
    def from_name(cls, name: str):
        """The member labelled ``name``; ValueError listing the labels otherwise."""
        try:
            return cls[str(name).upper()]
        except KeyError:
            raise ValueError(f"{name!r} is not a {cls.__doc__.split(':')[0].strip().lower()}; "
                             f"use one of {cls.labels()}") from None

    @classmethod
    def labels(cls) -> list[str]:
        return [m.label for m in cls]


class Dist(_Code):
    """response distribution: the family part of a GLM family."""

    GAUSSIAN = 0
    BINOMIAL = 1
    POISSON = 2
    GAMMA = 3
    INVERSE_GAUSSIAN = 4
    NEGATIVE_BINOMIAL = 5      # NB2: Var(y) = mu + mu^2 / theta


class Link(_Code):
    """GLM link: the link function eta = g(mu) of a GLM family."""

    IDENTITY = 0
    LOG = 1
    LOGIT = 2
    PROBIT = 3
    CLOGLOG = 4
    INVERSE = 5
    SQRT = 6
    INVERSE_SQUARED = 7
    CAUCHIT = 8


class CumLink(_Code):
    """cumulative link: the latent distribution F of a cumulative link model."""

    LOGIT = 0
    PROBIT = 1
    CLOGLOG = 2                # F(x) = 1 - exp(-exp(x))
    LOGLOG = 3                 # F(x) = exp(-exp(-x))
    CAUCHIT = 4


# prefix of each code space in the kernels
KERNEL_PREFIX = {Dist: "DIST", Link: "LINK", CumLink: "CUMLINK"}
KERNEL_INCLUDE = Path(__file__).resolve().parents[2] / "_kernels" / "codes.pxi"


def kernel_include() -> str:
    """The text of ``_kernels/codes.pxi``: one anonymous ``cdef enum`` per code space."""
    lines = ["# Integer codes of distributions and links for the kernels.",
             "# GENERATED from mixframe/families/codes.py (write_kernel_include); do not edit.",
             ""]
    for enum, prefix in KERNEL_PREFIX.items():
        lines.append(f"# {enum.__doc__.split(':')[0]}")
        lines.append("cdef enum:")
        lines.extend(f"    {prefix}_{m.name} = {int(m)}" for m in enum)
        lines.append("")
    return "\n".join(lines)


def write_kernel_include(path: Path = KERNEL_INCLUDE) -> Path:
    """Write :func:`kernel_include` to ``path`` (default ``_kernels/codes.pxi``)."""
    path.write_text(kernel_include())
    return path
