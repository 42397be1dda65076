"""The one table of distribution and link codes (mixframe.families.codes) and the kernels that use it."""
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import special, stats

from mixframe._ext import family as family_kernel
from mixframe._ext.ordinal import link_functions
from mixframe.families import ALLOWED_LINKS, CANONICAL, FAMILY_CODES, LINK_CODES, CumLink, Dist, Link, codes

ROOT = Path(__file__).resolve().parents[2]
KERNELS = ROOT / "_kernels"


def test_generated_kernel_include_is_up_to_date():
    assert codes.KERNEL_INCLUDE == KERNELS / "codes.pxi"
    assert (KERNELS / "codes.pxi").read_text() == codes.kernel_include(), (
        "regenerate with: python -c 'from mixframe.families.codes import write_kernel_include; "
        "write_kernel_include()'")


def test_generated_include_lists_every_code():
    text = (KERNELS / "codes.pxi").read_text()
    found = {name: int(value) for name, value in re.findall(r"^\s+(\w+) = (\d+)$", text, flags=re.M)}
    expected = {f"{prefix}_{m.name}": int(m) for enum, prefix in codes.KERNEL_PREFIX.items() for m in enum}
    assert found == expected
    assert len(expected) == len(Dist) + len(Link) + len(CumLink) == 20


@pytest.mark.parametrize("source", sorted(p.name for p in KERNELS.glob("*.p*")))
def test_kernels_compare_codes_by_name_only(source):
    """No kernel tests a family or link code against a bare number: the names come from codes.pxi."""
    text = (KERNELS / source).read_text()
    assert not re.findall(r"\b(?:link|fam|family)\s*[!=]=\s*\d", text)
    if re.search(r"\b(?:link|fam)\s*==\s*(?:DIST|LINK|CUMLINK)_", text):
        includes = re.findall(r'^include "(\w+\.pxi)"', text, flags=re.M)
        assert "codes.pxi" in includes or "family_core.pxi" in includes


def test_kernel_sources_include_the_generated_codes():
    for name in ("family_core.pxi", "cumlink.pxd"):
        assert 'include "codes.pxi"' in (KERNELS / name).read_text()
    for name in ("family.pyx", "pirls.pyx"):
        assert 'include "family_core.pxi"' in (KERNELS / name).read_text()
    for name in ("ordinal.pyx", "ordinal_laplace.pyx"):
        assert "from cumlink cimport" in (KERNELS / name).read_text()


def test_name_tables_are_views_of_the_enums():
    from mixframe.families.cumulative import LINKS as CUM_LINKS
    from mixframe.fit.clm import LINKS as CLM_LINKS

    assert LINK_CODES == {m.name.lower(): m.value for m in Link}
    assert FAMILY_CODES == {m.name.lower(): m.value for m in Dist}
    assert CLM_LINKS is CUM_LINKS
    assert CUM_LINKS == {"logit": 0, "probit": 1, "cloglog": 2, "loglog": 3, "cauchit": 4}
    assert set(ALLOWED_LINKS) == set(CANONICAL) == set(Dist.labels())
    for links in ALLOWED_LINKS.values():
        assert set(links) <= set(Link.labels())
    assert Link.from_name("inverse_squared") is Link.INVERSE_SQUARED
    with pytest.raises(ValueError, match="cumulative link.*logit"):
        CumLink.from_name("identity")


GLM_LINKINV = {
    Link.IDENTITY: lambda e: e, Link.LOG: np.exp, Link.LOGIT: special.expit, Link.PROBIT: stats.norm.cdf,
    Link.CLOGLOG: lambda e: -np.expm1(-np.exp(e)), Link.INVERSE: lambda e: 1 / e, Link.SQRT: lambda e: e * e,
    Link.INVERSE_SQUARED: lambda e: 1 / np.sqrt(e), Link.CAUCHIT: stats.cauchy.cdf,
}
CUM_CDF = {
    CumLink.LOGIT: stats.logistic.cdf, CumLink.PROBIT: stats.norm.cdf, CumLink.CLOGLOG: stats.gumbel_l.cdf,
    CumLink.LOGLOG: stats.gumbel_r.cdf, CumLink.CAUCHIT: stats.cauchy.cdf,
}


@pytest.mark.parametrize("link", list(Link))
def test_compiled_glm_link_of_each_code(link):
    """The compiled family kernel, given an enum's code, computes that link's inverse."""
    assert set(GLM_LINKINV) == set(Link)
    eta = np.array([0.3, 0.8, 1.9])
    mu, d = np.empty(3), np.empty(3)
    family_kernel.link_inverse(int(link), eta, mu, d)
    np.testing.assert_allclose(mu, GLM_LINKINV[link](eta), rtol=1e-12)


@pytest.mark.parametrize("link", list(CumLink))
def test_compiled_cumulative_link_of_each_code(link):
    """The compiled ordinal kernel, given an enum's code, computes that link's distribution function."""
    assert set(CUM_CDF) == set(CumLink)
    x = np.array([-2.5, -0.4, 0.0, 1.3, 3.0])
    out, empty = np.empty(5), np.empty(0)
    link_functions(int(link), x, out, empty, empty)
    np.testing.assert_allclose(out, CUM_CDF[link](x), rtol=1e-12)


@pytest.mark.parametrize("dist", list(Dist))
def test_compiled_variance_of_each_code(dist):
    mu = np.array([0.2, 0.5, 0.7])
    expected = {Dist.GAUSSIAN: np.ones(3), Dist.BINOMIAL: mu * (1 - mu), Dist.POISSON: mu,
                Dist.GAMMA: mu ** 2, Dist.INVERSE_GAUSSIAN: mu ** 3, Dist.NEGATIVE_BINOMIAL: mu + mu ** 2 / 3.0}
    out = np.empty(3)
    family_kernel.variance(int(dist), mu, 3.0, out)
    np.testing.assert_allclose(out, expected[dist], rtol=1e-15)


def test_family_kernels_have_one_python_door():
    """Only mixframe.families.glm imports the family kernel; only families.cumulative the link functions;
    the results import no kernel."""
    pkg = ROOT / "mixframe"
    family_importers, link_fn_users, results_kernel = [], [], []
    for path in pkg.rglob("*.py"):
        text = path.read_text()
        rel = path.relative_to(pkg).as_posix()
        if re.search(r"_ext\.family\b|_ext import family\b", text):
            family_importers.append(rel)
        if re.search(r"\blink_functions\b", text) and "import" in text:
            if re.search(r"import[^\n]*\blink_functions\b", text):
                link_fn_users.append(rel)
        if rel.startswith("results/") and re.search(r"\._ext\b", text):
            results_kernel.append(rel)
    assert family_importers == ["families/glm.py"]
    assert link_fn_users == ["families/cumulative.py"]
    assert results_kernel == []
