# Integer codes of distributions and links for the kernels.
# GENERATED from mixframe/families/codes.py (write_kernel_include); do not edit.

# response distribution
cdef enum:
    DIST_GAUSSIAN = 0
    DIST_BINOMIAL = 1
    DIST_POISSON = 2
    DIST_GAMMA = 3
    DIST_INVERSE_GAUSSIAN = 4
    DIST_NEGATIVE_BINOMIAL = 5

# GLM link
cdef enum:
    LINK_IDENTITY = 0
    LINK_LOG = 1
    LINK_LOGIT = 2
    LINK_PROBIT = 3
    LINK_CLOGLOG = 4
    LINK_INVERSE = 5
    LINK_SQRT = 6
    LINK_INVERSE_SQUARED = 7
    LINK_CAUCHIT = 8

# cumulative link
cdef enum:
    CUMLINK_LOGIT = 0
    CUMLINK_PROBIT = 1
    CUMLINK_CLOGLOG = 2
    CUMLINK_LOGLOG = 3
    CUMLINK_CAUCHIT = 4
