"""Conditional modes of the random effects and the Laplace / adaptive Gauss-Hermite marginal likelihoods."""
