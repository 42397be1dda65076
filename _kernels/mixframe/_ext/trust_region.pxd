# C-level interface of the trust-region driver (the module mixframe._ext.trust_region, built from
# trust_region.pyx): the objective type its loop evaluates without Python.
#
# A compiled objective derives from SmoothObjective (``from mixframe._ext.trust_region cimport
# SmoothObjective``), sets ``n_vars`` and overrides the two ``noexcept nogil`` methods below; passed as ``fun``
# to mixframe.numerics.optim.trust_region (with no ``derivs``), it is called through these methods at every
# trial point instead of through Python. Cython looks for the declarations of a module under its package
# path, hence the place of this file: _kernels (the build's include path) / mixframe/_ext / trust_region.pxd
# belongs to the module mixframe._ext.trust_region. A change here recompiles the modules that cimport it, but
# not trust_region.pyx itself: touch that too.
#
# The contract (every pointer argument points to a caller-allocated buffer of the stated length):
#
# * value(x): f at x (x holds n_vars doubles); +inf or NaN where f is not defined there.
# * value_grad_hess(x, g, H): f at x, its gradient into g (n_vars) and its Hessian into H (n_vars x n_vars,
#   row-major); g and H need not be written where the returned f is not finite. The driver calls it only at
#   accepted points, right after value(x) at the same x, so an implementation may reuse that evaluation.
#
# The base class's own methods return NaN (an objective nowhere defined).
#
# cython: language_level=3


cdef class SmoothObjective:
    cdef readonly Py_ssize_t n_vars     # the number of variables

    cdef double value(self, const double* x) noexcept nogil
    cdef double value_grad_hess(self, const double* x, double* g, double* H) noexcept nogil
