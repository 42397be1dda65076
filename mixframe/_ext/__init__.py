"""Compiled kernels: each Cython source ``_kernels/<name>.pyx`` builds the module ``mixframe._ext.<name>``.

The kernels compute values, gradients and Hessians into caller-allocated buffers; they hold no
optimisation logic, except ``trust_region``: the loop and subproblem solver of
:func:`mixframe.numerics.optim.trust_region`, compiled, calling the objective back once per evaluation.
Each module ``mixframe._ext.<module>`` has its Python doors, the only modules that may import it (tests
excepted):

===============  ============================================  ==============================================
module           built from (includes, cimports)               imported only by
===============  ============================================  ==============================================
blocked          blocked.pyx (small_dense.pxi); C interface:   mixframe.linalg.blocked
                 _kernels/mixframe/_ext/blocked.pxd
checks           checks.pyx                                    mixframe.design.encode, mixframe.fit.convergence,
                                                               mixframe.io.frames
crossprod        crossprod.pyx                                 mixframe.linalg.crossprod, mixframe.linalg.blocked
lmm_derivs       lmm_derivs.pyx (small_dense.pxi)              mixframe.fit.lmm_grad
family           family.pyx (family_core.pxi, codes.pxi)       mixframe.families.glm
pirls            pirls.pyx (family_core.pxi, codes.pxi;        mixframe.laplace.modes
                 cimports blocked)
ordinal          ordinal.pyx (cumlink.pxd, codes.pxi)          mixframe.families.cumulative (link_functions),
                                                               mixframe.fit.clm, mixframe.fit.clmm_laplace
ordinal_laplace  ordinal_laplace.pyx (cumlink.pxd, codes.pxi)  mixframe.fit.clmm_laplace
trust_region     trust_region.pyx                              mixframe.numerics.optim
===============  ============================================  ==============================================

Shared sources, compiled into the modules that include them:

* ``codes.pxi`` — the integer codes ``DIST_*``, ``LINK_*`` and ``CUMLINK_*``, generated from
  :mod:`mixframe.families.codes` (a test checks it is up to date);
* ``family_core.pxi`` — per-observation GLM family and link functions (``family``, ``pirls``);
* ``cumlink.pxd`` — per-observation cumulative link likelihood pieces (``ordinal``, ``ordinal_laplace``);
* ``small_dense.pxi`` — the small Cholesky shared by ``blocked`` and ``lmm_derivs``.

Between modules: ``_kernels/mixframe/_ext/blocked.pxd`` declares ``blocked.BlockedCholesky`` and its ``noexcept
nogil`` methods (installing the cross-products, factoring, solving, log-determinants, solves with and parts of
the inverse of the random-effects block); ``pirls`` cimports it and runs its whole iteration without the GIL.
The file sits under the package path because that is where Cython looks for a module's declarations.

Build them in place with ``python setup.py build_ext --inplace`` (``MIXFRAME_KERNELS=a,b`` for a few).
"""
