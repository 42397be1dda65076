"""Numerical building blocks: optimizers, finite differences, quadrature."""
