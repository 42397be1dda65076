"""The penalized system of a mixed model and its factor.

``system`` names what every model kind needs from the penalized system (:class:`PenalizedSystem`);
``blocked`` implements it on the compiled blocked Cholesky kernel (``mixframe._ext.blocked``) and is the only
code that touches that kernel and its arrays; ``crossprod`` sums the cross-products exactly, over rows or over
the batches of a stream. Nothing is imported here, so ``import mixframe`` does not load the kernels.
"""
