# Small dense kernels shared by the compiled modules (included, not compiled on their own).


cdef inline int chol_lower(double* M, Py_ssize_t k, Py_ssize_t ld) noexcept nogil:
    """In-place lower Cholesky of a k x k block with row stride ld (upper part zeroed); 0 or the failing
    pivot (1-based)."""
    cdef Py_ssize_t i, j, l
    cdef double s
    for j in range(k):
        s = M[j * ld + j]
        for l in range(j):
            s -= M[j * ld + l] * M[j * ld + l]
        if s <= 0.0:
            return <int>(j + 1)
        s = sqrt(s)
        M[j * ld + j] = s
        for i in range(j + 1, k):
            for l in range(j):
                M[i * ld + j] -= M[i * ld + l] * M[j * ld + l]
            M[i * ld + j] /= s
        for i in range(j):
            M[i * ld + j] = 0.0
    return 0
