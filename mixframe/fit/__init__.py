"""Fitting: the objective at theta for each model kind, the optimizer, and the raw fit record.

Only this package imports the compiled kernels (mixframe._ext).
"""
